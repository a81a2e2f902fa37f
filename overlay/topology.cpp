// Builds and validates the Topology view of a DesiredState.
#include "topology.hpp"

#include <algorithm>

namespace cutover::overlay {

namespace {
std::string at(const char* list, size_t i, const char* field = nullptr) {
  std::string s = std::string(list) + "[" + std::to_string(i) + "]";
  if (field) s += std::string(".") + field;
  return s;
}
}  // namespace

Topology build_topology(const DesiredState& state,
                        const std::function<std::string(size_t)>& port_name) {
  auto port_at = [&](size_t i, const char* field) {
    return port_name ? port_name(i) + "." + field : at("ports", i, field);
  };
  Topology topo;
  topo.generation = state.generation;

  std::map<HostId, Host> hosts;
  for (size_t i = 0; i < state.hosts.size(); ++i) {
    const auto& h = state.hosts[i];
    if (!hosts.emplace(h.id, h).second) {
      throw ParseError(at("hosts", i, "id"), "duplicate host id '" + h.id.str() + "'");
    }
  }
  auto self = hosts.find(state.host);
  if (self == hosts.end()) {
    throw ParseError("host", "this agent's host '" + state.host.str() + "' is not in hosts");
  }
  topo.self = self->second;
  for (size_t i = 0; i < state.hosts.size(); ++i) {
    const auto& h = state.hosts[i];
    if (h.id != topo.self.id && h.underlay_ip == topo.self.underlay_ip) {
      throw ParseError(at("hosts", i, "underlay_ip"),
                       "host '" + h.id.str() + "' has this host's underlay IP");
    }
  }

  std::map<NetworkId, uint32_t> vni_of;
  for (size_t i = 0; i < state.networks.size(); ++i) {
    const auto& n = state.networks[i];
    if (vni_of.count(n.id)) {
      throw ParseError(at("networks", i, "id"), "duplicate network id '" + n.id.str() + "'");
    }
    if (topo.networks.count(n.vni.value())) {
      throw ParseError(at("networks", i, "vni"),
                       "VNI " + std::to_string(n.vni.value()) + " used by two networks");
    }
    vni_of[n.id] = n.vni.value();
    topo.networks[n.vni.value()].network = n;
  }

  std::set<PortId> port_ids;
  std::map<std::pair<uint32_t, MacAddress>, PortId> macs;
  for (size_t i = 0; i < state.ports.size(); ++i) {
    const auto& p = state.ports[i];
    if (!port_ids.insert(p.id).second) {
      throw ParseError(port_at(i, "id"), "duplicate port id '" + p.id.str() + "'");
    }
    auto vni = vni_of.find(p.network);
    if (vni == vni_of.end()) {
      throw ParseError(port_at(i, "network"), "unknown network '" + p.network.str() + "'");
    }
    auto [it, fresh] = macs.emplace(std::make_pair(vni->second, p.mac), p.id);
    if (!fresh) {
      throw ParseError(port_at(i, "mac"), "MAC " + p.mac.to_string() + " already used in VNI " +
                                              std::to_string(vni->second) + " by port '" +
                                              it->second.str() + "'");
    }
    if (!p.host) continue;  // known but not placed: no location to program
    auto vtep_of = [&](const HostId& h, const char* field) {
      auto host = hosts.find(h);
      if (host == hosts.end()) {
        throw ParseError(port_at(i, field), "unknown host '" + h.str() + "'");
      }
      return host->second.underlay_ip;
    };
    const HostId& self_id = topo.self.id;
    auto& view = topo.networks[vni->second];
    // Every other location is a VTEP of the network: it floods there and accepts from there.
    for (const auto& [where, field] : {std::pair{&p.host, "host"},
                                       {&p.migrating_to, "migrating_to"},
                                       {&p.previous_host, "previous_host"}}) {
      if (!*where) continue;
      const auto vtep = vtep_of(**where, field);
      if (**where == self_id) continue;
      view.flood_vteps.insert(vtep);
      topo.remote_vteps.insert(vtep);
    }
    const bool arriving = p.migrating_to == self_id;
    const bool leaving = *p.host == self_id && p.migrating_to && !arriving;
    if (*p.host == self_id || arriving) {
      if (!topo.local_iface_ids.insert(p.iface_id).second) {
        throw ParseError(port_at(i, "iface_id"), "duplicate iface_id '" + p.iface_id + "'");
      }
      view.local_ports.push_back(p);
    }
    if (arriving) {
      view.held_iface_ids.insert(p.iface_id);
      view.remote_macs.push_back({p.mac, p.id, vtep_of(*p.host, "host"), p.iface_id, false});
    } else if (leaving) {
      view.leaving_iface_ids.insert(p.iface_id);
      view.remote_macs.push_back(
          {p.mac, p.id, vtep_of(*p.migrating_to, "migrating_to"), p.iface_id, true});
    } else if (*p.host != self_id) {
      view.remote_macs.push_back(
          {p.mac, p.id, vtep_of(*p.host, "host"), std::nullopt, p.previous_host == self_id});
    }
  }
  for (auto& [vni, view] : topo.networks) {
    std::sort(view.local_ports.begin(), view.local_ports.end(),
              [](const Port& a, const Port& b) { return a.id < b.id; });
    std::sort(view.remote_macs.begin(), view.remote_macs.end(),
              [](const RemoteMac& a, const RemoteMac& b) { return a.mac < b.mac; });
  }
  return topo;
}

}  // namespace cutover::overlay
