// OvsReconciler: one reconcile pass for the OVS dataplane. Validates and translates the desired
// state (overlay/), brings tunnel ports in OVSDB in line (only ports tagged cutover-owned), then
// diffs desired flows against the flows installed under our cookie and commits the difference in
// one bundle. Never flushes: an unchanged state sends nothing. Synchronous; runs on the OVS thread.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "apply_report.hpp"
#include "desired_state.hpp"
#include "flow_switch.hpp"
#include "ovs_pipeline.hpp"
#include "ovsdb_switch.hpp"

namespace cutover::agent {

constexpr uint64_t kCutoverCookie = 0xc07e000000000001ull;

struct OvsReconcilerConfig {
  std::string bridge = "br-int";
  std::string datapath_type = "netdev";
  uint64_t cookie = kCutoverCookie;
};

class OvsReconciler {
 public:
  OvsReconciler(OvsReconcilerConfig config, FlowSwitch& flows, OvsdbSwitch& db);

  // Never throws: failures come back as a report (rejected = bad input, nothing touched).
  // departed: local iface-ids whose VM has stopped here for an outgoing migration.
  ApplyReport reconcile(const DesiredState& state, const std::set<std::string>& departed = {});

  // Which VM iface-ids and tunnels OVS has bound on our bridge (ofport > 0, link up).
  static overlay::OvsPortMap port_map(const std::vector<OvsInterface>& ifaces,
                                      const std::string& bridge);

 private:
  void sync_tunnels(const overlay::OvsDesired& desired, const std::vector<OvsInterface>& ifaces);
  void sync_flows(const overlay::OvsDesired& desired, ApplyReport& report);

  OvsReconcilerConfig config_;
  FlowSwitch& flows_;
  OvsdbSwitch& db_;
};

}  // namespace cutover::agent
