// AgentHub: slicing, sending, ACK bookkeeping and generation waits.
#include "agent_hub.hpp"

#include "logging.hpp"

namespace cutover::controller {

uint64_t AgentHub::attach(const HostId& host, SendFn send) {
  if (auto old = session_of_.find(host); old != session_of_.end()) {
    sessions_.erase(old->second);  // the agent reconnected; its old socket is dead or dying
  }
  const uint64_t id = next_session_++;
  auto& s = sessions_[id] = Session{host, std::move(send), ""};
  session_of_[host] = id;
  auto& info = agents_[host];
  info.connected = true;
  info.applied_generation = 0;  // full resync: nothing counts as applied until it ACKs again
  logger("hub")->info("agent {} connected", host.str());
  send_if_changed(s, true);
  if (on_agent_update) on_agent_update(host);
  return id;
}

void AgentHub::detach(uint64_t session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  const HostId host = it->second.host;
  sessions_.erase(it);
  if (session_of_[host] == session) {
    session_of_.erase(host);
    agents_[host].connected = false;
    logger("hub")->info("agent {} disconnected", host.str());
    check_waiters();
    if (on_agent_update) on_agent_update(host);
  }
}

void AgentHub::send_if_changed(Session& s, bool force) {
  auto slice = state_.desired_for(s.host);
  auto j = to_json(slice);
  j.erase("generation");
  auto text = j.dump();
  if (!force && text == s.last_slice) return;
  s.last_slice = std::move(text);
  agents_[s.host].sent_generation = slice.generation;
  s.send(wire::encode(wire::ControllerMessage{wire::Desired{std::move(slice)}}));
}

void AgentHub::publish() {
  for (auto& [id, s] : sessions_) send_if_changed(s, false);
  check_waiters();
}

void AgentHub::on_message(uint64_t session, const wire::AgentMessage& m) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  auto& info = agents_[it->second.host];
  if (auto* ack = std::get_if<wire::Ack>(&m)) {
    if (ack->generation > info.applied_generation) info.applied_generation = ack->generation;
    info.bound_ports = std::set<std::string>(ack->bound_ports.begin(), ack->bound_ports.end());
  } else if (auto* nack = std::get_if<wire::Nack>(&m)) {
    info.nacked_generation = nack->generation;
    info.last_error = nack->field.empty() ? nack->error : nack->field + ": " + nack->error;
    logger("hub")->warn("agent {} refused generation {}: {}", it->second.host.str(),
                        nack->generation, info.last_error);
  }
  check_waiters();
  if (on_agent_update) on_agent_update(it->second.host);
}

bool AgentHub::host_applied(const HostId& host, uint64_t generation) const {
  auto it = agents_.find(host);
  if (it == agents_.end() || !it->second.connected) return false;
  // A host whose slice did not change at `generation` is current once it applied what it got.
  const uint64_t needed = std::min(generation, it->second.sent_generation);
  return it->second.applied_generation >= needed && it->second.sent_generation > 0;
}

void AgentHub::wait_applied(std::vector<HostId> hosts, uint64_t generation, WaitFn done) {
  waiters_.push_back({std::move(hosts), generation, std::move(done)});
  check_waiters();
}

void AgentHub::check_waiters() {
  // Callbacks may add waiters or mutate state: detach the list before calling out.
  std::vector<std::pair<WaitFn, std::pair<bool, std::string>>> fire;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    bool all = true;
    std::string failure;
    for (const auto& h : it->hosts) {
      auto a = agents_.find(h);
      if (a == agents_.end() || !a->second.connected) {
        all = false;
        if (a != agents_.end() && a->second.sent_generation > 0) {
          failure = "agent " + h.str() + " disconnected";
        }
        continue;
      }
      if (a->second.nacked_generation >= it->generation) {
        failure = "agent " + h.str() + " refused generation " +
                  std::to_string(a->second.nacked_generation) + ": " + a->second.last_error;
      }
      if (!host_applied(h, it->generation)) all = false;
    }
    if (all || !failure.empty()) {
      fire.push_back({std::move(it->done), {all, all ? "" : failure}});
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [fn, result] : fire) fn(result.first, result.second);
}

size_t AgentHub::connected_count() const { return sessions_.size(); }

uint64_t AgentHub::max_generation_lag() const {
  uint64_t lag = 0;
  for (const auto& [host, info] : agents_) {
    if (!info.connected) continue;
    const uint64_t behind = info.sent_generation > info.applied_generation
                                ? info.sent_generation - info.applied_generation
                                : 0;
    lag = std::max(lag, behind);
  }
  return lag;
}

}  // namespace cutover::controller
