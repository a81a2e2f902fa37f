// EventFeed: what the web console (and any other client of GET /v1/events) hears live. A new
// subscriber first gets one `snapshot` event (hosts, agents, networks, ports, recent migrations),
// then an event per change: `migration`, `port` (or `port_removed`), `agent`, `topology`
// (hosts and networks), each carrying the object as REST shows it, and `generation` after a
// commit that was not a topology change (whose event carries it). It is fed by
// ControllerState::on_change and AgentHub::on_agent_update; events are encoded once, in the
// Server-Sent Events text format, and only when someone listens. The HTTP server owns the
// sockets and their send queues; this class only knows callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "agent_hub.hpp"
#include "controller_state.hpp"

namespace cutover::controller {

class EventFeed {
 public:
  using SendFn = std::function<void(const std::string& sse_text)>;

  // How many finished migrations a snapshot carries (the newest; open ones always).
  static constexpr size_t kSnapshotMigrations = 50;

  EventFeed(ControllerState& state, AgentHub& hub);

  // A subscriber gets the snapshot at once (through `send`), then every event until unsubscribed.
  uint64_t subscribe(SendFn send);
  void unsubscribe(uint64_t id);
  size_t subscribers() const { return subscribers_.size(); }

  // Hooks (wired by the controller): a committed mutation; an agent's connection or report.
  void state_changed(const ChangeSet& change);
  void agent_changed(const HostId& host);

  // The snapshot a subscriber starts from, as JSON (also what the test of the feed checks).
  nlohmann::json snapshot() const;
  // One event in the SSE text format: "event: NAME\ndata: JSON\n\n" (JSON has no newlines).
  static std::string frame(const std::string& event, const nlohmann::json& data);

 private:
  void publish(const std::string& event, const nlohmann::json& data);
  // The generation, hosts and networks: a topology event, and the start of the snapshot.
  nlohmann::json topology() const;

  ControllerState& state_;
  AgentHub& hub_;
  std::map<uint64_t, SendFn> subscribers_;
  uint64_t next_id_ = 1;
};

}  // namespace cutover::controller
