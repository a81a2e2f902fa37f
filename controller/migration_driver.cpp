// MigrationDriver: transitions, waits, timeouts and rollback (see the diagram in the header).
#include "migration_driver.hpp"

#include <algorithm>

#include <set>

#include "json_codec.hpp"
#include "logging.hpp"

namespace cutover::controller {

MigrationDriver::MigrationDriver(ControllerState& state, AgentHub& hub, Scheduler& scheduler,
                                 Metrics& metrics, MigrationPolicy policy)
    : state_(state),
      hub_(hub),
      scheduler_(scheduler),
      metrics_(metrics),
      policy_(std::move(policy)) {
  hub_.on_agent_update = [this](const HostId& h, AgentHub::AgentChange what) {
    if (what != AgentHub::AgentChange::generation) judge_report(h);
    if (what != AgentHub::AgentChange::generation || !nothing_to_follow(h)) on_agent_update(h);
  };
  hub_.on_migration_failed = [this](const HostId& h, const std::string& id, const std::string& e) {
    on_migration_failed(h, id, e);
  };
  hub_.on_aborted = [this](const HostId& h, const wire::Aborted& a) { on_aborted(h, a); };
  hub_.on_announced = [this](const HostId& h, const wire::Announced& a) { on_announced(h, a); };
  hub_.on_conntrack = [this](const HostId& h, const wire::Conntrack& c) { on_conntrack(h, c); };
  hub_.on_incoming = [this](const HostId& h, const wire::Incoming& in) { on_incoming(h, in); };
}

std::vector<const Migration*> MigrationDriver::open_migrations() const {
  std::vector<const Migration*> out;
  for (const auto& id : state_.open_migrations()) out.push_back(&state_.migrations().at(id));
  return out;
}

size_t MigrationDriver::active_count() const {
  size_t n = 0;
  for (const auto& [id, m] : state_.migrations()) n += is_terminal(m.state) ? 0 : 1;
  return n;
}

void MigrationDriver::stamp(Migration& m, const std::string& phase) {
  if (!m.timeline.count(phase)) m.timeline[phase] = scheduler_.now_us();
}

void MigrationDriver::audit(const Migration& m, const std::string& event, const std::string& detail,
                            bool with_next_save) {
  nlohmann::json entry = {{"time_us", scheduler_.now_us()},
                          {"migration", m.id.str()},
                          {"port", m.port.str()},
                          {"event", event},
                          {"detail", detail}};
  if (with_next_save) {
    state_.stage_audit(std::move(entry));
  } else {
    state_.append_audit(std::move(entry));
  }
}

void MigrationDriver::transition(Migration& m, MigrationState to, const std::string& reason) {
  logger("migration")
      ->info("{} ({} {} -> {}): {} -> {}{}{}", m.id.str(), m.port.str(), m.source.str(),
             m.destination.str(), to_string(m.state), to_string(to), reason.empty() ? "" : ": ",
             reason);
  m.state = to;
  if (!reason.empty()) m.reason = reason;
  stamp(m, to_string(to));
  audit(m, to_string(to), reason, true);  // stored with the migration's state, atomically
  if (is_terminal(to)) {
    metrics_.migration_finished(to_string(to));
    disarm_timer(m.id);
    migrate_session_.erase(m.id);
    // Only a migration that started can leave carried connections behind: not a rejected one,
    // nor one cancelled while it waited for approval (that would restart an earlier countdown).
    auto port = state_.ports().find(m.port);
    const bool started = m.timeline.count("preparing") > 0 || m.timeline.count("cutting_over") > 0;
    if (started && port != state_.ports().end() && !port->second.carried_conns.empty()) {
      expire_carried_later(m.port);
    }
    if (to == MigrationState::completed && port != state_.ports().end() &&
        port->second.previous_host) {
      end_forwarding_later(m.port);
    }
  }
}

void MigrationDriver::per_port_after(std::map<PortId, uint64_t>& timers, const PortId& port,
                                     std::chrono::milliseconds delay, std::function<void()> fn) {
  if (auto old = timers.find(port); old != timers.end()) scheduler_.cancel(old->second);
  timers[port] = scheduler_.after(delay, [&timers, port, fn = std::move(fn)] {
    timers.erase(port);
    fn();
  });
}

void MigrationDriver::end_forwarding_later(const PortId& port) {
  const uint64_t generation = state_.generation();  // the new location is in it
  per_port_after(forward_timers_, port, policy_.forward_grace, [this, port, generation] {
    auto it = state_.ports().find(port);
    if (it == state_.ports().end() || !it->second.previous_host) return;
    for (const auto* m : open_migrations()) {
      // Still converging on the location the previous host forwards to: its end re-arms this.
      if (m->port == port && m->state == MigrationState::cutting_over) return;
    }
    // A VTEP that has not applied the new location (its agent is away) still sends to the
    // previous host: it forwards until that VTEP has caught up, a grace period later.
    for (const auto& h : hosts_involved(it->second)) {
      if (h == *it->second.previous_host || hub_.host_applied(h, generation)) continue;
      logger("migration")
          ->info("port {}: {} keeps forwarding for it: {} has not applied its new location",
                 port.str(), it->second.previous_host->str(), h.str());
      end_forwarding_later(port);
      return;
    }
    Port p = it->second;
    const HostId left = *p.previous_host;
    p.previous_host.reset();
    try {
      state_.replace_port(p);
      logger("migration")
          ->info("port {}: {} stopped forwarding for it ({} ms after its migration)", port.str(),
                 left.str(), policy_.forward_grace.count());
    } catch (const std::exception& e) {
      logger("migration")
          ->warn("port {}: {} still forwards for it: {}", port.str(), left.str(), e.what());
    }
  });
}

void MigrationDriver::expire_carried_later(const PortId& port) {
  per_port_after(carried_timers_, port, policy_.carried_conns_ttl, [this, port] {
    auto it = state_.ports().find(port);
    if (it == state_.ports().end() || it->second.carried_conns.empty()) return;
    for (const auto* m : open_migrations()) {
      // One under way may have carried these itself; its end sets a new timer. One waiting for
      // approval has not started (preparing clears them): it does not hold them.
      if (m->port == port && !is_terminal(m->state) &&
          m->state != MigrationState::pending_approval) {
        return;
      }
    }
    Port p = it->second;
    const size_t n = p.carried_conns.size();
    p.carried_conns.clear();
    try {
      state_.replace_port(p);
      logger("migration")
          ->info(
              "port {}: dropped the admits of {} carried connections ({} ms after its "
              "migration)",
              port.str(), n, policy_.carried_conns_ttl.count());
    } catch (const std::exception& e) {
      logger("migration")->warn("port {}: carried connections kept: {}", port.str(), e.what());
    }
  });
}

void MigrationDriver::save(const Migration& m) { state_.put_migration(m); }

std::string MigrationDriver::policy_refusal(const Port& p, const HostId& to) const {
  const auto& host = state_.hosts().at(to);
  if (!p.volumes.empty() && host.storage.empty()) {
    return "policy: port '" + p.id.str() + "' has NVMe/TCP volumes and " + to.str() +
           "'s agent cannot attach or probe them (no --storage, or its kernel lacks nvme-tcp)";
  }
  for (const auto& rule : policy_.forbid) {
    if (p.labels.count(rule.port_label) && host.labels.count(rule.host_label)) {
      return "policy: a port labelled '" + rule.port_label + "' must not run on a host labelled '" +
             rule.host_label + "'";
    }
  }
  std::map<HostId, int64_t> busy;
  for (const auto& [id, m] : state_.migrations()) {
    if (is_terminal(m.state)) continue;
    ++busy[m.source];
    ++busy[m.destination];
  }
  for (const auto* h : {&*p.host, &to}) {
    if (busy[*h] >= policy_.max_concurrent_per_host) {
      return "policy: host '" + h->str() + "' already has " + std::to_string(busy[*h]) +
             " active migrations (limit " + std::to_string(policy_.max_concurrent_per_host) + ")";
    }
  }
  return "";
}

std::vector<PortId> MigrationDriver::ports_of_vm(const std::string& vm) const {
  std::vector<std::string> hosts;
  std::set<std::string> ifaces;
  for (const auto& [host, info] : hub_.agents()) {
    auto it = info.report.vms.find(vm);
    if (!info.connected || it == info.report.vms.end()) continue;
    hosts.push_back(host.str());
    for (const auto& i : it->second) ifaces.insert(i.iface_id);
  }
  if (hosts.empty()) {
    throw ApiError(422, "unknown_reference", "vm",
                   "no connected agent reports a running libvirt domain '" + vm + "'");
  }
  if (hosts.size() > 1) {
    throw ApiError(409, "conflict", "vm",
                   "domain '" + vm + "' runs on more than one host (" + hosts[0] + ", " + hosts[1] +
                       "): a migration is under way or the name is not unique");
  }
  std::vector<PortId> ports;
  for (const auto& [id, p] : state_.ports()) {
    if (!ifaces.count(p.iface_id)) continue;
    if (!p.host || p.host->str() != hosts[0]) {
      throw ApiError(409, "conflict", "vm",
                     "domain '" + vm + "' runs on " + hosts[0] + " but its port '" + id.str() +
                         "' is placed on " + (p.host ? p.host->str() : std::string("no host")) +
                         " (a migration the controller has not caught up with?)");
    }
    ports.push_back(id);
  }
  if (ports.empty()) {
    throw ApiError(422, "invalid", "vm",
                   "domain '" + vm + "' on " + hosts[0] +
                       " has no interface that is a cutover port (no port's iface_id matches "
                       "its <virtualport> interfaceid)");
  }
  return ports;
}

void MigrationDriver::check_can_migrate(const PortId& port_id, const HostId& to) const {
  auto pit = state_.ports().find(port_id);
  if (pit == state_.ports().end()) {
    throw ApiError(422, "unknown_reference", "port", "no port '" + port_id.str() + "'");
  }
  const Port& port = pit->second;
  if (!state_.hosts().count(to)) {
    throw ApiError(422, "unknown_reference", "to_host", "no host '" + to.str() + "'");
  }
  if (!port.host) {
    throw ApiError(422, "invalid", "port", "port '" + port_id.str() + "' is not placed on a host");
  }
  if (*port.host == to) {
    throw ApiError(422, "invalid", "to_host",
                   "port '" + port_id.str() + "' is already on " + to.str());
  }
  for (const auto& [id, m] : state_.migrations()) {
    if (m.port == port_id && !is_terminal(m.state)) {
      throw ApiError(409, "conflict", "port",
                     "port '" + port_id.str() + "' is already migrating (" + id.str() + ")");
    }
  }
}

Migration MigrationDriver::create_vm(const std::string& vm, const HostId& to,
                                     const std::string& requested_by, bool carry_conntrack,
                                     const LibvirtMigrationSettings& libvirt) {
  const auto ports = ports_of_vm(vm);
  if (ports.size() == 1)
    return create(ports.front(), to, requested_by, carry_conntrack, vm, libvirt);
  // All or none: every port can move, and policy admits every one, judged before any is made
  // (the group's own members must not count against its concurrency limit).
  std::vector<std::string> refusals;
  std::string refused;
  for (const auto& id : ports) {
    check_can_migrate(id, to);
    auto why = policy_refusal(state_.ports().at(id), to);
    if (!why.empty() && refused.empty()) refused = "port '" + id.str() + "': " + why;
    refusals.push_back(std::move(why));
  }
  std::string group;
  for (size_t i = 0; i < ports.size(); ++i) {
    Migration m = new_migration(ports[i], to, carry_conntrack, vm, libvirt);
    if (i == 0) group = m.id.str();
    m.group = group;
    audit(m, "requested",
          (requested_by.empty() ? "" : "by " + requested_by + "; ") + "port " +
              std::to_string(i + 1) + " of " + std::to_string(ports.size()) + " of VM '" + vm +
              "' (group " + group + ")");
    admit(m, refused.empty() ? "" : refusals[i].empty() ? "with its VM: " + refused : refusals[i]);
  }
  return state_.migrations().at(MigrationId::parse(group));
}

std::vector<MigrationId> MigrationDriver::group_of(const Migration& m) const {
  std::vector<MigrationId> out;
  if (m.group.empty()) return out;
  for (const auto* open : open_migrations()) {
    if (open->group == m.group && open->id != m.id) out.push_back(open->id);
  }
  return out;
}

Migration MigrationDriver::new_migration(const PortId& port_id, const HostId& to,
                                         bool carry_conntrack, const std::string& vm,
                                         const LibvirtMigrationSettings& libvirt) {
  Migration m;
  m.id = state_.next_migration_id();
  m.port = port_id;
  m.vm = vm;
  m.source = *state_.ports().at(port_id).host;
  m.destination = to;
  m.state = MigrationState::requested;
  m.carry_conntrack = carry_conntrack;
  m.libvirt = libvirt;
  stamp(m, "requested");
  return m;
}

void MigrationDriver::admit(Migration m, const std::string& refusal) {
  if (!refusal.empty()) {
    transition(m, MigrationState::rejected, refusal);
    save(m);
    return;
  }
  stamp(m, "admitted");
  if (policy_.require_approval) {
    transition(m, MigrationState::pending_approval,
               "waiting for POST /v1/migrations/" + (m.group.empty() ? m.id.str() : m.group) +
                   "/approve" + (m.group.empty() ? "" : " (the VM's group)"));
    save(m);
    return;
  }
  start_prepare(m);
}

Migration MigrationDriver::create(const PortId& port_id, const HostId& to,
                                  const std::string& requested_by, bool carry_conntrack,
                                  const std::string& vm, const LibvirtMigrationSettings& libvirt) {
  check_can_migrate(port_id, to);
  Migration m = new_migration(port_id, to, carry_conntrack, vm, libvirt);
  audit(m, "requested", requested_by.empty() ? "" : "by " + requested_by);
  admit(m, policy_refusal(state_.ports().at(port_id), to));
  return state_.migrations().at(m.id);
}

Migration MigrationDriver::approve(const MigrationId& id) {
  auto it = state_.migrations().find(id);
  if (it == state_.migrations().end())
    throw ApiError(404, "not_found", "", "no migration '" + id.str() + "'");
  if (it->second.state != MigrationState::pending_approval) {
    throw ApiError(
        409, "conflict", "state",
        "migration " + id.str() + " is " + to_string(it->second.state) + ", not pending_approval");
  }
  Migration m = it->second;
  audit(m, "approved", "");
  start_prepare(m);
  for (const auto& other : group_of(m)) {  // a VM's group is approved as one
    Migration o = state_.migrations().at(other);
    if (o.state != MigrationState::pending_approval) continue;
    audit(o, "approved", "with its VM's group " + m.group);
    start_prepare(o);
  }
  return state_.migrations().at(id);
}

Migration MigrationDriver::cancel(const MigrationId& id, const std::string& reason) {
  auto it = state_.migrations().find(id);
  if (it == state_.migrations().end())
    throw ApiError(404, "not_found", "", "no migration '" + id.str() + "'");
  const auto s = it->second.state;
  if (s == MigrationState::migrating) {
    throw ApiError(409, "conflict", "state",
                   "migration " + id.str() + " is past the VM's pause on " +
                       it->second.source.str() +
                       " (its final copy): it is carried forward and can no longer be cancelled");
  }
  if (s != MigrationState::pending_approval && s != MigrationState::preparing &&
      s != MigrationState::ready) {
    throw ApiError(
        409, "conflict", "state",
        "migration " + id.str() + " is " + to_string(s) + " and can no longer be cancelled");
  }
  rollback(id, reason);
  return state_.migrations().at(id);
}

Migration MigrationDriver::record_measurement(const MigrationId& id, const Measurement& measured) {
  auto it = state_.migrations().find(id);
  if (it == state_.migrations().end())
    throw ApiError(404, "not_found", "", "no migration '" + id.str() + "'");
  if (!is_terminal(it->second.state)) {
    throw ApiError(409, "conflict", "state",
                   "migration " + id.str() + " is " + to_string(it->second.state) +
                       ": a measurement is recorded once it has ended");
  }
  Migration m = it->second;
  m.measured = measured;
  audit(m, "measured",
        std::to_string(measured.lost) + " of " + std::to_string(measured.sent) + " lost at " +
            std::to_string(measured.pps) + " pps" +
            (measured.tcp_sessions ? ", TCP " + std::to_string(measured.tcp_survived) + "/" +
                                         std::to_string(measured.tcp_sessions) + " survived"
                                   : "") +
            (measured.by.empty() ? "" : " (" + measured.by + ")"),
        true);
  save(m);
  return state_.migrations().at(id);
}

std::vector<HostId> MigrationDriver::hosts_involved(const Port& p) const {
  return state_.index().hosts_on(p.network);
}

void MigrationDriver::arm_timer(const MigrationId& id, std::chrono::milliseconds d,
                                const std::string& what) {
  disarm_timer(id);
  timers_[id] = scheduler_.after(d, [this, id, what, d] {
    timers_.erase(id);
    rollback(id, what + " (timed out after " + std::to_string(d.count()) + " ms)");
  });
}

void MigrationDriver::disarm_timer(const MigrationId& id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  scheduler_.cancel(it->second);
  timers_.erase(it);
}

void MigrationDriver::start_prepare(Migration m) {
  Port p = state_.ports().at(m.port);
  p.migrating_to = m.destination;
  // Back to where it just left: that host receives it now, it no longer forwards for it.
  if (p.previous_host == m.destination) p.previous_host.reset();
  p.carried_conns.clear();  // what an earlier migration carried is the source's own state now
  transition(m, MigrationState::preparing, "");
  state_.put_port_and_migration(p, m);  // one generation: D binds, VTEPs deliver to both
  wait_prepared(m.id, p);
}

void MigrationDriver::wait_prepared(const MigrationId& id, const Port& p) {
  arm_timer(id, policy_.prepare_timeout, "destination and VTEPs did not acknowledge the prepare");
  hub_.wait_applied(
      hosts_involved(p), state_.generation(), [this, id](bool ok, const std::string& why) {
        auto it = state_.migrations().find(id);
        if (it == state_.migrations().end() || it->second.state != MigrationState::preparing)
          return;
        if (!ok) {
          rollback(id, "prepare failed: " + why);
          return;
        }
        Migration m = it->second;
        stamp(m, "prepared");
        stamp(m, "all_vteps_ready");
        save(m);
        finish_prepare(id);
      });
}

void MigrationDriver::finish_prepare(const MigrationId& id) {
  auto it = state_.migrations().find(id);
  if (it == state_.migrations().end() || it->second.state != MigrationState::preparing ||
      !it->second.timeline.count("all_vteps_ready")) {
    return;
  }
  Migration m = it->second;
  const auto& port = state_.ports().at(m.port);
  if (!port.volumes.empty()) {
    auto agent = hub_.agents().find(m.destination);
    if (agent == hub_.agents().end()) return;
    for (const auto& v : port.volumes) {
      const std::string key = port.id.str() + "/" + v.id;
      if (auto f = agent->second.report.storage_failed.find(key);
          f != agent->second.report.storage_failed.end()) {
        rollback(id, "storage on " + m.destination.str() + ": " + f->second);
        return;
      }
      if (!contains(agent->second.report.storage_ready, key)) return;  // still attaching
    }
    stamp(m, "storage_ready");
  }
  transition(m, MigrationState::ready, "");
  save(m);
  if (!m.group.empty()) {
    drive_group(m.group);
  } else if (drive(m)) {
    save(m);  // its stamp
  }
  tell_prepared(m.destination, port.iface_id, m.id.str(), "");
  arm_timer(id, policy_.activation_timeout, "port never came up on the destination");
  check_activation(id);
}

void MigrationDriver::check_released(const HostId& host) {
  auto agent = hub_.agents().find(host);
  if (agent == hub_.agents().end() || !agent->second.connected) return;
  std::vector<Migration> done;
  for (const auto* open : open_migrations()) {
    const Migration& m = *open;
    if (m.timeline.count("storage_released")) continue;
    const bool left = (m.state == MigrationState::completed && m.source == host) ||
                      (m.state == MigrationState::rolled_back && m.destination == host);
    if (!left) continue;
    auto port = state_.ports().find(m.port);
    if (port == state_.ports().end() || port->second.volumes.empty()) continue;
    bool held = false;
    for (const auto& v : port->second.volumes) {
      held |= contains(agent->second.report.storage_ready, m.port.str() + "/" + v.id);
    }
    if (!held) done.push_back(m);
  }
  for (auto& m : done) {
    stamp(m, "storage_released");
    save(m);
  }
}

void MigrationDriver::drive_group(const std::string& group) {
  const auto lead_id = MigrationId::parse(group);
  auto it = state_.migrations().find(lead_id);
  if (it == state_.migrations().end() || it->second.state != MigrationState::ready ||
      it->second.timeline.count("migration_started")) {
    return;
  }
  Migration lead = it->second;
  for (const auto& other : group_of(lead)) {
    if (state_.migrations().at(other).state != MigrationState::ready) return;  // not all yet
  }
  if (drive(lead)) save(lead);
}

bool MigrationDriver::drive(Migration& m) {
  // libvirt is already migrating it: asking the source again would only fail.
  if (m.timeline.count("detected_incoming")) return false;
  const auto& dest = state_.hosts().at(m.destination);
  if (dest.migration_uri.empty()) return false;  // migrated by someone else (virsh, Nova, a test)
  const auto& port = state_.ports().at(m.port);
  wire::Migrate cmd{m.id.str(), port.iface_id, dest.migration_uri, m.libvirt};
  if (hub_.send_to(m.source, wire::encode(wire::ControllerMessage{cmd}))) {
    migrate_session_[m.id] = hub_.session_of(m.source);
    stamp(m, "migration_started");
    audit(m, "migration_started", "source agent asked to live-migrate to " + dest.migration_uri,
          true);
    return true;
  }
  return false;
}

const Migration* MigrationDriver::of_source(const HostId& host, const std::string& migration,
                                            const char* what) const {
  auto it = state_.migrations().end();
  try {
    it = state_.migrations().find(MigrationId::parse(migration));
  } catch (const ParseError&) {
  }
  if (it == state_.migrations().end() || it->second.source != host) {
    logger("migration")
        ->warn("agent {} {} migration {}, which it is not the source of: ignored", host.str(), what,
               migration);
    metrics_.auth_refused("not_its_migration");
    return nullptr;
  }
  return &it->second;
}

bool MigrationDriver::runs_on_source(const Migration& m) const {
  auto src = hub_.agents().find(m.source);
  if (src == hub_.agents().end() || !src->second.connected || !src->second.reported) return false;
  const auto& iface = state_.ports().at(m.port).iface_id;
  for (const auto& [vm, ifaces] : src->second.report.vms) {
    if (has_iface(ifaces, iface)) return true;
  }
  return false;
}

void MigrationDriver::on_migration_failed(const HostId& host, const std::string& migration,
                                          const std::string& error) {
  const Migration* found = of_source(host, migration, "reported a failed");
  if (!found) return;
  const Migration& m = *found;
  if (is_terminal(m.state) || m.state == MigrationState::cutting_over) return;
  // libvirt resumes the VM on the source when its migration fails: the network goes back too.
  finish_rollback(m, "live migration failed: " + error);
}

void MigrationDriver::on_aborted(const HostId& host, const wire::Aborted& answer) {
  const Migration* found = of_source(host, answer.migration, "answered the abort of");
  if (!found) return;
  Migration m = *found;
  if (m.state != MigrationState::rolling_back) return;  // settled already
  audit(m, "abort_answered",
        std::string("the VM is ") + wire::to_string(answer.where) + ": " + answer.detail);
  if (answer.where == wire::Aborted::Where::here) {
    finish_rollback(m, m.reason);
  } else if (answer.where == wire::Aborted::Where::gone) {
    // Too late: it had already switched over to D. The record follows the VM.
    audit(m, "carried_forward", "the VM had left " + m.source.str() + " before the abort");
    cut_over(m);
  }
  // unknown: the reports (or abort_timeout) decide.
}

void MigrationDriver::on_conntrack(const HostId& host, const wire::Conntrack& ct) {
  for (const auto& [id, mig] : state_.migrations()) {
    if (mig.port.str() != ct.port || mig.source != host || is_terminal(mig.state)) continue;
    if (!mig.carry_conntrack) return;
    Migration m = mig;
    Port p = state_.ports().at(m.port);
    std::vector<CarriedConn> conns;
    for (const auto& c : ct.conns) {
      // Only connections of the port's own addresses: an agent cannot widen another port's ACL.
      if (std::find(p.ips.begin(), p.ips.end(), c.local_ip) != p.ips.end()) conns.push_back(c);
    }
    const bool changed = conns != p.carried_conns;
    p.carried_conns = std::move(conns);
    m.conntrack_carried = static_cast<int64_t>(p.carried_conns.size());
    stamp(m, "conntrack_carried");
    if (changed) {
      audit(m, "conntrack_carried",
            std::to_string(p.carried_conns.size()) + " connections from " + host.str());
    }
    state_.put_port_and_migration(p, m);  // D admits them through the held port's firewall
    return;
  }
  logger("migration")
      ->warn("agent {} sent connections of port {}, which is not migrating from it: ignored",
             host.str(), ct.port);
  metrics_.auth_refused("not_its_migration");
}

void MigrationDriver::on_announced(const HostId& host, const wire::Announced& round) {
  auto requested_at = [](const Migration& m) {
    auto it = m.timeline.find("requested");
    return it == m.timeline.end() ? int64_t{0} : it->second;
  };
  const Migration* latest = nullptr;
  for (const auto& [id, m] : state_.migrations()) {
    if (m.port.str() != round.port || m.destination != host) continue;
    if (m.state == MigrationState::rejected || m.state == MigrationState::rolled_back) continue;
    if (!latest || requested_at(m) >= requested_at(*latest)) latest = &m;
  }
  if (!latest) return;  // not a migration of ours (e.g. placed here by hand)
  Migration m = *latest;
  m.announcements += round.frames;
  stamp(m, "garps_sent");
  if (round.round + 1 == round.rounds) {
    stamp(m, "garps_done");
    audit(
        m, "announced",
        std::to_string(m.announcements) + " GARP/NA/RARP frames in " +
            std::to_string(round.rounds) + " rounds" +
            (round.failed ? "; " + std::to_string(round.failed) + " failed: " + round.error : ""));
  }
  save(m);
}

void MigrationDriver::tell_prepared(const HostId& host, const std::string& iface_id,
                                    const std::string& migration, const std::string& error) {
  hub_.send_to(host, wire::encode(wire::ControllerMessage{
                         wire::Prepared{iface_id, migration, error.empty(), error}}));
}

void MigrationDriver::adopt_incoming(const HostId& host) {
  auto agent = hub_.agents().find(host);
  if (agent == hub_.agents().end()) return;
  const auto& incoming = agent->second.report.incoming;
  std::erase_if(incoming_seen_,
                [&](const auto& k) { return k.first == host && !contains(incoming, k.second); });
  for (const auto& iface : incoming) {
    if (incoming_seen_.insert({host, iface}).second) adopt_incoming(host, iface, false);
  }
}

void MigrationDriver::on_incoming(const HostId& host, const wire::Incoming& in) {
  for (const auto& iface : in.iface_ids) {
    incoming_seen_.insert({host, iface});
    adopt_incoming(host, iface, true);
  }
}

void MigrationDriver::adopt_incoming(const HostId& host, const std::string& iface, bool asked) {
  const Port* port = state_.port_of_iface(iface);
  if (!port) {
    logger("migration")
        ->info("a VM is arriving on {} with interface {}, which is no cutover port: ignored",
               host.str(), iface);
    tell_prepared(host, iface, "", "no cutover port has iface_id '" + iface + "'");
    return;
  }
  if (!port->host) {
    tell_prepared(host, iface, "", "port '" + port->id.str() + "' is not placed on a host");
    return;
  }
  // The VM has just left that host (cutover): its tap lingers there until QEMU exits.
  if (!asked && port->previous_host == host) return;
  if (*port->host == host) {
    tell_prepared(host, iface, "", "");  // already here: nothing to prepare
    return;
  }
  const Migration* active = nullptr;
  for (const auto* m : open_migrations()) {
    if (m->port == port->id && !is_terminal(m->state)) active = m;
  }
  if (active) {
    // Ours already (or one towards elsewhere). A prepare still running answers when ready.
    if (active->destination != host) {
      tell_prepared(host, iface, active->id.str(),
                    "port '" + port->id.str() + "' is migrating to " + active->destination.str() +
                        " (" + active->id.str() + ")");
    } else if (active->state == MigrationState::ready ||
               active->state == MigrationState::migrating) {
      tell_prepared(host, iface, active->id.str(), "");
    }
    return;
  }
  Migration m =
      detected(*port, host, "detected_incoming",
               "arriving on " + host.str() + " by a live migration cutover did not start");
  auto why = policy_refusal(*port, host);
  if (why.empty() && policy_.require_approval) {
    why = "policy: approval required, and this migration was started outside cutover";
  }
  if (!why.empty()) {
    // Left to libvirt: when the VM runs there, adopt_external follows it (and says so).
    transition(m, MigrationState::rejected, why);
    save(m);
    tell_prepared(host, iface, m.id.str(), why);
    return;
  }
  stamp(m, "admitted");
  start_prepare(m);
}

Migration MigrationDriver::detected(const Port& port, const HostId& to, const std::string& phase,
                                    const std::string& detail) {
  Migration m;
  m.id = state_.next_migration_id();
  m.port = port.id;
  m.source = *port.host;
  m.destination = to;
  stamp(m, "requested");
  stamp(m, phase);
  audit(m, phase, detail);
  return m;
}

void MigrationDriver::adopt_external(const HostId& host) {
  auto agent = hub_.agents().find(host);
  if (agent == hub_.agents().end()) return;
  for (const auto& iface : agent->second.report.foreign_running) {
    const Port* port = state_.port_of_iface(iface);
    if (!port || !port->host || *port->host == host || port->migrating_to) continue;
    bool active = false;
    for (const auto* m : open_migrations()) active |= m->port == port->id && !is_terminal(m->state);
    if (active) continue;
    Migration m = detected(*port, host, "detected_external",
                           "running on " + host.str() + " without a cutover migration");
    // The VM already runs there: following it is the only way to keep it reachable, but say
    // what cutover would have refused (e.g. a port on a host its placement rules forbid).
    if (auto why = policy_refusal(*port, host); !why.empty()) {
      audit(m, "policy_violated", why + " (followed anyway: the VM already runs there)");
      logger("migration")
          ->warn("{}: followed a migration cutover would have refused: {}", m.id.str(), why);
    }
    Port moved = *port;
    moved.migrating_to = host;    // cut_over() moves it from here
    moved.carried_conns.clear();  // as start_prepare(): the old ones are the source's own now
    state_.put_port_and_migration(moved, m);
    cut_over(m);
  }
}

void MigrationDriver::note_precopy(const HostId& host) {
  auto agent = hub_.agents().find(host);
  if (agent == hub_.agents().end() || agent->second.report.precopy_iterations.empty()) return;
  std::vector<Migration> changed;
  for (const auto* open : open_migrations()) {
    const Migration& m = *open;
    // Only once the live migration is under way: nothing left over from an earlier one.
    if (m.source != host || is_terminal(m.state) || !m.timeline.count("migration_started")) {
      continue;
    }
    auto it = agent->second.report.precopy_iterations.find(m.port.str());
    if (it == agent->second.report.precopy_iterations.end()) continue;
    // One stamp per pass (bounded: a migration that never converges should not grow forever).
    const auto phase = "precopy_pass_" + std::to_string(std::min<int64_t>(it->second, 30));
    if (m.timeline.count(phase)) continue;
    changed.push_back(m);
    stamp(changed.back(), phase);
  }
  for (auto& m : changed) save(m);
}

bool MigrationDriver::nothing_to_follow(const HostId& host) const {
  if (!state_.open_migrations().empty() || !incoming_seen_.empty()) return false;
  return following_.empty() || !following_.count(host);
}

void MigrationDriver::judge_report(const HostId& host) {
  auto agent = hub_.agents().find(host);
  const bool follow =
      agent == hub_.agents().end() || !agent->second.report.foreign_running.empty() ||
      !agent->second.report.incoming.empty() || !agent->second.report.precopy_iterations.empty();
  if (follow) {
    following_.insert(host);
  } else {
    following_.erase(host);
  }
}

void MigrationDriver::on_agent_update(const HostId& host) {
  note_precopy(host);
  adopt_incoming(host);
  std::vector<MigrationId> waiting, aborting;
  for (const auto* m : open_migrations()) {
    const bool live = m->state == MigrationState::ready || m->state == MigrationState::migrating;
    if (live && (m->destination == host || m->source == host)) waiting.push_back(m->id);
    if (m->state == MigrationState::rolling_back && (m->destination == host || m->source == host)) {
      aborting.push_back(m->id);
    }
  }
  for (const auto& id : waiting) check_activation(id);
  for (const auto& id : aborting) {
    if (settle_from_reports(id)) continue;
    const auto& m = state_.migrations().at(id);
    if (abort_unsent_.count(id) && m.source == host && send_abort(m)) abort_unsent_.erase(id);
  }
  std::vector<MigrationId> preparing;
  for (const auto* m : open_migrations()) {
    if (m->state == MigrationState::preparing && m->destination == host) preparing.push_back(m->id);
  }
  for (const auto& id : preparing) finish_prepare(id);
  check_released(host);
  adopt_external(host);
}

void MigrationDriver::check_activation(const MigrationId& id) {
  auto it = state_.migrations().find(id);
  if (it == state_.migrations().end()) return;
  if (it->second.state != MigrationState::ready && it->second.state != MigrationState::migrating) {
    return;
  }
  Migration m = it->second;
  if (settle_from_reports(id)) return;
  const auto& port = state_.ports().at(m.port);
  // The source VM paused for the final copy. Nothing waits for this report: the source
  // forwards the port's frames to the destination by itself from the pause on. It goes on the
  // timeline (and the state): from here on the migration is carried forward, not rolled back.
  auto source = hub_.agents().find(m.source);
  if (m.state == MigrationState::ready && source != hub_.agents().end() &&
      source->second.connected && source->second.reported &&
      contains(source->second.report.paused_ports, port.id.str())) {
    stamp(m, "source_paused");
    transition(m, MigrationState::migrating, "");
    save(m);
  }
  // Before the pause the VM still runs on S: abort and roll back. After it, D may already run
  // the VM: carried forward until the reports say where it is.
  if (m.state == MigrationState::ready && lost(m.destination)) {
    rollback(id, "destination agent " + m.destination.str() + " disconnected");
  }
}

bool MigrationDriver::lost(const HostId& host) const {
  auto a = hub_.agents().find(host);
  return a != hub_.agents().end() && !a->second.connected && a->second.sent_generation > 0;
}

bool MigrationDriver::settle_from_reports(const MigrationId& id) {
  auto it = state_.migrations().find(id);
  if (it == state_.migrations().end()) return false;
  const Migration& m = it->second;
  const bool waiting = m.state == MigrationState::ready || m.state == MigrationState::migrating ||
                       m.state == MigrationState::rolling_back;
  if (!waiting) return false;
  const auto& port = state_.ports().at(m.port);
  auto dest = hub_.agents().find(m.destination);
  if (dest != hub_.agents().end() && dest->second.connected && dest->second.reported &&
      contains(dest->second.report.bound_ports, port.id.str())) {
    if (m.state == MigrationState::rolling_back) {
      audit(m, "carried_forward", "the VM runs on " + m.destination.str() + " despite the abort");
    }
    cut_over(m);  // the VM runs on D
    return true;
  }
  auto src = hub_.agents().find(m.source);
  if (src == hub_.agents().end() || !src->second.connected || !src->second.reported) return false;
  const auto& s = src->second.report;
  const bool paused = contains(s.paused_ports, port.id.str());
  const bool running = runs_on_source(m);
  const bool after_pause = m.timeline.count("source_paused") > 0;
  if (after_pause && !paused && !running && !contains(s.bound_ports, port.id.str())) {
    // Its tap is gone from S after its final pause: libvirt finished on D, whose agent has not
    // said so (yet). The record follows the VM.
    audit(m, "carried_forward", "the VM left " + m.source.str() + " after its pause");
    cut_over(m);
    return true;
  }
  // cutover asked S's agent to migrate it, and S - on a later connection - runs the VM without
  // running that call (its agent restarted; or a restarted controller is not sure it did):
  // nothing moves the VM unless libvirtd went on alone. Roll back through an abort of libvirt's
  // job, whose answer says where the VM is.
  auto asked = migrate_session_.find(id);
  const bool later_session =
      asked == migrate_session_.end() || asked->second != hub_.session_of(m.source);
  if (m.state == MigrationState::ready && m.timeline.count("migration_started") && later_session &&
      running && !paused && !contains(s.live_migrations, id.str())) {
    rollback(id,
             "the source's agent is not running the live migration it was asked for (it "
             "restarted)");
    return true;
  }
  if (after_pause && m.state == MigrationState::migrating && running) {
    finish_rollback(m, "the VM runs on " + m.source.str() +
                           " again after its pause (libvirt's migration failed)");
    return true;
  }
  return false;
}

void MigrationDriver::cut_over(Migration m) {
  Port p = state_.ports().at(m.port);
  stamp(m, "destination_bound");
  if (m.timeline.count("source_paused")) {
    // The VM's network pause: from the source's stop to its resume on the destination.
    metrics_.observe_blackout(
        static_cast<double>(m.timeline["destination_bound"] - m.timeline["source_paused"]) / 1e6);
  }
  p.host = m.destination;
  p.migrating_to.reset();
  // The source forwards what the other VTEPs still send it until they have all switched.
  p.previous_host = m.source;
  transition(m, MigrationState::cutting_over, "");
  state_.put_port_and_migration(p, m);
  const uint64_t gen = state_.generation();
  const MigrationId id = m.id;
  auto hosts = hosts_involved(p);
  hosts.push_back(m.source);
  arm_timer(id, policy_.converge_timeout, "remote VTEPs did not converge");
  hub_.wait_applied(hosts, gen, [this, id](bool ok, const std::string& why) {
    auto it = state_.migrations().find(id);
    if (it == state_.migrations().end() || it->second.state != MigrationState::cutting_over) return;
    Migration m = it->second;
    // The VM already runs on D: there is nothing to roll back to. Record what did not converge.
    stamp(m, "converged");
    stamp(m, "source_cleaned");
    const auto t0 = m.timeline["cutting_over"];
    metrics_.observe_convergence(static_cast<double>(scheduler_.now_us() - t0) / 1e6);
    transition(m, MigrationState::completed,
               ok ? "" : "completed, but convergence incomplete: " + why);
    save(m);
  });
}

void MigrationDriver::rollback(const MigrationId& id, const std::string& reason) {
  rollback_one(id, reason);
  // A VM's ports go back together: what made one roll back before the VM's pause holds for the
  // VM. One rolled back at once took the others with it (finish_rollback); one waiting for the
  // abort of libvirt's job takes the others into rolling_back too. A member past the pause is
  // carried forward by its own reports.
  auto it = state_.migrations().find(id);
  if (it == state_.migrations().end() || it->second.state != MigrationState::rolling_back) return;
  const Migration m = it->second;
  for (const auto& other : group_of(m)) {
    rollback_one(other, "with its VM: " + m.id.str() + " " + reason);
  }
}

void MigrationDriver::rollback_one(const MigrationId& id, const std::string& reason) {
  auto it = state_.migrations().find(id);
  if (it == state_.migrations().end()) return;
  Migration m = it->second;
  if (m.state == MigrationState::cutting_over) {
    // Past the point of no return: finish instead.
    stamp(m, "converged");
    transition(m, MigrationState::completed, "completed, but " + reason);
    save(m);
    return;
  }
  if (is_terminal(m.state) || m.state == MigrationState::rolling_back) return;
  if (m.state == MigrationState::migrating) {
    // The VM paused for its final copy: it may run on D any moment. Carried forward: the
    // reports decide (cut over once D runs it, rolled back if S runs it again).
    audit(m, "carried_forward", reason + " (after the VM's pause: not rolled back)");
    logger("migration")
        ->warn("{}: {}; past the VM's pause, so carried forward", m.id.str(), reason);
    arm_timer(id, policy_.activation_timeout, "port never came up on the destination");
    return;
  }
  bool libvirt_may_move =
      m.timeline.count("migration_started") > 0 || m.timeline.count("detected_incoming") > 0;
  if (!m.group.empty() && m.group != m.id.str()) {  // a member: libvirt moves the lead's VM
    auto lead = state_.migrations().find(MigrationId::parse(m.group));
    libvirt_may_move |=
        lead != state_.migrations().end() && lead->second.timeline.count("migration_started") > 0;
  }
  if (libvirt_may_move && m.state != MigrationState::pending_approval) {
    transition(m, MigrationState::rolling_back, reason);
    save(m);
    if (!send_abort(m)) abort_unsent_.insert(m.id);
    arm_abort_deadline(id);
    return;
  }
  finish_rollback(m, reason);
}

void MigrationDriver::arm_abort_deadline(const MigrationId& id) {
  disarm_timer(id);
  timers_[id] = scheduler_.after(policy_.abort_timeout, [this, id] {
    timers_.erase(id);
    auto it = state_.migrations().find(id);
    if (it == state_.migrations().end() || it->second.state != MigrationState::rolling_back) return;
    if (settle_from_reports(id)) return;
    const Migration& m = it->second;
    if (runs_on_source(m)) {
      finish_rollback(m, m.reason + " (no answer to the abort within " +
                             std::to_string(policy_.abort_timeout.count()) +
                             " ms; the VM runs on " + m.source.str() + ")");
      return;
    }
    logger("migration")
        ->warn("{}: no answer to the abort and no report of where the VM runs yet: waiting",
               id.str());
    arm_abort_deadline(id);
  });
}

bool MigrationDriver::send_abort(const Migration& m) {
  const auto& port = state_.ports().at(m.port);
  const bool sent = hub_.send_to(
      m.source, wire::encode(wire::ControllerMessage{wire::Abort{m.id.str(), port.iface_id}}));
  if (sent) audit(m, "abort_sent", "asked " + m.source.str() + " to abort libvirt's job");
  return sent;
}

void MigrationDriver::finish_rollback(Migration m, const std::string& reason) {
  abort_unsent_.erase(m.id);
  transition(m, MigrationState::rolled_back, reason);
  Port p = state_.ports().at(m.port);
  if (p.migrating_to) {
    p.migrating_to.reset();
    state_.put_port_and_migration(p, m);
  } else {
    save(m);
  }
  // The VM stays on the source (libvirt failed or was aborted in time, or never started): so do
  // the other ports of its group.
  for (const auto& other : group_of(m)) {
    auto it = state_.migrations().find(other);
    if (it == state_.migrations().end() || is_terminal(it->second.state) ||
        it->second.state == MigrationState::cutting_over) {
      continue;
    }
    disarm_timer(other);
    finish_rollback(it->second, "with its VM: " + m.id.str() + " " + reason);
  }
}

void MigrationDriver::recover() {
  std::vector<MigrationId> active;
  for (const auto& [id, m] : state_.migrations()) {
    if (!is_terminal(m.state)) active.push_back(id);
  }
  // Admits carried, and forwarding set up, by migrations that ended before the restart: their
  // timers died with it.
  for (const auto& [id, p] : state_.ports()) {
    if (!p.carried_conns.empty()) expire_carried_later(id);
    if (p.previous_host) end_forwarding_later(id);
  }
  // Nothing is rolled back for the restart itself: the hosts went on without the controller,
  // and their reports (as they reconnect) say where each VM is.
  for (const auto& id : active) {
    Migration m = state_.migrations().at(id);
    switch (m.state) {
      case MigrationState::cutting_over:
        transition(m, MigrationState::completed, "completed after controller restart");
        save(m);
        break;
      case MigrationState::preparing:
        audit(m, "resumed", "controller restarted: waiting for the prepare's ACKs again");
        wait_prepared(id, state_.ports().at(m.port));
        break;
      case MigrationState::ready:
      case MigrationState::migrating:
        audit(m, "resumed", "controller restarted: waiting for the agents' reports");
        arm_timer(id, policy_.activation_timeout, "port never came up on the destination");
        break;
      case MigrationState::rolling_back:
        audit(m, "resumed", "controller restarted: asking the source to abort again");
        abort_unsent_.insert(id);
        arm_abort_deadline(id);
        break;
      default:
        break;  // requested: never stored; pending_approval waits as it did
    }
  }
}

}  // namespace cutover::controller
