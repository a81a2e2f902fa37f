// Linux kernel translation: Topology + which kernel interface carries each local VM port ->
// the desired Linux objects: per VNI a bridge (cvb<vni>) and a VXLAN device (cvx<vni>: that VNI,
// local underlay IP, dstport 4789, learning off) enslaved to it; VM taps enslaved to their VNI's
// bridge with their MAC pinned there (static bridge FDB entry); a static VXLAN FDB entry for
// every remote MAC (to its one host's VTEP) and head-end replication entries
// (00:00:00:00:00:00 -> every VTEP of the VNI) for BUM traffic. A port arriving by migration
// stays off the bridge until cutover; one leaving is delivered here while its tap is here, then
// its MAC's entry points at the destination. Split horizon comes with the bridge: a frame from
// the VXLAN port never goes back out of it (the agent forwards what a departed VM still gets:
// MigrationRelay). Pure: no I/O, no libnl.
#pragma once

#include <compare>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "topology.hpp"

namespace cutover::overlay {

struct LinuxBridge {
  std::string name;
  uint32_t vni = 0;
  int mtu = 1450;
  auto operator<=>(const LinuxBridge&) const = default;
};

struct LinuxVxlan {
  std::string name;
  uint32_t vni = 0;
  IpAddress local;
  uint16_t dstport = 4789;
  std::string bridge;
  auto operator<=>(const LinuxVxlan&) const = default;
};

struct LinuxPortBinding {
  std::string ifname;
  std::string bridge;
  std::string port_id;
  MacAddress mac;  // pinned to the tap on the bridge (static FDB entry)
  auto operator<=>(const LinuxPortBinding&) const = default;
};

struct LinuxFdb {
  std::string dev;  // one of our VXLAN devices
  MacAddress mac;   // 00:00:00:00:00:00 = BUM replication
  IpAddress dst;    // remote VTEP
  auto operator<=>(const LinuxFdb&) const = default;
};

// A VM tap's rate limits. to_vm: a tbf root qdisc on the tap (what the bridge sends it). from_vm:
// the tap's ingress redirected (u32 match-all, mirred) to an ifb device of ours, `ifb`, whose tbf
// root qdisc shapes it before it re-enters the tap's receive path (act_police is not in every
// kernel; ifb and mirred are).
struct LinuxTapQos {
  std::string ifname;
  std::string ifb;  // linux_ifb_name(ifname), set when from_vm is
  std::optional<RateLimit> to_vm;
  std::optional<RateLimit> from_vm;
  bool operator==(const LinuxTapQos&) const = default;
};

struct LinuxDesired {
  std::vector<LinuxBridge> bridges;
  std::vector<LinuxVxlan> vxlans;
  std::vector<LinuxPortBinding> ports;
  std::set<LinuxFdb> fdb;
  std::vector<LinuxTapQos> qos;  // bound taps (held ones too) with a rate limit
  std::vector<std::string> unbound_iface_ids;
  std::vector<std::string> bound_port_ids;
};

std::string linux_bridge_name(uint32_t vni);
std::string linux_vxlan_name(uint32_t vni);
// "cvi" + 8 hex digits of a hash of the tap's name: stable, unique enough, within IFNAMSIZ.
std::string linux_ifb_name(const std::string& tap);

// vm_ifnames: iface-id -> kernel interface name of the VM's tap (present and up).
LinuxDesired plan_linux(const Topology& topo, const std::map<std::string, std::string>& vm_ifnames);

}  // namespace cutover::overlay
