// OvsReconciler: desired vs installed, for OVSDB tunnel ports and OpenFlow flows, per network.
#include "ovs_reconciler.hpp"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <iterator>
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
  own_index_.reset(state);
  return reconcile(own_index_, departed, true);
}

namespace {
// iface-ids whose entry differs between two maps (added, removed or changed).
template <typename Map>
std::set<std::string> changed_keys(const Map& a, const Map& b) {
  std::set<std::string> out;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || !(it->second == v)) out.insert(k);
  }
  for (const auto& [k, v] : b) {
    if (!a.count(k)) out.insert(k);
  }
  return out;
}
}  // namespace

ApplyReport OvsReconciler::reconcile(overlay::DesiredIndex& index,
                                     const std::set<std::string>& departed, bool verify) {
  return reconcile_pass(
      index.generation(), [&] { judge(index); },
      [&](ApplyReport& report) {
        try {
          apply(departed, verify, report);
        } catch (const std::invalid_argument& e) {
          // A flow the translation produced was refused by OVS's parser: our bug, not the user's.
          installed_known_ = false;
          throw std::runtime_error(std::string("internal translation error: ") + e.what());
        } catch (...) {
          installed_known_ = false;  // whatever happened, read the switch back next time
          throw;
        }
      });
}

void OvsReconciler::judge(overlay::DesiredIndex& index) {
  // What the state asks for, judged before anything is touched; networks that failed stay
  // pending until they pass.
  auto d = index.take_dirty();
  pending_.all = pending_.all || d.all;
  pending_.vnis.merge(d.vnis);
  if (index.problem()) throw *index.problem();
  if (pending_.all || !pending_.vnis.empty()) rebuild_views(index, pending_);
  pending_ = {};
}

void OvsReconciler::apply(const std::set<std::string>& departed, bool verify, ApplyReport& report) {
  db_.ensure_bridge(config_.bridge, config_.datapath_type);
  const auto ifaces = db_.interfaces();
  const auto map = port_map(ifaces, config_.bridge);
  // 1. What the switch holds, when we cannot tell from our own bundles.
  const bool dump = verify || !installed_known_;
  if (dump) {
    installed_known_ = false;
    installed_.clear();
    installed_meters_.clear();
    for (const auto& m : flows_.meters()) {
      if (overlay::is_our_meter(m.id)) installed_meters_[m.id] = m;
    }
    for (auto& e : flows_.dump(config_.cookie)) installed_[e.key] = std::move(e.actions);
    installed_known_ = true;
    if (!all_canonical_ && !installed_.empty()) {
      // What an empty table was given in the switch's words, to compare with what it says.
      for (auto& [vni, net] : nets_) {
        for (auto& [text, entry] : net.by_text) entry = canonical(text);
      }
      want_.clear();
      for (const auto& [vni, net] : nets_) {
        for (const auto& [text, entry] : net.by_text) want_[entry.key] = {entry.actions, vni};
      }
      all_canonical_ = true;
    }
  }
  // 2. Translate again what changed: rebuilt networks, and those whose local ports' taps or
  // departed VMs changed; every network when a tunnel's ofport changed.
  std::set<uint32_t> again;
  const bool every = !have_views_ || map.tunnel_ofports != last_map_.tunnel_ofports;
  for (const auto& iface : changed_keys(map.vm_ofports, last_map_.vm_ofports)) {
    if (auto it = vni_of_iface_.find(iface); it != vni_of_iface_.end()) again.insert(it->second);
  }
  std::vector<std::string> flipped;  // VMs that departed, or came back, since the last pass
  std::set_symmetric_difference(departed.begin(), departed.end(), last_departed_.begin(),
                                last_departed_.end(), std::back_inserter(flipped));
  for (const auto& iface : flipped) {
    if (auto it = vni_of_iface_.find(iface); it != vni_of_iface_.end()) again.insert(it->second);
  }
  for (const auto& [vni, net] : nets_) {
    if (vni != kGlobal && (every || !topo_.networks.count(vni))) again.insert(vni);
  }
  for (const auto& [vni, view] : topo_.networks) {
    if (every || !nets_.count(vni)) again.insert(vni);
  }
  again.merge(rebuilt_);
  for (auto vni : again) retranslate(vni, map, departed);
  rebuilt_.clear();
  have_views_ = true;
  last_map_ = map;
  last_departed_ = departed;
  bool stateful = false;
  for (const auto& [vni, net] : nets_) stateful = stateful || !net.ct_zones.empty();
  if (!nets_.count(kGlobal) || stateful != global_stateful_) {
    global_stateful_ = stateful;
    retranslate(kGlobal, map, departed);
  }

  for (const auto& i : ifaces) {
    if (i.bridge != config_.bridge || !map.vm_ofports.count(i.iface_id)) continue;
    report.tap_names[i.iface_id] = i.name;
    if (!topo_.local_iface_ids.count(i.iface_id)) report.unclaimed_taps.push_back(i.iface_id);
  }
  // 3. Tunnels, then meters and flows, then the shaping of VM ports.
  sync_tunnels(ifaces);
  sync_meters(false, report);
  sync_flows(dump, report);
  sync_meters(true, report);
  sync_shaping(ifaces, report);
  for (const auto& [vni, net] : nets_) {
    report.awaiting_taps.insert(report.awaiting_taps.end(), net.unbound_iface_ids.begin(),
                                net.unbound_iface_ids.end());
    report.bound_ports.insert(report.bound_ports.end(), net.bound_port_ids.begin(),
                              net.bound_port_ids.end());
    report.ct_zones.insert(net.ct_zones.begin(), net.ct_zones.end());
  }
  size_t tunnels = 0;
  for (const auto& ip : topo_.remote_vteps) {
    if (map.tunnel_ofports.count(ip)) {
      ++tunnels;
    } else {
      report.waiting_for.push_back("tunnel to " + ip.to_string());
    }
  }
  report.installed = {
      {"flows", installed_.size()}, {"meters", installed_meters_.size()}, {"tunnels", tunnels}};
  // A pass over everything (the install, a resync) leaves megabytes of freed parse results and
  // dumps in the heap: give them back, or the agent's RSS stays at that pass's peak.
  if (dump || every) malloc_trim(0);
}

