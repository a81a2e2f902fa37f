// LinuxReconciler: desired vs installed for bridges, VXLAN devices, VM tap enslavement and FDB.
#include "linux_reconciler.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <set>
#include <stdexcept>

#include "linux_firewall.hpp"
#include "linux_plan.hpp"
#include "reconcile_pass.hpp"
#include "topology.hpp"

namespace cutover::agent {

namespace {
bool owned(const NlLink& l) { return l.alias == NetlinkTables::kOwnedAlias; }

NlTbf to_tbf(const RateLimit& r) { return {r.kbit_s * 125, burst_kbit(r) * 125}; }

// The kernel keeps a bucket as time at the rate: what it reports back is rounded.
bool close_enough(const std::optional<NlTbf>& have, const std::optional<NlTbf>& want) {
  if (!have || !want) return !have && !want;
  auto near = [](int64_t a, int64_t b) { return std::abs(a - b) <= std::max<int64_t>(64, b / 50); };
  return have->rate_bytes_s == want->rate_bytes_s && near(have->burst_bytes, want->burst_bytes);
}
}  // namespace

void LinuxReconciler::sync_qos(const overlay::LinuxDesired& desired,
                               const std::vector<NlLink>& links, ApplyReport& report) {
  std::map<std::string, const NlLink*> by_name;
  for (const auto& l : links) by_name[l.name] = &l;
  std::set<std::string> ifbs;
  for (const auto& q : desired.qos) {
    if (q.ifb.empty()) continue;
    ifbs.insert(q.ifb);
    auto it = by_name.find(q.ifb);
    if (it == by_name.end()) {
      nl_.add_ifb(q.ifb);
      ++report.added;
    } else if (!owned(*it->second) || it->second->kind != "ifb") {
      throw std::runtime_error("interface " + q.ifb + " exists but is not cutover's ifb");
    } else if (!it->second->up) {
      nl_.set_up(q.ifb);
      ++report.modified;
    }
  }
  std::vector<std::string> devs;
  for (const auto& l : links) {
    if (!owned(l) || l.kind == "ifb") devs.push_back(l.name);
  }
  devs.insert(devs.end(), ifbs.begin(), ifbs.end());
  auto have = nl_.tc(devs);
  auto set_tbf = [&](const std::string& dev, const std::optional<NlTbf>& want) {
    auto it = have.find(dev);
    const std::optional<NlTbf> now = it == have.end() ? std::nullopt : it->second.tbf;
    if (close_enough(now, want)) return;
    nl_.set_tbf(dev, want);
    ++(want ? (now ? report.modified : report.added) : report.removed);
  };
  auto set_redirect = [&](const std::string& dev, const std::string& to) {
    auto it = have.find(dev);
    const std::string now = it == have.end() ? "" : it->second.redirect_to;
    if (now == to) return;
    nl_.set_redirect(dev, to);
    ++(to.empty() ? report.removed : report.modified);
  };
  std::set<std::string> limited;
  for (const auto& q : desired.qos) {
    limited.insert(q.ifname);
    set_tbf(q.ifname, q.to_vm ? std::optional(to_tbf(*q.to_vm)) : std::nullopt);
    if (q.from_vm) set_tbf(q.ifb, to_tbf(*q.from_vm));
    set_redirect(q.ifname, q.ifb);
  }
  for (const auto& [dev, tc] : have) {
    auto l = by_name.find(dev);
    const bool our_ifb = l != by_name.end() && owned(*l->second) && l->second->kind == "ifb";
    if (limited.count(dev) || ifbs.count(dev) || our_ifb) continue;  // (unwanted ifbs: below)
    if (!tc.redirect_to.empty()) set_redirect(dev, "");
    if (tc.tbf) set_tbf(dev, std::nullopt);
  }
  for (const auto& l : links) {
    if (owned(l) && l.kind == "ifb" && !ifbs.count(l.name)) {
      nl_.del_link(l.name);
      ++report.removed;
    }
  }
}

std::map<std::string, std::string> LinuxReconciler::vm_ifnames(const std::vector<NlLink>& links) {
  std::map<std::string, std::string> out;
  for (const auto& l : links) {
    if (owned(l) || l.kind == "bridge" || l.kind == "vxlan") continue;
    if (l.alias.rfind("iface-id=", 0) == 0) out[l.alias.substr(9)] = l.name;
  }
  for (const auto& l : links) {
    if (owned(l) || l.kind == "bridge" || l.kind == "vxlan") continue;
    out.emplace(l.name, l.name);  // a tap named after its iface-id, unless an alias claimed it
  }
  return out;
}

ApplyReport LinuxReconciler::reconcile(const DesiredState& state) {
  overlay::DesiredIndex index;
  index.reset(state);
  return reconcile(index);
}

ApplyReport LinuxReconciler::reconcile(const overlay::DesiredIndex& index) {
  overlay::Topology topo;
  return reconcile_pass(
      index.generation(),
      [&] {
        if (index.problem()) throw *index.problem();
        const auto all = index.snapshot();
        topo =
            overlay::build_topology(all, [&](size_t i) { return index.field_of(all.ports[i].id); });
      },
      [&](ApplyReport& report) { apply(topo, report); });
}

void LinuxReconciler::apply(const overlay::Topology& topo, ApplyReport& report) {
  auto links = nl_.links();
  std::map<std::string, NlLink> by_name;
  for (const auto& l : links) by_name[l.name] = l;
  const auto ifnames = vm_ifnames(links);
  auto desired = overlay::plan_linux(topo, ifnames);
  for (const auto& id : topo.local_iface_ids) {
    if (auto it = ifnames.find(id); it != ifnames.end()) report.tap_names[id] = it->second;
  }
  // A VM's tap no port here claims: marked with its iface-id, or a tun device named after it.
  for (const auto& l : links) {
    if (owned(l) || !l.up) continue;
    std::string id = l.alias.rfind("iface-id=", 0) == 0 ? l.alias.substr(9)
                     : l.kind == "tun"                  ? l.name
                                                        : "";
    if (!id.empty() && !topo.local_iface_ids.count(id)) report.unclaimed_taps.push_back(id);
  }

  auto ensure_up = [&](const std::string& name) {
    auto it = by_name.find(name);
    if (it == by_name.end() || !it->second.up) {
      nl_.set_up(name);
      ++report.modified;
    }
  };
  std::set<std::string> wanted_links;
  for (const auto& b : desired.bridges) {
    wanted_links.insert(b.name);
    auto it = by_name.find(b.name);
    if (it == by_name.end()) {
      nl_.add_bridge(b.name, b.mtu);
      ++report.added;
    } else if (!owned(it->second)) {
      throw std::runtime_error("interface " + b.name + " exists but is not owned by cutover");
    }
    ensure_up(b.name);
  }
  for (const auto& v : desired.vxlans) {
    wanted_links.insert(v.name);
    auto it = by_name.find(v.name);
    if (it != by_name.end() && !owned(it->second)) {
      throw std::runtime_error("interface " + v.name + " exists but is not owned by cutover");
    }
    const bool matches = it != by_name.end() && it->second.kind == "vxlan" &&
                         it->second.vni == v.vni && it->second.local == v.local &&
                         it->second.dstport == v.dstport && !it->second.learning;
    if (it != by_name.end() && !matches) {
      nl_.del_link(v.name);  // VNI/local/port cannot be changed in place
      ++report.removed;
    }
    if (!matches) {
      nl_.add_vxlan(v.name, v.vni, v.local, v.dstport);
      ++report.added;
    }
    if (!matches || it->second.master != v.bridge) {
      nl_.set_master(v.name, v.bridge);
      if (matches) ++report.modified;
    }
    if (!matches) {
      nl_.set_up(v.name);
    } else {
      ensure_up(v.name);
    }
  }
  std::set<std::string> bound;
  std::vector<std::string> tap_names;
  for (const auto& p : desired.ports) tap_names.push_back(p.ifname);
  std::set<std::pair<std::string, MacAddress>> pinned;
  for (const auto& e : nl_.pins(tap_names)) pinned.insert(e);
  for (const auto& p : desired.ports) {
    bound.insert(p.ifname);
    const auto& l = by_name.at(p.ifname);
    const bool moved = l.master != p.bridge;
    if (moved) {
      nl_.set_master(p.ifname, p.bridge);
      ++report.modified;
    }
    if (moved || !pinned.count({p.ifname, p.mac})) {
      nl_.pin(p.ifname, p.mac);
      ++report.added;
    }
    ensure_up(p.ifname);
  }
  // VM taps still on one of our bridges but no longer wanted there: release them.
  for (const auto& l : links) {
    if (owned(l) || bound.count(l.name) || l.master.empty()) continue;
    auto m = by_name.find(l.master);
    if (m != by_name.end() && owned(m->second)) {
      nl_.set_master(l.name, "");
      ++report.modified;
    }
  }
  std::vector<std::string> vx_names;
  for (const auto& v : desired.vxlans) vx_names.push_back(v.name);
  const auto listed = nl_.fdb(vx_names);
  const std::set<overlay::LinuxFdb> have(listed.begin(), listed.end());
  for (const auto& e : have) {
    if (!desired.fdb.count(e)) {
      nl_.fdb_del(e);
      ++report.removed;
    }
  }
  for (const auto& e : desired.fdb) {
    if (!have.count(e)) {
      nl_.fdb_add(e);
      ++report.added;
    }
  }
  sync_qos(desired, links, report);
  const auto firewall = overlay::plan_linux_firewall(topo);
  if (nl_.set_firewall(firewall.ruleset))
    ++(firewall.ruleset.empty() ? report.removed : report.modified);
  report.ct_zones = firewall.ct_zones;
  // Our devices no longer wanted: VXLAN devices first, then their bridges.
  for (const char* kind : {"vxlan", "bridge"}) {
    for (const auto& l : links) {
      if (owned(l) && l.kind == kind && !wanted_links.count(l.name)) {
        nl_.del_link(l.name);
        ++report.removed;
      }
    }
  }
  for (const auto& id : desired.unbound_iface_ids) report.awaiting_taps.push_back(id);
  report.bound_ports = desired.bound_port_ids;
  report.installed = {{"links", desired.bridges.size() + desired.vxlans.size()},
                      {"fdb_entries", desired.fdb.size()},
                      {"rate_limited_taps", desired.qos.size()},
                      {"firewalled_ports", firewall.ports}};
}

}  // namespace cutover::agent
