// The OVS pipeline translation (see ovs_pipeline.hpp for the table layout).
#include "ovs_pipeline.hpp"

#include <cstdio>
#include <set>

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

// Which frames for a local port are delivered to it: all, only those arriving by tunnel (a
// port arriving here: what the source forwards once the VM stopped there), or none (a port
// whose VM has left: its frames are forwarded to the destination).
enum class Deliver { all, from_tunnels, none };

// The flows that make one port stateful (see the table layout in ovs_pipeline.hpp). Zone and
// reg2 are the port's ofport, unique on this switch.
// meter: "meter:N," for a port whose frames are rate-limited (an instruction: it comes first).
void stateful_flows(const Port& port, int64_t ofport_num, const std::string& in_vni,
                    const std::string& meter, const std::string& classify, Deliver deliver,
                    std::vector<OvsFlow>& flows) {
  const bool deliver_here = deliver != Deliver::none;
  const std::string to_port = in_vni + (deliver == Deliver::from_tunnels ? ",reg1=1" : "");
  const std::string ofport = std::to_string(ofport_num);
  const std::string zone = "zone=" + ofport;
  const std::string mac = port.mac.to_string();
  const std::string output = "output:" + ofport;
  const std::string commit = "ct(commit," + zone + ")," + output;
  for (const char* family : {"ip", "ipv6"}) {
    // Out of the VM: committed, so that replies come back established.
    flows.push_back({kClassifyTable, 110,
                     std::string(family) + ",in_port=" + ofport + ",dl_src=" + mac,
                     meter + "ct(commit," + zone + ")," + classify});
    // Into the VM: tracked, then judged in the ACL table.
    if (deliver_here) {
      flows.push_back({kL2Table, 110, std::string(family) + "," + to_port + ",dl_dst=" + mac,
                       "set_field:" + ofport + "->reg2,ct(" + zone + ",table=20)"});
    }
  }
  // Neighbour discovery is not connection state: always delivered (where anything is).
  for (const char* type : {"135", "136"}) {
    if (!deliver_here) break;
    flows.push_back(
        {kL2Table, 120, "icmp6," + to_port + ",dl_dst=" + mac + ",icmp_type=" + type, output});
  }
  const std::string reg = "reg2=" + ofport;
  std::set<std::string> seen;  // duplicate rules / connections yield one flow
  auto acl = [&](int priority, const std::string& match, const std::string& actions) {
    if (seen.insert(match).second) flows.push_back({kAclTable, priority, match, actions});
  };
  acl(100, "ct_state=+est+trk," + reg, output);
  acl(100, "ct_state=+rel+trk," + reg, output);
  for (const auto& rule : *port.ingress_allow) {
    const bool icmp = rule.protocol == "icmp";
    const std::string dport = rule.port ? ",tp_dst=" + std::to_string(rule.port) : "";
    for (const std::string& proto : {icmp ? std::string("icmp") : rule.protocol,
                                     icmp ? std::string("icmp6") : rule.protocol + "6"}) {
      acl(90, "ct_state=+new+trk," + reg + "," + proto + dport, commit);
    }
  }
  for (const auto& c : port.carried_conns) {
    const bool v4 = c.local_ip.is_v4();
    const std::string proto = v4 ? c.protocol : c.protocol + "6";
    const std::string src = v4 ? ",nw_src=" : ",ipv6_src=";
    const std::string dst = v4 ? ",nw_dst=" : ",ipv6_dst=";
    // The remote side's next packet arrives as "new" on this switch: admit exactly this one
    // connection and commit it (OVS's userspace conntrack picks up established TCP mid-stream).
    acl(95,
        "ct_state=+new+trk," + reg + "," + proto + src + c.remote_ip.to_string() + dst +
            c.local_ip.to_string() + ",tp_src=" + std::to_string(c.remote_port) +
            ",tp_dst=" + std::to_string(c.local_port),
        commit);
  }
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

OvsDesired translate_ovs(const Topology& topo, const OvsPortMap& ports,
                         const std::set<std::string>& departed) {
  OvsDesired out;
  for (const auto& vtep : topo.remote_vteps) {
    out.tunnels.push_back(OvsTunnelPort{tunnel_port_name(vtep), vtep});
    if (!ports.tunnel_ofports.count(vtep)) out.unbound_tunnels.push_back(vtep);
  }
  auto globals = ovs_global_flows(false);
  out.flows.assign(globals.begin(), globals.end());
  for (const auto& [vni, view] : topo.networks)
    translate_ovs_network(vni, view, ports, departed, out);
  if (!out.ct_zones.empty()) out.flows.push_back(ovs_global_flows(true).back());
  return out;
}

std::vector<OvsFlow> ovs_global_flows(bool any_stateful) {
  std::vector<OvsFlow> flows{{kClassifyTable, 0, "", "drop"}, {kL2Table, 0, "", "drop"}};
  if (any_stateful) flows.push_back({kAclTable, 0, "", "drop"});
  return flows;
}

void translate_ovs_network(uint32_t vni, const NetworkView& view, const OvsPortMap& ports,
                           const std::set<std::string>& departed, OvsDesired& out) {
  auto& flows = out.flows;
  const std::string vni_hex = hex(vni);
  const std::string in_vni = "reg0=" + vni_hex;
  // A leaving port whose VM stopped here, or whose tap is gone: forwarded, not delivered.
  const auto& leaving = view.leaving_iface_ids;  // (structured bindings can't be captured)
  auto gone = [&](const std::string& iface_id) {
    return leaving.count(iface_id) &&
           (departed.count(iface_id) || !ports.vm_ofports.count(iface_id));
  };

  std::vector<int64_t> local_ofports;
  std::set<int64_t> stateful_ofports;  // delivered here, behind their firewall
  for (const auto& port : view.local_ports) {
    auto it = ports.vm_ofports.find(port.iface_id);
    if (it == ports.vm_ofports.end()) {
      out.unbound_iface_ids.push_back(port.iface_id);
      continue;
    }
    const std::string ofport = std::to_string(it->second);
    out.bound_port_ids.push_back(port.id.str());
    const std::string classify = "set_field:" + vni_hex + "->reg0,set_field:0->reg1,goto_table:10";
    // Rate limits: the VM's frames through its meter; what goes to it shaped on its OVS port.
    std::string meter;
    if (port.qos.from_vm) {
      const auto id = port_meter_id(it->second);
      out.meters[id] = *port.qos.from_vm;
      meter = "meter:" + std::to_string(id) + ",";
    }
    if (port.qos.to_vm) out.shaped[port.iface_id] = *port.qos.to_vm;
    flows.push_back({kClassifyTable, 100, "in_port=" + ofport + ",dl_src=" + port.mac.to_string(),
                     meter + classify});
    const bool held = view.held_iface_ids.count(port.iface_id) > 0;
    const Deliver deliver = gone(port.iface_id) ? Deliver::none
                            : held              ? Deliver::from_tunnels
                                                : Deliver::all;
    if (port.ingress_allow) {
      out.ct_zones[port.id.str()] = it->second;
      stateful_flows(port, it->second, in_vni, meter, classify, deliver, flows);
    }
    if (deliver == Deliver::none) continue;  // the remote location below forwards it
    if (deliver == Deliver::from_tunnels) {
      // Arriving: what the source forwards (the VM stopped there) queues in the tap until
      // the VM resumes here. Local senders' frames go to the source (remote location below).
      flows.push_back(
          {kL2Table, 100, in_vni + ",reg1=1,dl_dst=" + port.mac.to_string(), "output:" + ofport});
      continue;
    }
    local_ofports.push_back(it->second);
    if (port.ingress_allow) stateful_ofports.insert(it->second);
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
    bool forward = remote.forward;
    if (remote.local_iface_id) {
      const auto& iface = *remote.local_iface_id;
      if (view.leaving_iface_ids.count(iface)) {
        if (!gone(iface)) continue;  // its VM still runs here: delivered locally
        forward = true;              // everything for it, from anywhere, to the destination
      }
      // An arriving port: local senders' frames go to the source, where its VM runs.
    }
    auto it = ports.tunnel_ofports.find(remote.vtep);
    if (it == ports.tunnel_ofports.end()) continue;  // tunnel not up yet: flooding covers it
    flows.push_back({kL2Table, 100,
                     in_vni + (forward ? "" : ",reg1=0") + ",dl_dst=" + remote.mac.to_string(),
                     "set_field:" + vni_hex + "->tun_id,output:" + std::to_string(it->second)});
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
  const std::string from_tunnel_bum = ",reg1=1,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00";
  if (!local_actions.empty() && !flood_tunnels.empty()) {
    flows.push_back({kL2Table, 50, in_vni + from_tunnel_bum, local_actions});
  }
  if (!stateful_ofports.empty()) {
    // Flooded IP (broadcast, multicast, unknown unicast) reaches stateful ports through their
    // firewall as well; ARP and neighbour discovery are flooded to them directly.
    std::string local_ip;
    for (auto ofport : local_ofports) {
      const std::string n = std::to_string(ofport);
      local_ip +=
          (local_ip.empty() ? "" : ",") +
          (stateful_ofports.count(ofport) ? "set_field:" + n + "->reg2,ct(zone=" + n + ",table=20)"
                                          : "output:" + n);
    }
    std::string from_local_ip = local_ip + from_local.substr(local_actions.size());
    for (const char* family : {"ip", "ipv6"}) {
      flows.push_back(
          {kL2Table, 60, std::string(family) + "," + in_vni + ",reg1=0", from_local_ip});
      if (!flood_tunnels.empty()) {
        flows.push_back(
            {kL2Table, 60, std::string(family) + "," + in_vni + from_tunnel_bum, local_ip});
      }
    }
    for (const char* type : {"133", "134", "135", "136"}) {
      const std::string nd = "icmp6," + in_vni;
      flows.push_back({kL2Table, 65, nd + ",reg1=0,icmp_type=" + type, from_local});
      if (!flood_tunnels.empty()) {
        flows.push_back({kL2Table, 65, nd + from_tunnel_bum + ",icmp_type=" + type, local_actions});
      }
    }
  }
}

}  // namespace cutover::overlay