void OvsReconciler::rebuild_views(const overlay::DesiredIndex& index,
                                  const overlay::DesiredIndex::Dirty& d) {
  if (d.all) {
    const auto all = index.snapshot();
    auto topo =
        overlay::build_topology(all, [&](size_t i) { return index.field_of(all.ports[i].id); });
    for (const auto& [vni, view] : topo_.networks) {
      if (!topo.networks.count(vni)) rebuilt_.insert(vni);  // gone: its flows go too
    }
    topo_ = std::move(topo);
    vtep_networks_.clear();
    iface_ports_.clear();
    for (const auto& [vni, view] : topo_.networks) {
      rebuilt_.insert(vni);
      for (const auto& ip : view.flood_vteps) ++vtep_networks_[ip];
      for (const auto& p : view.local_ports) ++iface_ports_[p.iface_id];
    }
  } else {
    // One network at a time, judged by the same rules on a state of that network alone.
    std::map<uint32_t, overlay::NetworkView> views;
    for (auto vni : d.vnis) {
      DesiredState one;
      one.generation = index.generation();
      one.host = index.self();
      one.hosts = index.hosts();
      for (const auto& n : index.networks()) {
        if (n.vni.value() == vni) one.networks.push_back(n);
      }
      for (const auto* p : index.ports_of(vni)) one.ports.push_back(*p);
      auto topo =
          overlay::build_topology(one, [&](size_t i) { return index.field_of(one.ports[i].id); });
      auto it = topo.networks.find(vni);
      if (it != topo.networks.end()) views.emplace(vni, std::move(it->second));
    }
    // What spans networks, kept by counting: the VTEPs, and one local port per iface-id.
    auto count = [&](const overlay::NetworkView& view, int by) {
      for (const auto& ip : view.flood_vteps) {
        if ((vtep_networks_[ip] += by) == 0) vtep_networks_.erase(ip);
      }
      for (const auto& p : view.local_ports) {
        if ((iface_ports_[p.iface_id] += by) == 0) iface_ports_.erase(p.iface_id);
      }
    };
    for (auto vni : d.vnis) {
      if (auto it = topo_.networks.find(vni); it != topo_.networks.end()) {
        count(it->second, -1);
        topo_.networks.erase(it);
      }
    }
    for (auto& [vni, view] : views) {
      count(view, +1);
      topo_.networks.emplace(vni, std::move(view));
    }
    for (auto vni : d.vnis) rebuilt_.insert(vni);
    topo_.remote_vteps.clear();
    for (const auto& [ip, n] : vtep_networks_)
      topo_.remote_vteps.insert(topo_.remote_vteps.end(), ip);
    topo_.local_iface_ids.clear();
    for (const auto& [iface, n] : iface_ports_) {
      if (n > 1) {
        throw ParseError("ports[iface_id=" + iface + "].iface_id",
                         "duplicate iface_id '" + iface + "' (local ports on two networks)");
      }
      topo_.local_iface_ids.insert(topo_.local_iface_ids.end(), iface);
    }
  }
  vni_of_iface_.clear();
  for (const auto& [vni, view] : topo_.networks) {
    for (const auto& p : view.local_ports) vni_of_iface_[p.iface_id] = vni;
  }
}

