// AgentHub: slicing, sending, ACK bookkeeping and generation waits.
#include "agent_hub.hpp"

#include "json_codec.hpp"
#include "logging.hpp"

namespace cutover::controller {

nlohmann::json to_json(const HostId& host, const AgentInfo& info) {
  nlohmann::json vms = nlohmann::json::object();
  for (const auto& [name, ifaces] : info.report.vms) {
    auto& ids = vms[name] = nlohmann::json::array();
    for (const auto& i : ifaces) ids.push_back(i.iface_id);
  }
  return {{"host", host.str()},
          {"connected", info.connected},
          {"sent_generation", info.sent_generation},
          {"applied_generation", info.applied_generation},
          {"partial_generation", info.partial_generation},
          {"lag", info.connected ? info.generation_lag() : 0},
          {"waiting_for", info.waiting_for},
          {"awaiting_taps", info.report.awaiting_taps},
          {"bound_ports", info.report.bound_ports},
          {"vms", std::move(vms)},
          {"last_error", info.last_error}};
}

uint64_t AgentHub::attach(const HostId& host, SendFn send) {
  if (auto old = session_of_.find(host); old != session_of_.end()) {
    // The agent reconnected; its old socket is dead or dying, and what it owed no longer
    // measures a fan-out (as in detach).
    for (uint64_t g : old->second->awaited) fanouts_.erase(g);
    sessions_.erase(old->second->id);
  }
  const uint64_t id = next_session_++;
  auto& info = agents_[host];
  auto& s = sessions_[id] = Session{id, host, std::move(send), &info, 0, {}};
  session_of_[host] = &s;
  info.connected = true;
  info.reported = false;
  info.applied_generation = 0;  // full resync: nothing counts as applied until it ACKs again
  info.partial_generation = 0;
  info.waiting_for.clear();
  logger("hub")->info("agent {} connected", host.str());
  send_if_changed(s, true);
  if (on_agent_update) on_agent_update(host, AgentChange::connection);
  return id;
}

void AgentHub::detach(uint64_t session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  const HostId host = it->second.host;
  // A generation it had not ACKed yet no longer measures a fan-out: drop it.
  for (uint64_t g : it->second.awaited) fanouts_.erase(g);
  auto current = session_of_.find(host);
  const bool latest = current != session_of_.end() && current->second == &it->second;
  sessions_.erase(it);
  if (latest) {
    session_of_.erase(current);
    agents_[host].connected = false;
    logger("hub")->info("agent {} disconnected", host.str());
    check_waiters();
    if (on_agent_update) on_agent_update(host, AgentChange::connection);
  }
}

std::set<NetworkId> AgentHub::networks_of(const HostId& host, const ChangeSet* undo) const {
  if (!undo) return state_.index().networks_at(host);
  std::vector<std::pair<const Port*, const Port*>> changes;
  for (const auto& pc : undo->ports) {
    changes.emplace_back(pc.before ? &*pc.before : nullptr, pc.after ? &*pc.after : nullptr);
  }
  return state_.index().networks_at_before(host, changes);
}

const std::string* AgentHub::host_json(const HostId& host) {
  if (host_json_version_ != state_.hosts_version()) {
    host_json_.clear();
    host_json_version_ = state_.hosts_version();
  }
  if (auto it = host_json_.find(host); it != host_json_.end()) return &it->second;
  auto h = state_.hosts().find(host);
  if (h == state_.hosts().end()) return nullptr;
  return &(host_json_[host] = to_json(h->second).dump());
}

std::string AgentHub::slice_body(const HostId& host, const std::set<NetworkId>& nets) {
  // Keys in nlohmann's (sorted) order, as to_json(DesiredState).dump() writes them; hosts and
  // ports as ControllerState::desired_for lists them.
  std::string body = R"({"hosts":[)";
  bool first = true;
  auto add = [&](const std::string& json) {
    if (!first) body += ',';
    first = false;
    body += json;
  };
  state_.for_slice_hosts(host, nets, [&](const HostId& h) {
    if (const std::string* json = host_json(h)) add(*json);
  });
  nlohmann::json networks = nlohmann::json::array();
  for (const auto& n : nets) networks.push_back(to_json(state_.networks().at(n)));
  body += R"(],"networks":)";
  body += networks.dump();
  body += R"(,"ports":[)";
  first = true;
  state_.for_slice_ports(nets, [&](const PortId& id) { add(state_.port_json(id)); });
  body += "]}";
  return body;
}

std::string AgentHub::slice_message(const HostId& host, size_t& hash) {
  const uint64_t gen = state_.generation();
  const auto nets = networks_of(host);
  if (cache_generation_ != gen) {
    slice_cache_.clear();
    cache_generation_ = gen;
  }
  std::string own;  // just the host itself: not shared, not cached
  const std::string* body = &own;
  if (nets.empty()) {
    own = slice_body(host, nets);
  } else {
    std::string key;
    for (const auto& n : nets) key += n.str() + ",";
    auto it = slice_cache_.find(key);
    if (it == slice_cache_.end()) it = slice_cache_.emplace(key, slice_body(host, nets)).first;
    body = &it->second;
  }
  hash = (std::hash<std::string>{}(*body) ^ (std::hash<std::string>{}(host.str()) * 31)) | 1;
  // {"type":"desired","state":{"generation":G,"host":"X", <body without its opening brace>}
  std::string m = R"({"type":"desired","state":{"generation":)" + std::to_string(gen) +
                  R"(,"host":")" + host.str() + "\",";
  m.reserve(m.size() + body->size() + 1);
  m.append(*body, 1);
  m += '}';
  return m;
}

