// The OVS pipeline translation (see ovs_pipeline.hpp for the table layout).
#include "ovs_pipeline.hpp"

#include <cstdio>

namespace cutover::overlay {

namespace {
std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}
uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}
}  // namespace

std::string OvsFlow::text() const {
  std::string s = "table=" + std::to_string(table) + ",priority=" + std::to_string(priority);
  if (!match.empty()) s += "," + match;
  return s + " actions=" + actions;
}

std::string tunnel_port_name(const IpAddress& remote) {
  char buf[16];
  const uint32_t id = remote.is_v4() ? remote.v4_host_order() : fnv1a(remote.to_string());
  std::snprintf(buf, sizeof buf, "cv-%08x", id);
  return buf;
}

OvsDesired translate_ovs(const Topology& topo, const OvsPortMap& ports) {
  OvsDesired out;
  for (const auto& vtep : topo.remote_vteps) {
    out.tunnels.push_back(OvsTunnelPort{tunnel_port_name(vtep), vtep});
    if (!ports.tunnel_ofports.count(vtep)) out.unbound_tunnels.push_back(vtep);
  }
  auto& flows = out.flows;
  flows.push_back({kClassifyTable, 0, "", "drop"});
  flows.push_back({kL2Table, 0, "", "drop"});

  for (const auto& [vni, view] : topo.networks) {
    const std::string vni_hex = hex(vni);
    const std::string in_vni = "reg0=" + vni_hex;

    std::vector<int64_t> local_ofports;
    for (const auto& port : view.local_ports) {
      auto it = ports.vm_ofports.find(port.iface_id);
      if (it == ports.vm_ofports.end()) {
        out.unbound_iface_ids.push_back(port.iface_id);
        continue;
      }
      const std::string ofport = std::to_string(it->second);
      out.bound_port_ids.push_back(port.id.str());
      flows.push_back({kClassifyTable, 100, "in_port=" + ofport + ",dl_src=" + port.mac.to_string(),
                       "set_field:" + vni_hex + "->reg0,set_field:0->reg1,goto_table:10"});
      if (view.held_iface_ids.count(port.iface_id)) continue;  // gate closed: deliver nothing
      local_ofports.push_back(it->second);
      flows.push_back(
          {kL2Table, 100, in_vni + ",dl_dst=" + port.mac.to_string(), "output:" + ofport});
    }

    std::vector<int64_t> flood_tunnels;
    for (const auto& vtep : view.flood_vteps) {
      auto it = ports.tunnel_ofports.find(vtep);
      if (it == ports.tunnel_ofports.end()) continue;
      flood_tunnels.push_back(it->second);
      flows.push_back({kClassifyTable, 100,
                       "in_port=" + std::to_string(it->second) + ",tun_id=" + vni_hex,
                       "set_field:" + vni_hex + "->reg0,set_field:1->reg1,goto_table:10"});
    }

    for (const auto& remote : view.remote_macs) {
      // A migrating port bound here is delivered locally; the other location is its fallback.
      if (remote.local_iface_id && ports.vm_ofports.count(*remote.local_iface_id) &&
          !view.held_iface_ids.count(*remote.local_iface_id)) {
        continue;
      }
      std::string actions = "set_field:" + vni_hex + "->tun_id";
      bool any = false;
      for (const auto& vtep : remote.vteps) {
        auto it = ports.tunnel_ofports.find(vtep);
        if (it == ports.tunnel_ofports.end()) continue;
        actions += ",output:" + std::to_string(it->second);
        any = true;
      }
      if (!any) continue;  // tunnel not up yet: flooding covers it meanwhile
      flows.push_back(
          {kL2Table, 100, in_vni + ",reg1=0,dl_dst=" + remote.mac.to_string(), actions});
    }

    // Flooding with split horizon. OVS never outputs a frame back to its in_port.
    std::string local_actions;
    for (auto ofport : local_ofports) {
      local_actions += (local_actions.empty() ? "" : ",") + ("output:" + std::to_string(ofport));
    }
    std::string from_local = local_actions;
    if (!flood_tunnels.empty()) {
      from_local += (from_local.empty() ? "" : ",") + ("set_field:" + vni_hex + "->tun_id");
      for (auto ofport : flood_tunnels) from_local += ",output:" + std::to_string(ofport);
    }
    if (!from_local.empty()) {
      flows.push_back({kL2Table, 50, in_vni + ",reg1=0", from_local});
    }
    if (!local_actions.empty() && !flood_tunnels.empty()) {
      flows.push_back({kL2Table, 50, in_vni + ",reg1=1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00",
                       local_actions});
    }
  }
  return out;
}

}  // namespace cutover::overlay