FlowEntry OvsReconciler::canonical(const std::string& text) {
  auto e = flows_.normalize(text, true);
  e.parsed.reset();
  return e;
}

void OvsReconciler::retranslate(uint32_t vni, const overlay::OvsPortMap& map,
                                const std::set<std::string>& departed) {
  overlay::OvsDesired part;
  if (vni == kGlobal) {
    part.flows = overlay::ovs_global_flows(global_stateful_);
  } else if (auto it = topo_.networks.find(vni); it != topo_.networks.end()) {
    overlay::translate_ovs_network(vni, it->second, map, departed, part);
  }
  NetFlows next;
  next.unbound_iface_ids = std::move(part.unbound_iface_ids);
  next.bound_port_ids = std::move(part.bound_port_ids);
  next.ct_zones = std::move(part.ct_zones);
  next.meters = std::move(part.meters);
  next.shaped = std::move(part.shaped);
  auto old = nets_.find(vni);
  // Into an empty table flows are taken as written, unparsed (nothing to compare them with yet;
  // the bundle parses them as it streams).
  const bool fresh = installed_known_ && installed_.empty();
  for (const auto& f : part.flows) {
    auto text = f.text();
    if (old != nets_.end()) {
      if (auto hit = old->second.by_text.find(text); hit != old->second.by_text.end()) {
        next.by_text.emplace(std::move(text), hit->second);
        continue;
      }
    }
    auto e = flows_.normalize(text, !fresh);
    if (fresh) all_canonical_ = false;
    if (e.parsed) parsed_[e.key] = e.parsed;  // for this pass's bundle only
    e.parsed.reset();
    next.by_text.emplace(std::move(text), std::move(e));
  }
  set_flows(vni, std::move(next));
}

void OvsReconciler::set_flows(uint32_t vni, NetFlows next) {
  auto old = nets_.find(vni);
  if (old != nets_.end()) {
    for (const auto& [id, limit] : old->second.meters) want_meters_.erase(id);
    for (const auto& [iface, limit] : old->second.shaped) want_shaped_.erase(iface);
  }
  want_meters_.insert(next.meters.begin(), next.meters.end());
  want_shaped_.insert(next.shaped.begin(), next.shaped.end());
  if (old != nets_.end()) {
    for (const auto& [text, e] : old->second.by_text) {
      auto it = want_.find(e.key);
      if (it != want_.end() && it->second.second == vni) {
        want_.erase(it);
        touched_.insert(e.key);
      }
    }
  }
  for (const auto& [text, e] : next.by_text) {
    auto& slot = want_[e.key];
    if (slot.first != e.actions || slot.second != vni) touched_.insert(e.key);
    slot = {e.actions, vni};
  }
  if (next.by_text.empty() && vni != kGlobal && !topo_.networks.count(vni)) {
    nets_.erase(vni);
  } else {
    nets_[vni] = std::move(next);
  }
}

void OvsReconciler::sync_tunnels(const std::vector<OvsInterface>& ifaces) {
  std::map<std::string, const OvsInterface*> owned;
  std::set<std::string> present;
  for (const auto& i : ifaces) {
    if (i.bridge != config_.bridge) continue;
    present.insert(i.name);
    if (i.owned && i.type == "vxlan") owned[i.name] = &i;
  }
  std::set<std::string> wanted;
  for (const auto& vtep : topo_.remote_vteps) {
    const auto name = overlay::tunnel_port_name(vtep);
    wanted.insert(name);
    auto it = owned.find(name);
    if (it != owned.end() && it->second->remote_ip == vtep) continue;
    if (it != owned.end())
      db_.del_port(config_.bridge, name);  // stale remote_ip
    else if (present.count(name)) {
      throw std::runtime_error("port " + name + " exists on " + config_.bridge +
                               " but is not owned by cutover");
    }
    db_.add_port(config_.bridge, name, "vxlan", {{"remote_ip", vtep.to_string()}, {"key", "flow"}});
  }
  for (const auto& [name, iface] : owned) {
    if (!wanted.count(name)) db_.del_port(config_.bridge, name);
  }
}

