// EventFeed: snapshot and change events for GET /v1/events, encoded once per change.
#include "event_feed.hpp"

#include <algorithm>
#include <vector>

#include "json_codec.hpp"

namespace cutover::controller {

using json = nlohmann::json;

EventFeed::EventFeed(ControllerState& state, AgentHub& hub) : state_(state), hub_(hub) {}

uint64_t EventFeed::subscribe(SendFn send) {
  const uint64_t id = next_id_++;
  send(frame("snapshot", snapshot()));
  subscribers_.emplace(id, std::move(send));
  return id;
}

void EventFeed::unsubscribe(uint64_t id) { subscribers_.erase(id); }

std::string EventFeed::frame(const std::string& event, const json& data) {
  // dump() escapes control characters, so the data is one line as SSE needs. Bytes that are not
  // UTF-8 (an agent's error text, say) become U+FFFD rather than an exception in the middle of
  // the commit that triggered the event.
  return "event: " + event +
         "\ndata: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

void EventFeed::publish(const std::string& event, const json& data) {
  const std::string text = frame(event, data);
  // A send may unsubscribe (its connection closed): iterate over a copy of the ids.
  std::vector<uint64_t> ids;
  for (const auto& [id, send] : subscribers_) ids.push_back(id);
  for (uint64_t id : ids) {
    if (auto it = subscribers_.find(id); it != subscribers_.end()) it->second(text);
  }
}

json EventFeed::topology() const {
  json hosts = json::array(), networks = json::array();
  for (const auto& [id, h] : state_.hosts()) hosts.push_back(to_json(h));
  for (const auto& [id, n] : state_.networks()) networks.push_back(to_json(n));
  return {{"generation", state_.generation()},
          {"hosts", std::move(hosts)},
          {"networks", std::move(networks)}};
}

json EventFeed::snapshot() const {
  json out = topology(), ports = json::array(), agents = json::array(), migrations = json::array();
  for (const auto& [id, p] : state_.ports()) ports.push_back(to_json(p));
  for (const auto& [host, info] : hub_.agents()) agents.push_back(to_json(host, info));
  // Every open migration and the newest finished ones, newest first (by when they were asked).
  std::vector<const Migration*> all;
  for (const auto& [id, m] : state_.migrations()) all.push_back(&m);
  auto asked = [](const Migration* m) {
    auto t = m->timeline.find("requested");
    return t == m->timeline.end() ? 0 : t->second;
  };
  std::stable_sort(all.begin(), all.end(),
                   [&](const Migration* a, const Migration* b) { return asked(a) > asked(b); });
  size_t finished = 0;
  for (const auto* m : all) {
    const bool open = state_.open_migrations().count(m->id) > 0;
    if (!open && finished++ >= kSnapshotMigrations) continue;
    migrations.push_back(to_json(*m));
  }
  out["ports"] = std::move(ports);
  out["agents"] = std::move(agents);
  out["migrations"] = std::move(migrations);
  return out;
}

void EventFeed::state_changed(const ChangeSet& change) {
  if (subscribers_.empty()) return;
  if (change.topology) publish("topology", topology());
  for (const auto& c : change.ports) {
    if (c.after) {
      publish("port", to_json(*c.after));
    } else if (c.before) {
      publish("port_removed", {{"id", c.before->id.str()}});
    }
  }
  for (const auto& id : change.migrations) {
    auto it = state_.migrations().find(id);
    if (it != state_.migrations().end()) publish("migration", to_json(it->second));
  }
  if (!change.topology) publish("generation", {{"generation", state_.generation()}});
}

void EventFeed::agent_changed(const HostId& host) {
  if (subscribers_.empty()) return;
  auto it = hub_.agents().find(host);
  if (it != hub_.agents().end()) publish("agent", to_json(host, it->second));
}

}  // namespace cutover::controller
