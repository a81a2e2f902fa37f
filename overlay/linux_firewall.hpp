// The Linux backend's stateful firewall, the pure part: the ports with ingress_allow that this
// host serves (running, leaving or arriving) -> one nftables table, `inet cutover`, with the same
// semantics as the OVS pipeline's table 20. The kernel has no conntrack for the bridge family
// here (no nf_conntrack_bridge), so bridged IP traffic goes through the inet hooks instead
// (br_netfilter, net.bridge.bridge-nf-call-ip{,6}tables = 1):
//   chain zones    prerouting, priority raw: what enters one of our bridges is tracked in its
//                  network's conntrack zone (linux_ct_zone), so networks that reuse addresses
//                  keep apart;
//   chain to_vms   forward: IP unicast to a stateful port's MAC jumps to its chain;
//   chain port_N   established/related accepted; invalid dropped; IPv6 neighbour discovery
//                  accepted; new + an allow rule accepted; new + a carried connection (migrated
//                  with the VM: the exact 5-tuple) accepted; everything else dropped.
// The VM's own traffic out is not filtered: conntrack records it, so replies are established.
// Pure: text in nft's syntax, no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "topology.hpp"

namespace cutover::overlay {

struct LinuxFirewall {
  std::string ruleset;                      // "" when no port here has a firewall
  std::map<std::string, int64_t> ct_zones;  // stateful port id -> its network's zone
  size_t ports = 0;                         // stateful ports with a chain
};

// 1..65535: the VNI itself below 65536 (VNIs 65536 apart share a zone; their connections stay
// apart unless they also share addresses and ports).
uint16_t linux_ct_zone(uint32_t vni);

LinuxFirewall plan_linux_firewall(const Topology& topo);

// The table's comment, "cutover <hash of its chains>": names a ruleset in what nft lists back,
// so that an agent that restarts adopts an unchanged table instead of replacing it.
std::string linux_firewall_tag(const std::string& body);
// The tag inside a ruleset or a listing of the table ("" when there is none).
std::string linux_firewall_tag_of(const std::string& ruleset);

// One nft transaction that replaces the table with `ruleset`, or removes it when "" (and is a
// no-op when it is already gone).
std::string linux_firewall_transaction(const std::string& ruleset);

}  // namespace cutover::overlay