void AgentHub::send_if_changed(Session& s, bool force) {
  size_t hash = 0;
  auto text = slice_message(s.host, hash);
  if (!force && hash == s.slice_hash) return;
  s.slice_hash = hash;
  s.info->sent_generation = state_.generation();
  expect_ack(s, state_.generation());
  s.send(std::move(text));
}

void AgentHub::expect_ack(Session& s, uint64_t generation) {
  if (!publishing_ || !on_fanout_acked) return;
  auto [it, fresh] = fanouts_.try_emplace(generation);
  if (fresh) it->second.sent = std::chrono::steady_clock::now();
  ++it->second.waiting;
  s.awaited.push_back(generation);
  // Agents that never answer: forget the oldest fan-outs (and what a session owes to them).
  while (fanouts_.size() > 64) fanouts_.erase(fanouts_.begin());
  if (s.awaited.size() > 64) s.awaited.erase(s.awaited.begin());
}

void AgentHub::acked(Session& s, uint64_t generation) {
  size_t done = 0;
  for (; done < s.awaited.size() && s.awaited[done] <= generation; ++done) {
    auto it = fanouts_.find(s.awaited[done]);
    if (it == fanouts_.end() || --it->second.waiting > 0) continue;
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - it->second.sent;
    fanouts_.erase(it);
    on_fanout_acked(took.count());
  }
  s.awaited.erase(s.awaited.begin(), s.awaited.begin() + static_cast<std::ptrdiff_t>(done));
}

void AgentHub::applied(Session& s, uint64_t generation) {
  auto& info = *s.info;
  if (generation > info.applied_generation) info.applied_generation = generation;
  if (info.partial_generation <= info.applied_generation) {
    info.partial_generation = 0;
    info.waiting_for.clear();
  }
  if (!s.awaited.empty()) acked(s, generation);
}

void AgentHub::on_repeated_ack(uint64_t session, uint64_t generation) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  applied(it->second, generation);
  check_waiters();
  if (on_agent_update) on_agent_update(it->second.host, AgentChange::generation);
}

void AgentHub::publish(const ChangeSet& change) {
  publishing_ = true;
  if (change.topology) {
    for (auto& [id, s] : sessions_) send_if_changed(s, false);
  } else if (!change.ports.empty()) {
    send_delta(change);
  }
  publishing_ = false;
  check_waiters();
}

void AgentHub::send_delta(const ChangeSet& change) {
  // Hosts a changed port was or is bound on: their set of networks may change -> whole slice.
  std::set<HostId> movers;
  std::set<NetworkId> nets;
  const uint64_t generation = state_.generation();
  // The delta's parts as the store holds them (encoded once per change), spliced.
  std::vector<std::string> host_json, port_json;
  std::vector<PortId> removed;
  std::set<HostId> delta_hosts;
  for (const auto& pc : change.ports) {
    for (const auto* p : {pc.before ? &*pc.before : nullptr, pc.after ? &*pc.after : nullptr}) {
      if (!p) continue;
      nets.insert(p->network);
      for (const auto& h : port_locations(*p)) movers.insert(h);
    }
    if (pc.after) {
      port_json.push_back(state_.port_json(pc.after->id));
      for (const auto& h : port_locations(*pc.after)) {
        if (delta_hosts.insert(h).second) {
          if (const std::string* json = this->host_json(h)) host_json.push_back(*json);
        }
      }
    } else if (pc.before) {
      removed.push_back(pc.before->id);
    }
  }
  // A mover whose set of networks is unchanged only needs the delta too.
  std::set<HostId> rejoin;
  for (const auto& h : movers) {
    if (networks_of(h) != networks_of(h, &change)) rejoin.insert(h);
  }
  const std::string text = wire::encode_delta(generation, host_json, port_json, removed);
  // A rejoining host's whole slice is built and sent after every delta has gone: building it
  // costs as much as hundreds of deltas, and the other agents need not wait for it.
  std::vector<Session*> rejoining;
  auto reach = [&](Session& s) {
    if (rejoin.count(s.host)) {
      rejoining.push_back(&s);
    } else {
      send_encoded_delta(s, generation, text);
    }
  };
  // Every host with a port location on those networks, and the movers, each once. The index and
  // session_of_ are both in host order: walked side by side, no set of a thousand hosts is built
  // and no host looked up one by one (the fan-out's hot path).
  auto walk = [&](const auto& sorted_hosts, auto host_of) {
    auto sit = session_of_.begin();
    for (const auto& entry : sorted_hosts) {
      const HostId& h = host_of(entry);
      while (sit != session_of_.end() && sit->first < h) ++sit;
      if (sit == session_of_.end()) break;
      if (sit->first == h) reach(*sit->second);
    }
  };
  if (nets.size() == 1) {
    const auto& on_net = state_.index().host_counts_on(*nets.begin());
    walk(on_net, [](const auto& e) -> const HostId& { return e.first; });
    for (const auto& h : movers) {
      if (on_net.count(h)) continue;  // reached above
      if (auto sid = session_of_.find(h); sid != session_of_.end()) reach(*sid->second);
    }
  } else {
    std::set<HostId> affected = movers;
    for (const auto& n : nets) state_.index().add_hosts_on(n, affected);
    walk(affected, [](const HostId& h) -> const HostId& { return h; });
  }
  for (Session* s : rejoining) send_if_changed(*s, false);
}

