// Topology: a validated, indexed view of one host's DesiredState, shared by every dataplane
// translation (OVS flows, Linux bridge/vxlan/FDB). It answers: which networks this host serves,
// which ports are local (running here, leaving by migration, or arriving held), where frames for
// every other MAC go (the VTEP of its port's host - one place, no dual delivery), which MACs this
// host forwards for (it is, or was until cutover, where their VM ran), and which VTEPs a network
// floods to. Pure: no I/O. Building it rejects inconsistent state as a whole (ParseError naming
// the field).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "desired_state.hpp"

namespace cutover::overlay {

struct RemoteMac {
  MacAddress mac;
  PortId port;
  IpAddress vtep;  // where its frames go: its host's VTEP (for a port leaving here: the
                   // destination's, used once the VM has stopped here)
  // Set when the port is also local (leaving or arriving here): a leaving port's remote location
  // is used once its VM has stopped here or its tap is gone; an arriving (held) port's for the
  // frames of local senders, which belong to the VM where it still runs.
  std::optional<std::string> local_iface_id;
  // This host forwards the MAC's frames that arrive by tunnel as well (a forwarding pointer): it
  // is the source of a migration whose VM has left, or the host the VM left at cutover
  // (previous_host) while the other VTEPs catch up.
  bool forward = false;
};

struct NetworkView {
  Network network;
  std::vector<Port> local_ports;       // running, leaving or arriving here, sorted by id
  std::vector<RemoteMac> remote_macs;  // sorted by MAC
  std::set<IpAddress> flood_vteps;     // remote VTEPs where this network's ports are
  // Ports arriving here by migration (held): bound, their frames accepted, and only what comes
  // by tunnel for them delivered to them (the source's forwarding once their VM stopped there);
  // frames of local senders still go to the source, where the VM runs. Not flooded to.
  std::set<std::string> held_iface_ids;
  // Ports migrating away from here: delivered to while their VM runs here; once it has stopped
  // for the final copy (departed) or its tap is gone, their frames go to the destination.
  std::set<std::string> leaving_iface_ids;
};

struct Topology {
  Host self;
  uint64_t generation = 0;
  std::map<uint32_t, NetworkView> networks;  // by VNI
  std::set<IpAddress> remote_vteps;          // every VTEP any network needs
  std::set<std::string> local_iface_ids;     // of every local port (unique on this host)
};

// Throws ParseError naming the field: the agent's own host missing from `hosts`, duplicate ids,
// a port on an unknown network or host, two networks with one VNI, a MAC used twice in a VNI,
// a remote VTEP equal to our own underlay IP.
// port_name: how errors name the port at an index (default "ports[i]").
Topology build_topology(const DesiredState& state,
                        const std::function<std::string(size_t)>& port_name = {});

}  // namespace cutover::overlay
