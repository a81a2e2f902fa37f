// DataplaneThread: the plumbing both backends share - a dedicated thread, an eventfd that wakes
// it, and a single-slot mailbox for the newest desired state (intermediate states may be
// skipped: only the latest matters to a reconciler). OvsDataplane and LinuxDataplane add their
// own loop (run()) and what else wakes it (OVSDB changes, netlink link events).
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "dataplane.hpp"

namespace cutover::agent {

class DataplaneThread : public Dataplane {
 public:
  ~DataplaneThread() override;
  void start(ReportFn on_report) override;
  void set_desired(DesiredState state) override;
  // Joins the thread; derived destructors must call it before their members go away.
  void stop() override;

 protected:
  DataplaneThread();
  virtual void run() = 0;
  bool stopping() const { return stopping_; }
  int wake_fd() const { return wake_fd_; }
  void drain_wake();
  std::optional<DesiredState> take_pending();
  void report(const ApplyReport& r) {
    if (on_report_) on_report_(r);
  }

 private:
  void wake();
  ReportFn on_report_;
  std::thread thread_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::optional<DesiredState> pending_;  // guarded by mutex_
};

}  // namespace cutover::agent