void AgentHub::send_encoded_delta(Session& s, uint64_t generation, const std::string& text) {
  s.slice_hash = 0;  // the agent's slice moved on by a delta
  s.info->sent_generation = generation;
  expect_ack(s, generation);
  s.send(text);
}

void AgentHub::on_message(uint64_t session, const wire::AgentMessage& m) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  auto& info = *it->second.info;
  AgentChange change = AgentChange::report;
  if (auto* ack = std::get_if<wire::Ack>(&m)) {
    if (!ack->waiting_for.empty()) {
      // Partially applied: remembered (and shown) with what it waits for, not counted.
      if (ack->generation > info.applied_generation) {
        if (info.partial_generation != ack->generation || info.waiting_for != ack->waiting_for) {
          logger("hub")->info("agent {} applied generation {} partially; waiting for {}",
                              it->second.host.str(), ack->generation,
                              fmt::join(ack->waiting_for, ", "));
        }
        info.partial_generation = ack->generation;
        info.waiting_for = ack->waiting_for;
      }
    } else {
      applied(it->second, ack->generation);
    }
    // Most ACKs repeat the last report: comparing allocates nothing, copying would.
    const auto& report = static_cast<const AgentReport&>(*ack);
    if (info.reported && info.report == report && ack->waiting_for.empty()) {
      change = AgentChange::generation;
    } else if (!(info.report == report)) {
      info.report = report;
    }
    info.reported = true;
  } else if (auto* failed = std::get_if<wire::MigrationFailed>(&m)) {
    logger("hub")->warn("agent {}: migration {} failed: {}", it->second.host.str(),
                        failed->migration, failed->error);
    if (on_migration_failed) on_migration_failed(it->second.host, failed->migration, failed->error);
    return;
  } else if (auto* ab = std::get_if<wire::Aborted>(&m)) {
    logger("hub")->info("agent {}: after the abort of {} the VM is {}: {}", it->second.host.str(),
                        ab->migration, wire::to_string(ab->where), ab->detail);
    if (on_aborted) on_aborted(it->second.host, *ab);
    return;
  } else if (auto* ct = std::get_if<wire::Conntrack>(&m)) {
    if (on_conntrack) on_conntrack(it->second.host, *ct);
    return;
  } else if (auto* in = std::get_if<wire::Incoming>(&m)) {
    if (on_incoming) on_incoming(it->second.host, *in);
    return;
  } else if (auto* an = std::get_if<wire::Announced>(&m)) {
    if (on_announced) on_announced(it->second.host, *an);
    return;
  } else if (auto* nack = std::get_if<wire::Nack>(&m)) {
    info.nacked_generation = nack->generation;
    info.last_error = nack->field.empty() ? nack->error : nack->field + ": " + nack->error;
    logger("hub")->warn("agent {} refused generation {}: {}", it->second.host.str(),
                        nack->generation, info.last_error);
  }
  check_waiters();
  if (on_agent_update) on_agent_update(it->second.host, change);
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

uint64_t AgentHub::session_of(const HostId& host) const {
  auto it = session_of_.find(host);
  return it == session_of_.end() ? 0 : it->second->id;
}

bool AgentHub::send_to(const HostId& host, const std::string& text) {
  auto it = session_of_.find(host);
  if (it == session_of_.end()) return false;
  it->second->send(text);
  return true;
}

size_t AgentHub::connected_count() const { return sessions_.size(); }

size_t AgentHub::waiting_count() const {
  size_t n = 0;
  for (const auto& [host, info] : agents_) n += info.connected && !info.waiting_for.empty();
  return n;
}

std::map<HostId, uint64_t> AgentHub::generation_lags() const {
  std::map<HostId, uint64_t> out;
  for (const auto& [host, info] : agents_) {
    if (!info.connected) continue;
    out[host] = info.generation_lag();
  }
  return out;
}

uint64_t AgentHub::max_generation_lag() const {
  uint64_t lag = 0;
  for (const auto& [host, behind] : generation_lags()) lag = std::max(lag, behind);
  return lag;
}

}  // namespace cutover::controller
