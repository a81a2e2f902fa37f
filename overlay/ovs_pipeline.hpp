// OVS translation: Topology + what OVSDB reports (which ofport each VM iface-id and each tunnel
// has) -> the desired tunnel ports and the desired OpenFlow pipeline. Pure: no I/O, no OVS
// headers; flow text in ovs-ofctl syntax. Pipeline (all flows carry the agent's cookie):
//   table 0  classify: VM port + its MAC -> reg0=VNI, reg1=0; tunnel + tun_id -> reg0=VNI, reg1=1;
//            anything else dropped (unknown VNI, spoofed MAC).
//   table 10 L2: (VNI, dl_dst) -> local port, or tun_id=VNI + output to the MAC's VTEP;
//            flooding with split horizon: local source -> local ports + every VTEP of the VNI;
//            tunnel source -> local ports only, and only broadcast/multicast. Miss -> drop.
//            Migrations: an arriving (held) port gets only unicast that came by tunnel (reg1=1);
//            a leaving port whose VM stopped here (or whose tap is gone), and a port whose VM
//            left here at cutover (previous_host), have a forwarding pointer instead: their MAC
//            from anywhere (local or tunnel) -> the VTEP where the VM is now.
//            A port with a from_vm rate limit goes through its OpenFlow meter first (port_meter_id:
//            drop band, kbps, burst); its to_vm limit is its OVS port's QoS (linux-htb), not a
//            flow.
//   table 20 stateful ingress (ports with ingress_allow; conntrack zone = the port's ofport):
//            IP unicast to such a port goes through ct(zone) into this table with reg2 = ofport;
//            established/related -> the port; new + an allow rule -> commit + the port; new +
//            a carried connection (migrated with the VM) -> commit + the port; else drop. Its
//            IP traffic out is committed in table 0, so replies to it are established.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "topology.hpp"

namespace cutover::overlay {

struct OvsTunnelPort {
  std::string name;  // "cv-" + 8 hex digits, stable per remote VTEP
  IpAddress remote_ip;
  bool operator==(const OvsTunnelPort&) const = default;
};

struct OvsFlow {
  int table = 0;
  int priority = 0;
  std::string match;    // "" = match everything
  std::string actions;  // "drop" or an ovs-ofctl action list
  std::string text() const;
};

struct OvsPortMap {
  std::map<std::string, int64_t> vm_ofports;    // iface-id -> ofport (bound, link up)
  std::map<IpAddress, int64_t> tunnel_ofports;  // remote VTEP -> ofport
};

struct OvsDesired {
  std::vector<OvsTunnelPort> tunnels;
  std::vector<OvsFlow> flows;
  // Ports the state wants but OVS has not reported yet (for logs and "fully applied").
  std::vector<std::string> unbound_iface_ids;
  std::vector<std::string> bound_port_ids;  // local ports OVS has bound (ofport, link up)
  std::vector<IpAddress> unbound_tunnels;
  std::map<std::string, int64_t> ct_zones;  // stateful local port id -> its conntrack zone
  std::map<uint32_t, RateLimit> meters;     // meter id -> the from_vm limit it enforces
  std::map<std::string, RateLimit> shaped;  // bound local iface-id -> its to_vm limit
};

// Our OpenFlow meters: one per rate-limited local port, its id derived from the port's ofport
// (unique on the switch), in a range nothing else on the bridge is expected to use.
constexpr uint32_t kMeterBase = 0xc07e0000u;
inline uint32_t port_meter_id(int64_t ofport) {
  return kMeterBase + static_cast<uint32_t>(ofport & 0xffff);
}
inline bool is_our_meter(uint32_t id) { return (id & 0xffff0000u) == kMeterBase; }

constexpr int kClassifyTable = 0;
constexpr int kL2Table = 10;
constexpr int kAclTable = 20;

std::string tunnel_port_name(const IpAddress& remote);
// departed: iface-ids of local ports whose VM has stopped here for an outgoing migration's final
// copy (libvirt: paused for migration); their frames go to the migration's destination.
OvsDesired translate_ovs(const Topology& topo, const OvsPortMap& ports,
                         const std::set<std::string>& departed = {});
// The same translation in parts, for a translation that follows changes per network: the flows
// of no network (table-miss drops; the ACL table's when any port is stateful), and one network's
// flows and report fields appended to `out` (tunnels are the caller's: topo.remote_vteps).
std::vector<OvsFlow> ovs_global_flows(bool any_stateful);
void translate_ovs_network(uint32_t vni, const NetworkView& view, const OvsPortMap& ports,
                           const std::set<std::string>& departed, OvsDesired& out);

}  // namespace cutover::overlay
