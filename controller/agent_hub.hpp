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
#include <vector>

#include "controller_state.hpp"
#include "wire.hpp"

namespace cutover::controller {

struct AgentInfo {
  bool connected = false;
  std::set<std::string> bound_ports;  // from the last ACK
  uint64_t sent_generation = 0;       // generation of the last slice sent
  uint64_t applied_generation = 0;    // last ACKed
  std::string last_error;             // last NACK
  uint64_t nacked_generation = 0;
};

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

  // Re-slices every connected host's state after a mutation (hooked to ControllerState).
  void publish();

  // True when `host` is connected and has applied everything sent to it up to `generation`.
  bool host_applied(const HostId& host, uint64_t generation) const;
  // Calls done(true) once every host has applied `generation` (now or later), or done(false,
  // why) when one of them NACKs it or disconnects. Timeouts are the caller's (it owns the clock).
  void wait_applied(std::vector<HostId> hosts, uint64_t generation, WaitFn done);

  const std::map<HostId, AgentInfo>& agents() const { return agents_; }
  size_t connected_count() const;
  // Max over connected agents of (current generation - applied generation).
  uint64_t max_generation_lag() const;

  // Called after any agent connects, disconnects, ACKs or NACKs (the migration driver listens).
  std::function<void(const HostId&)> on_agent_update;

 private:
  struct Session {
    HostId host;
    SendFn send;
    std::string last_slice;  // slice JSON without the generation, to detect changes
  };
  struct Waiter {
    std::vector<HostId> hosts;
    uint64_t generation;
    WaitFn done;
  };
  void send_if_changed(Session& s, bool force);
  void check_waiters();

  ControllerState& state_;
  uint64_t next_session_ = 1;
  std::map<uint64_t, Session> sessions_;
  std::map<HostId, uint64_t> session_of_;
  std::map<HostId, AgentInfo> agents_;
  std::vector<Waiter> waiters_;
};

}  // namespace cutover::controller
