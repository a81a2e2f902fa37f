// ApplyReport: what a dataplane says after trying to apply one generation of desired state: an
// AgentReport (what the controller hears, the agent core filling in what it knows beyond the
// dataplane) and the pass's own outcome. The agent turns it into an ACK/NACK for the
// controller, a status file and a log line.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent_report.hpp"

namespace cutover::agent {

struct ApplyReport : AgentReport {
  uint64_t generation = 0;
  // The pass ran and what it committed was confirmed by the switch (barrier / netlink ACK). The
  // generation counts as *applied* only when nothing is missing as well (AgentReport's
  // waiting_for: objects of this generation not in the dataplane yet, e.g. "tunnel to
  // 192.168.100.3": OVS has not given the tunnel an ofport, so the flows that need it are
  // missing). Local ports whose VM tap does not exist yet (awaiting_taps, e.g. a migration's
  // destination before QEMU starts) are the one deliberate exception: applied without them.
  bool ok = false;
  bool rejected = false;  // desired state invalid: nothing was touched; see error/error_field
  std::string error;
  std::string error_field;
  size_t added = 0, modified = 0, removed = 0;
  std::map<std::string, std::string> tap_names;  // iface-id -> its bound tap's interface name
  // iface-ids of VM taps here that no local port claims (the dataplane's view; the agent turns
  // them, with what the libvirt hook announced, into AgentReport::incoming)
  std::vector<std::string> unclaimed_taps;
  std::map<std::string, int64_t> ct_zones;  // stateful local port id -> conntrack zone (OVS: its
                                            // ofport; Linux: its network's, linux_ct_zone)
  // What the dataplane holds of ours after the pass, by kind (for metrics).
  std::map<std::string, size_t> installed;
  double apply_ms = 0;

  // Every object of the generation is in the dataplane, except VM taps that do not exist yet.
  bool applied() const { return ok && waiting_for.empty(); }
};

}  // namespace cutover::agent
