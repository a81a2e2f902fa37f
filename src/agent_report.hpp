// AgentReport: what an agent says of its host with every ACK - the one definition both ends use.
// The agent's ApplyReport and the wire's Ack are AgentReports with more around them; the
// controller keeps the last one per host (AgentInfo). A new field is added here, in its JSON
// (add_report_fields / report_fields_from) and where the agent learns it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "json_reader.hpp"
#include "model.hpp"

namespace cutover {

// One network interface of a libvirt domain, as its XML defines it (the agent's
// domain_interfaces): what the controller's inventory makes a port from.
struct VmInterface {
  std::string iface_id;         // the port's iface-id (OVS interfaceid, or the tap's name)
  std::string mac;              // <mac address>, lower case; "" if the XML has none
  std::string libvirt_network;  // <source network> of an <interface type='network'>
  std::string portgroup;        // its <source portgroup>
  std::string network;          // the cutover network cutover's <metadata> names for the MAC
  PortQos qos;                  // from its <bandwidth> (inbound = to_vm, outbound = from_vm)
  bool operator==(const VmInterface&) const = default;
};

struct AgentReport {
  std::vector<std::string> waiting_for;      // objects still missing: partially applied if any
  std::vector<std::string> awaiting_taps;    // iface-ids of local ports without a VM tap yet
  std::vector<std::string> bound_ports;      // local ports the dataplane has bound right now
  std::vector<std::string> paused_ports;     // local ports whose VM paused for outgoing migration
  std::vector<std::string> foreign_running;  // iface-ids running here that are not ours
  std::vector<std::string> storage_ready;    // "port/volume" attached (or path-probed) here
  std::map<std::string, std::string> storage_failed;  // "port/volume" -> why not
  // libvirt domains running here -> their interfaces (POST /v1/migrations {"vm"}, inventory)
  std::map<std::string, std::vector<VmInterface>> vms;
  // local port -> the pre-copy iteration of its VM's outgoing live migration (libvirt)
  std::map<std::string, int64_t> precopy_iterations;
  // iface-ids of VMs arriving here that the state does not make arrive here: a live migration
  // started outside cutover (virsh, Nova), seen at its start (the VM's tap appeared, or the
  // libvirt hook asked); the controller prepares it like its own
  std::vector<std::string> incoming;
  // Migrations (ids) whose libvirt call this agent process is running now: one asked of it but
  // missing here (the agent restarted) is no longer driven by it.
  std::vector<std::string> live_migrations;
  bool operator==(const AgentReport&) const = default;
};

// Whether one of the report's lists holds `item` (they are short: a host's ports and VMs).
inline bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Whether one of these interfaces has `iface_id`.
inline bool has_iface(const std::vector<VmInterface>& ifaces, const std::string& iface_id) {
  return std::any_of(ifaces.begin(), ifaces.end(),
                     [&](const VmInterface& i) { return i.iface_id == iface_id; });
}

// {"iface_id", "mac"?, "libvirt_network"?, "portgroup"?, "network"?}: the empty ones left out.
nlohmann::json to_json(const VmInterface& i);

// Adds the report's fields to a JSON object (bound_ports, paused_ports and foreign_running
// always; the others when not empty).
void add_report_fields(const AgentReport& r, nlohmann::json& j);
// Reads them from a JSON object (absent = empty); throws ParseError naming the field.
AgentReport report_fields_from(JsonReader& r);

}  // namespace cutover
