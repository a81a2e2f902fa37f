// DataplaneThread: the plumbing both backends share - a dedicated thread, an eventfd that wakes
// it, and a mailbox of desired-state changes (whole states and deltas, in order; a whole state
// drops what was queued before it), which the backend applies to its DesiredIndex. OvsDataplane and
// LinuxDataplane add their own loop (run()) and what else wakes it (OVSDB changes, netlink link
// events).
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "announcer.hpp"
#include "dataplane.hpp"

namespace cutover::agent {

class DataplaneThread : public Dataplane {
 public:
  ~DataplaneThread() override;
  void start(ReportFn on_report) override;
  void set_desired(overlay::DesiredChange change) override;
  void set_departed(std::set<std::string> iface_ids) override;
  // Joins the thread; derived destructors must call it before their members go away.
  void stop() override;
  // Reports of cutover announcement rounds (on the backend's thread). Set before start().
  using AnnounceFn = std::function<void(const AnnounceRound&)>;
  void on_announce(AnnounceFn fn) { on_announce_ = std::move(fn); }
  // Whether the backend's own connection is up (OVS: OVSDB); -1 = the backend has none.
  int backend_connected() const { return backend_connected_.load(); }

 protected:
  DataplaneThread();
  virtual void run() = 0;
  bool stopping() const { return stopping_; }
  void set_backend_connected(bool up) { backend_connected_.store(up ? 1 : 0); }
  int wake_fd() const { return wake_fd_; }
  void drain_wake();
  // Applies what arrived to `index` (and hands each change to `also`); false when nothing did.
  bool take_pending(overlay::DesiredIndex& index,
                    const std::function<void(const overlay::DesiredChange&)>& also = {});
  std::optional<std::set<std::string>> take_departed();
  void report(const ApplyReport& r) {
    if (on_report_) on_report_(r);
  }
  // After a reconcile: a confirmed apply may make ports arrive (scheduling their announcement
  // rounds); then sends the rounds that are due. Call announce_due() when the loop wakes.
  void announce(overlay::DesiredIndex& index, const ApplyReport& report, FrameSink& sink);
  void announce_due(FrameSink& sink);
  // A poll timeout (ms, -1 = none) shortened to the next announcement round.
  int announce_timeout(int timeout_ms) const;

 private:
  void wake();
  ReportFn on_report_;
  AnnounceFn on_announce_;
  Announcer announcer_;
  std::thread thread_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<int> backend_connected_{-1};
  std::mutex mutex_;
  std::vector<overlay::DesiredChange> pending_;    // guarded by mutex_
  std::optional<std::set<std::string>> departed_;  // guarded by mutex_
};

}  // namespace cutover::agent
