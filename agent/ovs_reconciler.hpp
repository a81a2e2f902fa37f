// OvsReconciler: reconcile passes for the OVS dataplane, at the cost of the change. It keeps the
// topology and the translated flows of every network, and the flows it knows to be installed
// under its cookie. A pass translates again only the networks that changed (their ports, the
// VM taps or departed VMs of their local ports; every network when a tunnel or a host's address
// moved), canonicalises only flow text it has not seen, diffs only the flows those networks
// touched against its installed view and commits the difference in one bundle. Rate limits:
// OpenFlow meters (from the VM) around that bundle, QoS rows on VM ports (to the VM) after it. The
// switch is read back (dumped) and the whole desired table compared on the first pass, when asked
// to verify (a slow timer, a reconnect) and after a failure. Never flushes: an unchanged state
// sends nothing. Synchronous; runs on the OVS thread.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "apply_report.hpp"
#include "desired_index.hpp"
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
  // The incremental pass: what `index` recorded as changed since the last pass (take_dirty) is
  // translated again; verify reads the switch back and compares everything.
  ApplyReport reconcile(overlay::DesiredIndex& index, const std::set<std::string>& departed,
                        bool verify);
  // A whole state, verified against the switch (tests, and what a restart amounts to).
  ApplyReport reconcile(const DesiredState& state, const std::set<std::string>& departed = {});

  // Which VM iface-ids and tunnels OVS has bound on our bridge (ofport > 0, link up).
  static overlay::OvsPortMap port_map(const std::vector<OvsInterface>& ifaces,
                                      const std::string& bridge);

  // For benchmarks and tests: flows in the desired table, and translation cache entries.
  size_t desired_flows() const { return want_.size(); }

 private:
  // One network's translation: its flows (translation text -> canonical entry) and its part of
  // the report.
  struct NetFlows {
    std::map<std::string, FlowEntry> by_text;
    std::vector<std::string> unbound_iface_ids;
    std::vector<std::string> bound_port_ids;
    std::map<std::string, int64_t> ct_zones;
    std::map<uint32_t, RateLimit> meters;     // from_vm policers of its bound local ports
    std::map<std::string, RateLimit> shaped;  // iface-id -> to_vm limit
  };
  // The pass's two steps (reconcile_pass): the state's views rebuilt where it changed (throws
  // ParseError: rejected), then the switch brought in line (throws: failed, retried).
  void judge(overlay::DesiredIndex& index);
  void apply(const std::set<std::string>& departed, bool verify, ApplyReport& report);
  // Views of the networks in `vnis` (all: every network) from the index; throws ParseError.
  void rebuild_views(const overlay::DesiredIndex& index, const overlay::DesiredIndex::Dirty& d);
  // Translates a network (or the global flows, vni = kGlobal) again; records the keys it touched.
  void retranslate(uint32_t vni, const overlay::OvsPortMap& map,
                   const std::set<std::string>& departed);
  void set_flows(uint32_t vni, NetFlows next);
  FlowEntry canonical(const std::string& text);
  void sync_tunnels(const std::vector<OvsInterface>& ifaces);
  void sync_flows(bool verify, ApplyReport& report);
  // Meters: the wanted ones added or changed before the flows that use them arrive
  // (sync_meters(false)); ours no longer wanted deleted after those flows are gone (true).
  void sync_meters(bool remove, ApplyReport& report);
  // Each bound VM port's QoS row (to_vm shaping) as its port wants it.
  void sync_shaping(const std::vector<OvsInterface>& ifaces, ApplyReport& report);

  static constexpr uint32_t kGlobal = 0xffffffffu;  // VNIs are 24 bits: never a network's

  OvsReconcilerConfig config_;
  FlowSwitch& flows_;
  OvsdbSwitch& db_;
  overlay::DesiredIndex own_index_;  // for reconcile(const DesiredState&)

  overlay::DesiredIndex::Dirty pending_{true, {}};  // views still to rebuild
  overlay::Topology topo_;
  std::set<uint32_t> rebuilt_;                    // views rebuilt, not translated since
  std::map<IpAddress, int> vtep_networks_;        // remote VTEP -> networks flooding to it
  std::map<std::string, int> iface_ports_;        // local iface-id -> local ports with it
  std::map<std::string, uint32_t> vni_of_iface_;  // local iface-id -> its network's VNI
  bool have_views_ = false;
  std::map<uint32_t, NetFlows> nets_;  // by VNI; kGlobal = the global flows
  // The desired table: key -> (actions, owning VNI), and the keys changed since the last diff.
  std::map<std::string, std::pair<std::string, uint32_t>> want_;
  std::set<std::string> touched_;
  // What the switch library parsed for flows new in this pass, so the bundle need not parse
  // them again (dropped after it: 10,000 parsed flows would outweigh the rest of the agent).
  std::map<std::string, std::shared_ptr<void>> parsed_;
  bool global_stateful_ = false;
  // What the switch holds under our cookie, as far as our confirmed bundles tell.
  std::map<std::string, std::string> installed_;
  bool installed_known_ = false;
  // Entries parsed but not canonicalised (added to an empty table): canonicalised before they
  // are compared with what the switch reports.
  bool all_canonical_ = true;
  // Meters and shaping all networks want (kept per change in set_flows), and the meters of ours
  // the switch holds (read back with the flows).
  std::map<uint32_t, RateLimit> want_meters_;
  std::map<std::string, RateLimit> want_shaped_;
  std::map<uint32_t, Meter> installed_meters_;
  std::set<std::string> foreign_qos_;  // VM ports whose QoS is not ours (warned once)
  overlay::OvsPortMap last_map_;
  std::set<std::string> last_departed_;
};

}  // namespace cutover::agent
