// LinuxDataplane: the Linux backend's thread. Owns the libnl handles and runs LinuxReconciler
// when the desired state changes, when the kernel reports a link change (a VM tap appearing is
// enslaved within one netlink event, without the controller), after a failure (with backoff),
// and periodically to heal drift.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include "dataplane.hpp"

namespace cutover::agent {

struct LinuxDataplaneConfig {
  std::chrono::milliseconds resync_interval{30000};
  std::chrono::milliseconds retry_interval{500};
};

class LinuxDataplane : public Dataplane {
 public:
  explicit LinuxDataplane(LinuxDataplaneConfig config);
  ~LinuxDataplane() override;

  void start(ReportFn on_report) override;
  void set_desired(DesiredState state) override;
  void stop() override;

 private:
  void run();
  void wake();

  LinuxDataplaneConfig config_;
  ReportFn on_report_;
  std::thread thread_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::optional<DesiredState> pending_;  // guarded by mutex_
};

}  // namespace cutover::agent
