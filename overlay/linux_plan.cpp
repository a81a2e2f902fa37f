// The Linux bridge + VXLAN translation (see linux_plan.hpp).
#include "linux_plan.hpp"

#include <cstdio>

namespace cutover::overlay {

std::string linux_bridge_name(uint32_t vni) { return "cvb" + std::to_string(vni); }
std::string linux_vxlan_name(uint32_t vni) { return "cvx" + std::to_string(vni); }

std::string linux_ifb_name(const std::string& tap) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : tap) h = (h ^ c) * 16777619u;
  char buf[16];
  std::snprintf(buf, sizeof buf, "cvi%08x", h);
  return buf;
}

LinuxDesired plan_linux(const Topology& topo,
                        const std::map<std::string, std::string>& vm_ifnames) {
  LinuxDesired out;
  const MacAddress bum;  // all zeros
  for (const auto& [vni, view] : topo.networks) {
    const auto br = linux_bridge_name(vni);
    const auto vx = linux_vxlan_name(vni);
    out.bridges.push_back({br, vni, view.network.mtu});
    out.vxlans.push_back({vx, vni, topo.self.underlay_ip, 4789, br});
    for (const auto& port : view.local_ports) {
      auto it = vm_ifnames.find(port.iface_id);
      if (it == vm_ifnames.end()) {
        out.unbound_iface_ids.push_back(port.iface_id);
        continue;
      }
      out.bound_port_ids.push_back(port.id.str());
      if (!port.qos.empty()) {
        out.qos.push_back({it->second, port.qos.from_vm ? linux_ifb_name(it->second) : "",
                           port.qos.to_vm, port.qos.from_vm});
      }
      // Arriving (held): off the bridge until cutover; the agent writes what is relayed to it.
      if (view.held_iface_ids.count(port.iface_id)) continue;
      out.ports.push_back({it->second, br, port.id.str(), port.mac});
    }
    for (const auto& remote : view.remote_macs) {
      // A leaving port whose VM still runs here is delivered locally.
      if (remote.local_iface_id && view.leaving_iface_ids.count(*remote.local_iface_id) &&
          vm_ifnames.count(*remote.local_iface_id)) {
        continue;
      }
      out.fdb.insert({vx, remote.mac, remote.vtep});
    }
    for (const auto& vtep : view.flood_vteps) out.fdb.insert({vx, bum, vtep});
  }
  return out;
}

}  // namespace cutover::overlay
