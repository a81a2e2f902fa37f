// Wire protocol between cutover-agent and cutover-controller: JSON text messages over one
// WebSocket (/v1/agent, authenticated by the shared token in the upgrade request).
//   agent -> controller: hello {host}         on every (re)connect; the controller answers with
//                                              the full desired state for that host
//                        ack {generation, waiting_for, awaiting_taps, bound_ports, ...}
//                                              that generation is applied (every object in the
//                                              dataplane, barrier-confirmed) when waiting_for is
//                                              empty; otherwise only partially (the controller
//                                              does not count it). awaiting_taps: local ports
//                                              whose VM tap does not exist yet (the one exception
//                                              an applied generation may have)
//                        nack {generation, error, field}
//                        migration_failed {migration, error}
//                        announced {port, round, rounds, frames, failed, error}
//                        conntrack {port, conns}
//                        incoming {iface_ids}     the libvirt hook holds an incoming migration of
//                                              a VM with these interfaces: prepare it and answer
//                                              (prepared) for each, whatever was said before
//                        aborted {migration, where, detail}
//                                              the source's answer to abort: where the VM is
//                                              once libvirt's job ended (here, gone, unknown)
//   controller -> agent: desired {state}       the host's whole DesiredState with its generation
//                                              (on connect, and when the host's networks change)
//                        prepared {iface_id, migration, ok, error}
//                                              to a destination: the migration of the port with
//                                              that iface-id is ready (every VTEP applied the
//                                              prepare), or (ok false) will not be prepared
//                        abort {migration, iface_id}
//                                              to a source: abort the live migration of the VM
//                                              with that interface (libvirt's job) and answer
//                                              (aborted) where the VM is afterwards
//                        delta {generation, upsert_hosts, upsert_ports, remove_ports}
//                                              a change relative to everything sent before on
//                                              this connection (encoded once, sent to every
//                                              affected agent)
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "agent_report.hpp"
#include "desired_state.hpp"
#include "model.hpp"

namespace cutover::wire {

struct Hello {
  Host host;
};
// What an agent reports with each applied (or partially applied) generation.
struct Ack : AgentReport {
  uint64_t generation = 0;
  double apply_ms = 0;
};
struct Nack {
  uint64_t generation = 0;
  std::string error;
  std::string field;
};
struct Desired {
  DesiredState state;
};
// controller -> source agent: live-migrate the VM owning this interface (libvirt peer-to-peer).
struct Migrate {
  std::string migration;
  std::string iface_id;
  std::string destination_uri;
  LibvirtMigrationSettings libvirt;  // "libvirt" when any is set; else the agent's defaults
};
// source agent -> controller: the libvirt migration failed (success shows as the port coming up).
struct MigrationFailed {
  std::string migration;
  std::string error;
};
// destination agent -> controller: one paced round of cutover announcements (GARP/NA per IP plus
// a RARP) went out for a port that just arrived on it.
struct Announced {
  std::string port;
  int64_t round = 0;   // 0-based
  int64_t rounds = 0;  // in the agent's schedule
  int64_t frames = 0;  // sent in this round
  int64_t failed = 0;  // could not be sent
  std::string error;   // of the last failure, if any
};
// source agent -> controller: the connections a migrating port has in the source's conntrack
// (OVS dpctl/dump-conntrack of its zone), to be carried to the destination.
struct Conntrack {
  std::string port;
  std::vector<CarriedConn> conns;
};
// controller -> destination agent: the migration of the port with this iface-id is prepared
// (ok), or will not be (not a port, refused by policy: error says why).
struct Prepared {
  std::string iface_id;
  std::string migration;
  bool ok = false;
  std::string error;
};
// destination agent -> controller: a VM with these interfaces is about to arrive here by a live
// migration cutover did not start (libvirt's qemu hook asked); every one is answered (Prepared).
struct Incoming {
  std::vector<std::string> iface_ids;
};
// controller -> source agent: abort the live migration (libvirt's job) of the VM owning this
// interface, whoever started it; answered by Aborted.
struct Abort {
  std::string migration;
  std::string iface_id;
};
// source agent -> controller: after an Abort, where the VM is once libvirt's job has ended:
// still here (the abort, or a failure, kept it: the network may roll back), gone (it had
// already moved: the migration must be carried forward), or unknown (libvirt did not say).
struct Aborted {
  enum class Where { here, gone, unknown };
  std::string migration;
  Where where = Where::unknown;
  std::string detail;
};
const char* to_string(Aborted::Where w);
struct Delta {
  uint64_t generation = 0;
  std::vector<Host> upsert_hosts;
  std::vector<Port> upsert_ports;
  std::vector<PortId> remove_ports;
};

using AgentMessage =
    std::variant<Hello, Ack, Nack, MigrationFailed, Announced, Conntrack, Incoming, Aborted>;
using ControllerMessage = std::variant<Desired, Delta, Migrate, Prepared, Abort>;

// Applies a delta to the state it follows (hosts and ports replaced by id, ports removed).
void apply(DesiredState& state, const Delta& delta);

std::string encode(const AgentMessage& m);
// A delta from its parts already encoded (to_json(host).dump(), to_json(port).dump()), without
// encoding the ports again; encode(ControllerMessage{Delta}) is this with its parts encoded.
std::string encode_delta(uint64_t generation, const std::vector<std::string>& host_json,
                         const std::vector<std::string>& port_json,
                         const std::vector<PortId>& removed);
std::string encode(const ControllerMessage& m);
// Both throw ParseError naming the field on malformed or unknown messages.
AgentMessage decode_agent_message(const std::string& text);
ControllerMessage decode_controller_message(const std::string& text);

}  // namespace cutover::wire
