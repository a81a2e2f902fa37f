// Connection-tracking carry-over, the pure part: parsing what OVS prints for
// `ovs-appctl dpctl/dump-conntrack zone=N` or Linux in /proc/net/nf_conntrack, and choosing the
// connections a migrating port takes along (seen from the VM: local = the VM's address and port).
// Pure: text in, values out.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model.hpp"

namespace cutover::overlay {

struct ConntrackEntry {
  std::string protocol;  // tcp, udp, icmp, ...
  IpAddress src, dst;    // original direction
  int sport = 0, dport = 0;
  int zone = 0;
  std::string state;  // protoinfo state for tcp (ESTABLISHED, ...), "" otherwise
};

struct ConntrackDump {
  std::vector<ConntrackEntry> entries;
  size_t skipped = 0;  // lines that were not understood (other protocols' layouts, garbage)
};

// Never throws: a line it does not understand is counted in `skipped`.
ConntrackDump parse_conntrack_dump(std::string_view text);
// The Linux kernel's table as /proc/net/nf_conntrack prints it, the entries of one zone (the
// Linux backend tracks each network in its own zone: linux_ct_zone). Never throws either.
ConntrackDump parse_proc_conntrack(std::string_view text, int zone);

// The TCP (not closed) and UDP connections that involve one of the port's addresses, oriented
// from the VM, sorted and de-duplicated, at most kMaxCarriedConns.
std::vector<CarriedConn> connections_to_carry(const std::vector<ConntrackEntry>& entries,
                                              const std::vector<IpAddress>& local_ips);

}  // namespace cutover::overlay
