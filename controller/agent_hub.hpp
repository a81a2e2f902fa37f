// AgentHub: the controller's side of the agent channel. Knows which agents are connected, sends
// each one its DesiredState slice whenever the slice changes (full state on (re)connect), records
// the generation each host has applied (ACK) or refused (NACK), and lets callers wait until a set
// of hosts has applied a generation. Transport-free: a session is just a send function, so tests
// drive it with in-process fake agents. Single-threaded (the controller's io_context).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "controller_state.hpp"
#include "wire.hpp"

namespace cutover::controller {

struct AgentInfo {
  bool connected = false;
  // It ACKed since it connected: the report fields below describe this session, not an older
  // one (or nothing, after a controller restart).
  bool reported = false;
  // What its last ACK said of the host (lists as the agent sent them: sorted, small).
  AgentReport report;
  uint64_t sent_generation = 0;     // generation of the last slice sent
  uint64_t applied_generation = 0;  // last ACKed with nothing missing
  // A generation it applied only partially (0: none) and what it still waits for: not counted
  // as applied until an ACK of it (or a later one) comes with nothing missing.
  uint64_t partial_generation = 0;
  std::vector<std::string> waiting_for;
  std::string last_error;  // last NACK
  uint64_t nacked_generation = 0;
  // Generations sent to it that it has not applied yet.
  uint64_t generation_lag() const {
    return sent_generation > applied_generation ? sent_generation - applied_generation : 0;
  }
};

// An agent as GET /v1/agents and the console's event feed show it.
nlohmann::json to_json(const HostId& host, const AgentInfo& info);

class AgentHub {
 public:
  using SendFn = std::function<void(const std::string&)>;
  using WaitFn = std::function<void(bool ok, const std::string& detail)>;

  explicit AgentHub(ControllerState& state) : state_(state) {}

  // A session registered as `host`; an older session for the same host is replaced.
  // Returns a session id to use with the calls below.
  uint64_t attach(const HostId& host, SendFn send);
  void detach(uint64_t session);
  void on_message(uint64_t session, const wire::AgentMessage& m);
  // An ACK of `generation` whose report is, word for word, that of this session's last ACK
  // handled by on_message, which waited for nothing (wire::AckRepeat tells): the same as
  // on_message with it, without decoding it.
  void on_repeated_ack(uint64_t session, uint64_t generation);

  // After a committed mutation (hooked to ControllerState::on_change): port changes go out as one
  // delta, encoded once, to every agent whose networks they touch; the hosts a port leaves or
  // joins, and every agent after a host/network change, get their whole slice if it changed.
  void publish(const ChangeSet& change = ChangeSet::of_topology());

  // True when `host` is connected and has applied everything sent to it up to `generation`.
  bool host_applied(const HostId& host, uint64_t generation) const;
  // Calls done(true) once every host has applied `generation` (now or later), or done(false,
  // why) when one of them NACKs it or disconnects. Timeouts are the caller's (it owns the clock).
  void wait_applied(std::vector<HostId> hosts, uint64_t generation, WaitFn done);

  const std::map<HostId, AgentInfo>& agents() const { return agents_; }
  size_t connected_count() const;
  // Max over connected agents of (current generation - applied generation).
  uint64_t max_generation_lag() const;
  // Per connected agent: generations sent to it that it has not applied yet.
  std::map<HostId, uint64_t> generation_lags() const;
  // Connected agents that applied their latest generation only partially (waiting for objects).
  size_t waiting_count() const;

  // What an agent's update changed: most ACKs only move its applied generation on.
  enum class AgentChange { generation, report, connection };
  // Called after any agent connects, disconnects, ACKs or NACKs (the migration driver listens).
  std::function<void(const HostId&, AgentChange)> on_agent_update;
  // An agent reports that the libvirt migration it was asked to run failed.
  std::function<void(const HostId& host, const std::string& migration, const std::string& error)>
      on_migration_failed;
  // An agent answers an abort: where the VM is once libvirt's job ended.
  std::function<void(const HostId& host, const wire::Aborted& answer)> on_aborted;
  std::function<void(const HostId& host, const wire::Announced& round)> on_announced;
  std::function<void(const HostId& host, const wire::Conntrack& ct)> on_conntrack;
  std::function<void(const HostId& host, const wire::Incoming& in)> on_incoming;
  // A generation that publish() sent to some agents has been ACKed by all of them: the seconds
  // from sending to the last ACK (not called if one of them disconnected first).
  std::function<void(double seconds)> on_fanout_acked;

  // Sends a message to a connected agent; false if it is not connected.
  bool send_to(const HostId& host, const std::string& text);
  // The host's current session (0: not connected): tells a report from a later connection apart.
  uint64_t session_of(const HostId& host) const;

 private:
  struct Session {
    uint64_t id;
    HostId host;
    SendFn send;
    AgentInfo* info;        // agents_[host]: map nodes stay put, and the hot path skips a lookup
    size_t slice_hash = 0;  // of the last whole slice sent (without generation); 0 = unknown
    std::vector<uint64_t> awaited;  // generations sent while publishing, not ACKed yet (fanouts_)
  };
  struct Waiter {
    std::vector<HostId> hosts;
    uint64_t generation;
    WaitFn done;
  };
  void send_if_changed(Session& s, bool force);
  void expect_ack(Session& s, uint64_t generation);  // during publish() only
  void acked(Session& s, uint64_t generation);
  void applied(Session& s, uint64_t generation);  // a complete ACK of generation
  // Sends the already encoded delta of `generation` to a session whose networks it touches.
  void send_encoded_delta(Session& s, uint64_t generation, const std::string& text);
  void send_delta(const ChangeSet& change);
  // Networks `host` has ports on (bound or arriving); with `undo`, as they were before it
  // (ControllerState::index()).
  std::set<NetworkId> networks_of(const HostId& host, const ChangeSet* undo = nullptr) const;
  // The whole "desired" message for a host. Hosts with the same networks get the same slice but
  // for the "host" field, so the JSON body is built once per network set and generation.
  std::string slice_message(const HostId& host, size_t& hash);
  // The slice body {"hosts","networks","ports"}: exactly to_json(desired_for(host)) without
  // "generation" and "host", assembled from each port's encoding as the store holds it.
  std::string slice_body(const HostId& host, const std::set<NetworkId>& nets);
  void check_waiters();

  ControllerState& state_;
  uint64_t next_session_ = 1;
  // Looked up by id on every ACK: hashed. Elements stay put when it rehashes.
  std::unordered_map<uint64_t, Session> sessions_;
  std::map<HostId, Session*> session_of_;  // into sessions_
  std::map<HostId, AgentInfo> agents_;
  std::vector<Waiter> waiters_;
  uint64_t cache_generation_ = UINT64_MAX;
  std::map<std::string, std::string> slice_cache_;  // network set -> slice body JSON
  struct Fanout {
    std::chrono::steady_clock::time_point sent;
    size_t waiting = 0;  // sessions it was sent to that have not ACKed it
  };
  bool publishing_ = false;
  std::map<uint64_t, Fanout> fanouts_;  // generation -> how many sessions still owe an ACK
  // A host's JSON (null when there is no such host), encoded once while no host changes: a whole
  // slice lists every host of its networks, and encoding them again on every change showed in the
  // fan-out (ports' JSON comes from ControllerState::port_json).
  const std::string* host_json(const HostId& host);
  std::unordered_map<HostId, std::string> host_json_;
  uint64_t host_json_version_ = UINT64_MAX;  // ControllerState::hosts_version() it was made at
};

}  // namespace cutover::controller
