// LinuxDataplane: the Linux backend's thread. Owns the libnl handles and runs LinuxReconciler
// when the desired state changes, when the kernel reports a link change (a VM tap appearing is
// enslaved within one netlink event, without the controller), after a failure (with backoff),
// and periodically to heal drift.
#pragma once

#include <chrono>

#include "dataplane_thread.hpp"

namespace cutover::agent {

struct LinuxDataplaneConfig {
  std::chrono::milliseconds resync_interval{30000};
  std::chrono::milliseconds retry_interval{500};
};

class LinuxDataplane : public DataplaneThread {
 public:
  explicit LinuxDataplane(LinuxDataplaneConfig config) : config_(std::move(config)) {}
  ~LinuxDataplane() override { stop(); }

 private:
  void run() override;

  LinuxDataplaneConfig config_;
};

}  // namespace cutover::agent
