// ApplyReport: what a dataplane says after trying to apply one generation of desired state. The
// agent turns it into an ACK/NACK for the controller, a status file and a log line.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cutover::agent {

struct ApplyReport {
  uint64_t generation = 0;
  // The pass ran and what it committed was confirmed by the switch (barrier / netlink ACK). The
  // generation counts as *applied* only when nothing is missing as well: see applied().
  bool ok = false;
  bool rejected = false;  // desired state invalid: nothing was touched; see error/error_field
  std::string error;
  std::string error_field;
  size_t added = 0, modified = 0, removed = 0;
  // Objects of this generation not in the dataplane yet (e.g. "tunnel to 192.168.100.3": OVS has
  // not given the tunnel an ofport, so the flows that need it are missing). Non-empty = the
  // generation is only partially applied and must not be acknowledged as applied.
  std::vector<std::string> waiting_for;
  // Local ports whose VM tap does not exist (yet), e.g. a migration's destination before QEMU
  // starts: the one deliberate exception, applied without them (they bind when the tap appears).
  std::vector<std::string> awaiting_taps;
  std::vector<std::string> bound_ports;          // ids of local ports the switch has bound
  std::map<std::string, std::string> tap_names;  // iface-id -> its bound tap's interface name
  std::vector<std::string> paused_ports;     // local ports whose VM paused for outgoing migration
  std::vector<std::string> foreign_running;  // VMs running here the state does not place here
  std::vector<std::string> storage_ready;    // "port/volume" (StorageThread)
  std::map<std::string, std::string> storage_failed;    // "port/volume" -> reason
  std::map<std::string, std::vector<std::string>> vms;  // running domain -> iface-ids (libvirt)
  std::map<std::string, int64_t> precopy_iterations;    // local port -> outgoing pre-copy pass
  // Migrations whose libvirt call this agent process is running (wire::Ack::live_migrations).
  std::vector<std::string> live_migrations;
  // iface-ids of VM taps here that no local port claims (the dataplane's view), and - after the
  // agent added what the libvirt hook announced - VMs arriving by a migration cutover did not
  // start (wire::Ack::incoming)
  std::vector<std::string> unclaimed_taps;
  std::vector<std::string> incoming;
  std::map<std::string, int64_t> ct_zones;  // stateful local port id -> conntrack zone (OVS)
  double apply_ms = 0;

  // Every object of the generation is in the dataplane, except VM taps that do not exist yet.
  bool applied() const { return ok && waiting_for.empty(); }
};

}  // namespace cutover::agent
