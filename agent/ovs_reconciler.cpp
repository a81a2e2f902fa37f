// OvsReconciler: desired vs installed, for OVSDB tunnel ports and OpenFlow flows.
#include "ovs_reconciler.hpp"

#include <chrono>
#include <map>
#include <set>
#include <stdexcept>

#include "logging.hpp"
#include "reconcile_pass.hpp"
#include "topology.hpp"

namespace cutover::agent {

OvsReconciler::OvsReconciler(OvsReconcilerConfig config, FlowSwitch& flows, OvsdbSwitch& db)
    : config_(std::move(config)), flows_(flows), db_(db) {}

overlay::OvsPortMap OvsReconciler::port_map(const std::vector<OvsInterface>& ifaces,
                                            const std::string& bridge) {
  overlay::OvsPortMap map;
  for (const auto& i : ifaces) {
    if (i.bridge != bridge || i.ofport <= 0) continue;
    if (i.type == "vxlan") {
      if (i.owned && i.remote_ip) map.tunnel_ofports[*i.remote_ip] = i.ofport;
    } else if (!i.iface_id.empty() && i.link_up) {
      map.vm_ofports[i.iface_id] = i.ofport;
    }
  }
  return map;
}

ApplyReport OvsReconciler::reconcile(const DesiredState& state,
                                     const std::set<std::string>& departed) {
  return reconcile_pass(state, [&](const overlay::Topology& topo, ApplyReport& report) {
    db_.ensure_bridge(config_.bridge, config_.datapath_type);
    auto ifaces = db_.interfaces();
    const auto map = port_map(ifaces, config_.bridge);
    auto desired = overlay::translate_ovs(topo, map, departed);
    for (const auto& i : ifaces) {
      if (i.bridge != config_.bridge || !map.vm_ofports.count(i.iface_id)) continue;
      report.tap_names[i.iface_id] = i.name;
      if (!topo.local_iface_ids.count(i.iface_id)) report.unclaimed_taps.push_back(i.iface_id);
    }
    sync_tunnels(desired, ifaces);
    try {
      sync_flows(desired, report);
    } catch (const std::invalid_argument& e) {
      // A flow the translation produced was refused by OVS's parser: our bug, not the user's.
      throw std::runtime_error(std::string("internal translation error: ") + e.what());
    }
    for (const auto& id : desired.unbound_iface_ids) report.awaiting_taps.push_back(id);
    report.bound_ports = desired.bound_port_ids;
    report.ct_zones = desired.ct_zones;
    for (const auto& ip : desired.unbound_tunnels) {
      report.waiting_for.push_back("tunnel to " + ip.to_string());
    }
  });
}

void OvsReconciler::sync_tunnels(const overlay::OvsDesired& desired,
                                 const std::vector<OvsInterface>& ifaces) {
  std::map<std::string, const OvsInterface*> owned;
  std::set<std::string> present;
  for (const auto& i : ifaces) {
    if (i.bridge != config_.bridge) continue;
    present.insert(i.name);
    if (i.owned && i.type == "vxlan") owned[i.name] = &i;
  }
  std::set<std::string> wanted;
  for (const auto& t : desired.tunnels) {
    wanted.insert(t.name);
    auto it = owned.find(t.name);
    if (it != owned.end() && it->second->remote_ip == t.remote_ip) continue;
    if (it != owned.end())
      db_.del_port(config_.bridge, t.name);  // stale remote_ip
    else if (present.count(t.name)) {
      throw std::runtime_error("port " + t.name + " exists on " + config_.bridge +
                               " but is not owned by cutover");
    }
    db_.add_port(config_.bridge, t.name, "vxlan",
                 {{"remote_ip", t.remote_ip.to_string()}, {"key", "flow"}});
  }
  for (const auto& [name, iface] : owned) {
    if (!wanted.count(name)) db_.del_port(config_.bridge, name);
  }
}

void OvsReconciler::sync_flows(const overlay::OvsDesired& desired, ApplyReport& report) {
  std::map<std::string, std::string> have;
  for (auto& e : flows_.dump(config_.cookie)) have[e.key] = e.actions;
  // Nothing of ours installed (a fresh host): nothing to compare, so skip canonicalisation.
  const bool canonical = !have.empty();
  std::map<std::string, FlowEntry> want;  // key -> flow
  for (const auto& f : desired.flows) {
    auto e = flows_.normalize(f.text(), canonical);
    auto key = e.key;
    want[key] = std::move(e);
  }

  std::vector<FlowMod> mods;
  for (const auto& [key, actions] : have) {
    if (!want.count(key)) {
      mods.push_back({FlowOp::remove, key});
      ++report.removed;
    }
  }
  for (const auto& [key, entry] : want) {
    auto it = have.find(key);
    if (it == have.end()) {
      mods.push_back({FlowOp::add, key + " actions=" + entry.actions, entry.parsed});
      ++report.added;
    } else if (it->second != entry.actions) {
      mods.push_back({FlowOp::modify, key + " actions=" + entry.actions, entry.parsed});
      ++report.modified;
    }
  }
  if (!mods.empty()) flows_.bundle(mods, config_.cookie);
}

}  // namespace cutover::agent
