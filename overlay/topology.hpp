// Topology: a validated, indexed view of one host's DesiredState, shared by every dataplane
// translation (OVS flows, Linux bridge/vxlan/FDB). It answers: which networks this host serves,
// which ports are local, where every remote MAC lives (one or more VTEPs: more than one while a
// port is being migrated and delivered to both hosts), and which VTEPs a network floods to.
// Pure: no I/O. Building it rejects inconsistent state as a whole (ParseError naming the field).
#pragma once

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
  std::vector<IpAddress> vteps;  // sorted, unique; two while the port migrates (dual delivery)
  // Set when the port is also bound here (this host is the migration's source or destination):
  // the remote location is then only used while the local port is not bound.
  std::optional<std::string> local_iface_id;
};

struct NetworkView {
  Network network;
  std::vector<Port> local_ports;       // bound to this host, sorted by id
  std::vector<RemoteMac> remote_macs;  // sorted by MAC
  std::set<IpAddress> flood_vteps;     // remote VTEPs with ports in this network
  // Ports arriving here by migration whose gate is still closed: bind them, accept frames from
  // them, but deliver nothing to them yet (their traffic keeps going to the source).
  std::set<std::string> held_iface_ids;
};

struct Topology {
  Host self;
  uint64_t generation = 0;
  std::map<uint32_t, NetworkView> networks;  // by VNI
  std::set<IpAddress> remote_vteps;          // every VTEP any network needs
};

// Throws ParseError naming the field: the agent's own host missing from `hosts`, duplicate ids,
// a port on an unknown network or host, two networks with one VNI, a MAC used twice in a VNI,
// a remote VTEP equal to our own underlay IP.
Topology build_topology(const DesiredState& state);

}  // namespace cutover::overlay