void OvsReconciler::sync_flows(bool whole, ApplyReport& report) {
  std::vector<FlowMod> mods;
  std::vector<std::string> removes;
  auto add_or_modify = [&](const std::string& key, const std::string& actions) {
    auto it = installed_.find(key);
    if (it != installed_.end() && it->second == actions) return;
    auto parsed = parsed_.find(key);
    mods.push_back({it == installed_.end() ? FlowOp::add : FlowOp::modify,
                    key + " actions=" + actions,
                    parsed != parsed_.end() ? parsed->second : nullptr});
    ++(it == installed_.end() ? report.added : report.modified);
  };
  if (whole) {
    for (const auto& [key, actions] : installed_) {
      if (!want_.count(key)) removes.push_back(key);
    }
    for (const auto& [key, want] : want_) add_or_modify(key, want.first);
  } else {
    for (const auto& key : touched_) {
      auto w = want_.find(key);
      if (w != want_.end()) {
        add_or_modify(key, w->second.first);
      } else if (installed_.count(key)) {
        removes.push_back(key);
      }
    }
  }
  touched_.clear();
  parsed_.clear();
  // Removals first: a flow whose key changed its spelling goes before its successor arrives.
  std::vector<FlowMod> all;
  all.reserve(removes.size() + mods.size());
  for (auto& key : removes) all.push_back({FlowOp::remove, key});
  report.removed = removes.size();
  for (auto& m : mods) all.push_back(std::move(m));
  if (all.empty()) return;
  flows_.bundle(all, config_.cookie);
  for (const auto& key : removes) installed_.erase(key);
  for (const auto& m : all) {
    if (m.op == FlowOp::remove) continue;
    const auto at = m.flow.find(" actions=");
    installed_[m.flow.substr(0, at)] = m.flow.substr(at + 9);
  }
}

void OvsReconciler::sync_meters(bool remove, ApplyReport& report) {
  if (remove) {
    for (auto it = installed_meters_.begin(); it != installed_meters_.end();) {
      if (want_meters_.count(it->first)) {
        ++it;
        continue;
      }
      flows_.del_meter(it->first);
      ++report.removed;
      it = installed_meters_.erase(it);
    }
    return;
  }
  for (const auto& [id, limit] : want_meters_) {
    const Meter m{id, limit.kbit_s, burst_kbit(limit)};
    auto it = installed_meters_.find(id);
    if (it != installed_meters_.end() && it->second == m) continue;
    const bool modify = it != installed_meters_.end();
    flows_.set_meter(m, modify);
    ++(modify ? report.modified : report.added);
    installed_meters_[id] = m;
  }
}

void OvsReconciler::sync_shaping(const std::vector<OvsInterface>& ifaces, ApplyReport& report) {
  std::set<std::string> foreign;
  for (const auto& i : ifaces) {
    if (i.bridge != config_.bridge || i.iface_id.empty() || i.owned) continue;
    auto want = want_shaped_.find(i.iface_id);
    if (i.qos_max_rate == OvsInterface::kForeignQos) {
      // Someone else shapes this port (an operator, libvirt's own <bandwidth>): theirs stays.
      // Not a missing object of the generation: migrations to this host go on without it.
      if (want != want_shaped_.end() && foreign.insert(i.name).second &&
          !foreign_qos_.count(i.name)) {
        logger("ovs")->warn("port {} ({}): its QoS row is not cutover's; to_vm limit not applied",
                            i.name, i.iface_id);
      }
      continue;
    }
    if (want == want_shaped_.end()) {
      if (i.qos_max_rate != OvsInterface::kNoQos) {
        db_.set_port_qos(i.name, 0, 0);
        ++report.removed;
      }
      continue;
    }
    const int64_t rate = want->second.kbit_s * 1000;
    const int64_t burst = burst_kbit(want->second) * 1000;
    if (i.qos_max_rate == rate && i.qos_burst == burst) continue;
    db_.set_port_qos(i.name, rate, burst);
    ++(i.qos_max_rate == OvsInterface::kNoQos ? report.added : report.modified);
  }
  foreign_qos_ = std::move(foreign);
  report.removed += db_.gc_qos();
}

}  // namespace cutover::agent
