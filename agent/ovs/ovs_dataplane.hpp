// OvsDataplane: the OVS backend's thread. Owns the libopenvswitch handles (OVSDB IDL, OpenFlow
// vconn), runs the IDL loop, and runs OvsReconciler when the desired state changes, when the
// interfaces OVSDB reports change (a VM tap appearing is bound within one IDL round trip, without
// the controller), after a failure (with backoff), and periodically to heal drift.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "dataplane.hpp"
#include "ovs_reconciler.hpp"

namespace cutover::agent {

struct OvsDataplaneConfig {
  std::string ovsdb_remote;     // e.g. unix:/run/openvswitch/db.sock
  std::string openflow_target;  // e.g. unix:/run/openvswitch/br-int.mgmt
  OvsReconcilerConfig reconciler;
  std::chrono::milliseconds resync_interval{30000};
  std::chrono::milliseconds retry_interval{500};
};

class OvsDataplane : public Dataplane {
 public:
  explicit OvsDataplane(OvsDataplaneConfig config);
  ~OvsDataplane() override;

  void start(ReportFn on_report) override;
  void set_desired(DesiredState state) override;
  void stop() override;

 private:
  void run();
  void wake();

  OvsDataplaneConfig config_;
  ReportFn on_report_;
  std::thread thread_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::optional<DesiredState> pending_;  // guarded by mutex_
};

}  // namespace cutover::agent
