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
  bool ok = false;        // applied and confirmed by the switch (barrier / netlink ACK)
  bool rejected = false;  // desired state invalid: nothing was touched; see error/error_field
  std::string error;
  std::string error_field;
  size_t added = 0, modified = 0, removed = 0;
  std::vector<std::string> waiting_for;      // ports/tunnels the state names but the switch lacks
  std::vector<std::string> bound_ports;      // ids of local ports the switch has bound
  std::vector<std::string> paused_ports;     // local ports whose VM paused for outgoing migration
  std::vector<std::string> foreign_running;  // VMs running here the state does not place here
  std::vector<std::string> storage_ready;    // "port/volume" (StorageThread)
  std::map<std::string, std::string> storage_failed;    // "port/volume" -> reason
  std::map<std::string, std::vector<std::string>> vms;  // running domain -> iface-ids (libvirt)
  std::map<std::string, int64_t> precopy_iterations;    // local port -> outgoing pre-copy pass
  std::map<std::string, int64_t> ct_zones;  // stateful local port id -> conntrack zone (OVS)
  double apply_ms = 0;
};

}  // namespace cutover::agent
