// OvsDataplane: the OVS backend's thread. Owns the libopenvswitch handles (OVSDB IDL, OpenFlow
// vconn), runs the IDL loop, and runs OvsReconciler when the desired state changes, when the
// interfaces OVSDB reports change (a VM tap appearing is bound within one IDL round trip, without
// the controller), after a failure (with backoff), and periodically to heal drift.
#pragma once

#include <chrono>
#include <string>

#include "dataplane_thread.hpp"
#include "ovs_reconciler.hpp"

namespace cutover::agent {

struct OvsDataplaneConfig {
  std::string ovsdb_remote;     // e.g. unix:/run/openvswitch/db.sock
  std::string openflow_target;  // e.g. unix:/run/openvswitch/br-int.mgmt
  OvsReconcilerConfig reconciler;
  std::chrono::milliseconds resync_interval{30000};
  std::chrono::milliseconds retry_interval{500};
};

class OvsDataplane : public DataplaneThread {
 public:
  explicit OvsDataplane(OvsDataplaneConfig config) : config_(std::move(config)) {}
  ~OvsDataplane() override { stop(); }

 private:
  void run() override;

  OvsDataplaneConfig config_;
};

}  // namespace cutover::agent
