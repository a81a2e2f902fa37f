// Agent: the agent core's reactions to each of its inputs (see agent.hpp).
#include "agent.hpp"

#include <boost/asio/post.hpp>
#include <fstream>
#include <sstream>

#include "json_codec.hpp"
#include "json_reader.hpp"
#include "logging.hpp"

namespace cutover::agent {

namespace {

DesiredState read_desired_state(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ParseError("--desired-state", "cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return desired_state_from_json(parse_json_text(ss.str()));
}

}  // namespace

Agent::Agent(boost::asio::io_context& io, AgentSettings settings, Dataplane& dataplane,
             ConntrackCarrier::DumpFn dump_conntrack, LibvirtCalls libvirt)
    : io_(io),
      settings_(std::move(settings)),
      dataplane_(dataplane),
      libvirt_(std::move(libvirt)),
      status_(settings_.status_file),
      relay_(io, settings_.relay,
             [](const std::string& port, const std::string& what) {
               if (port.empty()) {
                 logger("agent")->warn("relay: {}", what);
               } else {
                 logger("agent")->info("relay: port {}: {}", port, what);
               }
             }),
      carrier_(std::move(dump_conntrack),
               [this](const wire::Conntrack& ct) {
                 logger("agent")->info("carrying {} connection(s) of port {} to its destination",
                                       ct.conns.size(), ct.port);
                 if (link_) link_->conntrack(ct);
               }),
      waits_timer_(io),
      libvirt_jobs_(settings_.max_libvirt_calls) {}

Agent::~Agent() = default;

void Agent::remember(const overlay::DesiredChange& change) {
  desired_.apply(change);
  const auto& local = desired_.local();
  if (storage_) storage_->set_desired(local);
  facts_.desired(local);
}

void Agent::on_desired(overlay::DesiredChange change) {
  auto log = logger("agent");
  if (auto* full = std::get_if<DesiredState>(&change); full && settings_.self) {
    refused_ = full->host != *settings_.self;
    if (refused_) {
      log->error("controller sent state for host {}, we are {}; ignored (and what follows)",
                 full->host.str(), settings_.self->str());
    }
  }
  if (refused_) return;
  if (log->should_log(spdlog::level::debug)) {
    std::visit(
        [&](const auto& c) {
          log->debug("desired state generation {} from controller", c.generation);
        },
        change);
  }
  remember(change);
  dataplane_.set_desired(std::move(change));
}

void Agent::reload() {
  if (settings_.desired_state_file.empty()) return;
  auto log = logger("agent");
  try {
    auto state = read_desired_state(settings_.desired_state_file);
    log->info("desired state generation {} from {}: {} networks, {} ports", state.generation,
              settings_.desired_state_file, state.networks.size(), state.ports.size());
    remember(state);
    dataplane_.set_desired(std::move(state));
  } catch (const ParseError& e) {
    log->error("desired state {} rejected, keeping the previous one: {}",
               settings_.desired_state_file, e.what());
  }
}

void Agent::send_report() {
  if (link_) link_->report(facts_.for_controller(last_));
}

// Before any report of a pause, so that the carried entries reach the controller first.
void Agent::carry() {
  if (!settings_.carry_conntrack || desired_.empty() || !link_) return;
  for (const auto& e : carrier_.update(desired_.local(), last_.ct_zones, facts_.paused_here())) {
    logger("agent")->warn("{}", e);
  }
}

// A VM stopped here for an outgoing migration's final copy, or runs again. First what the pause
// needs at once: the relay of what its tap holds unread, and the dataplane forwarding its port's
// frames to the destination; then the conntrack carry and the report.
void Agent::paused_changed() {
  const auto paused = facts_.paused_here();
  if (!desired_.empty()) relay_.update(desired_.local(), last_.tap_names, paused);
  dataplane_.set_departed(paused);
  carry();
  send_report();
}

void Agent::on_applied(const ApplyReport& report) {
  if (!desired_.empty()) relay_.update(desired_.local(), report.tap_names, facts_.paused_here());
  const bool changed = report.ok != last_.ok || report.generation != last_.generation ||
                       report.error != last_.error || report.waiting_for != last_.waiting_for ||
                       report.awaiting_taps != last_.awaiting_taps ||
                       report.added + report.modified + report.removed > 0;
  last_ = report;
  if (metrics_) metrics_->applied(report, report.rejected && link_);
  status_.write(report);
  carry();
  send_report();
  if (!changed) return;
  auto log = logger("agent");
  if (report.rejected) {
    log->error("generation {} rejected, nothing changed: {}{}{}", report.generation,
               report.error_field, report.error_field.empty() ? "" : ": ", report.error);
  } else if (!report.ok) {
    log->warn("generation {} not applied (will retry): {}", report.generation, report.error);
  } else if (!report.applied()) {
    log->info(
        "generation {} partially applied (+{} ~{} -{} objects in {:.1f} ms), not acknowledged "
        "yet: waiting for {}",
        report.generation, report.added, report.modified, report.removed, report.apply_ms,
        fmt::join(report.waiting_for, ", "));
  } else {
    log->info("generation {} applied: +{} ~{} -{} objects in {:.1f} ms{}{}", report.generation,
              report.added, report.modified, report.removed, report.apply_ms,
              report.awaiting_taps.empty() ? "" : "; VM taps not here yet: ",
              fmt::join(report.awaiting_taps, ", "));
  }
}

void Agent::on_announced(const AnnounceRound& r) {
  if (metrics_) metrics_->announced(r);
  auto log = logger("agent");
  if (r.failed) {
    log->warn("announce {} round {}/{}: {} frames sent, {} failed: {}", r.port, r.round + 1,
              r.rounds, r.frames, r.failed, r.error);
  } else {
    log->info("announce {} round {}/{}: {} frames sent", r.port, r.round + 1, r.rounds, r.frames);
  }
  if (link_) {
    link_->announced(wire::Announced{r.port, static_cast<int64_t>(r.round),
                                     static_cast<int64_t>(r.rounds), static_cast<int64_t>(r.frames),
                                     static_cast<int64_t>(r.failed), r.error});
  }
}

void Agent::on_storage(const StorageReport& r) {
  if (r == facts_.storage()) return;
  auto log = logger("agent");
  for (const auto& [key, why] : r.failed) log->warn("storage: {} not ready: {}", key, why);
  log->info("storage: {} volume(s) ready here{}", r.ready.size(),
            r.detach_failed.empty() ? "" : ", some still attached after a failed detach");
  facts_.storage(r);
  send_report();
}

void Agent::on_domains(LibvirtDomainEvents::DomainsNow now) {
  logger("agent")->info("libvirt: {} interface(s) running here, {} paused for migration",
                        now.running.size(), now.paused.size());
  facts_.libvirt(std::move(now));
  paused_changed();
}

void Agent::on_migrate(const wire::Migrate& m) {
  auto log = logger("agent");
  if (!link_) return;
  if (!libvirt_.migrate) {
    link_->migration_failed(m.migration, "this agent has no --libvirt-uri");
    return;
  }
  log->info("migration {}: live-migrating the VM with interface {} to {}", m.migration, m.iface_id,
            m.destination_uri);
  facts_.libvirt_call(m.migration, true);
  const bool started = libvirt_jobs_.submit([this, m] {
    auto error = libvirt_.migrate(m.iface_id, m.destination_uri, m.libvirt);
    boost::asio::post(io_, [this, m, error] {
      facts_.libvirt_call(m.migration, false);
      if (error.empty()) {
        logger("agent")->info("migration {}: libvirt finished", m.migration);
      } else {
        logger("agent")->error("migration {}: {}", m.migration, error);
        if (link_) link_->migration_failed(m.migration, error);
      }
    });
  });
  if (!started) {
    facts_.libvirt_call(m.migration, false);
    link_->migration_failed(m.migration, "this agent already runs its limit of libvirt calls");
  }
}

void Agent::on_abort(const wire::Abort& a) {
  if (!link_) return;
  if (!libvirt_.abort) {
    link_->aborted({a.migration, wire::Aborted::Where::unknown, "this agent has no --libvirt-uri"});
    return;
  }
  logger("agent")->warn("migration {}: aborting the live migration of the VM with interface {}",
                        a.migration, a.iface_id);
  const bool started = libvirt_jobs_.submit([this, a] {
    auto answer = libvirt_.abort(a.migration, a.iface_id);
    boost::asio::post(io_, [this, answer] {
      logger("agent")->info("migration {}: after the abort the VM is {}: {}", answer.migration,
                            wire::to_string(answer.where), answer.detail);
      if (link_) link_->aborted(answer);
    });
  });
  if (!started) {
    link_->aborted({a.migration, wire::Aborted::Where::unknown,
                    "this agent already runs its limit of libvirt calls"});
  }
}

void Agent::arm_waits() {
  auto next = waits_.next_deadline();
  if (!next) return;
  waits_timer_.expires_at(*next);
  waits_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    waits_.expire(IncomingWaits::Clock::now());
    arm_waits();
  });
}

// The control socket: a hypervisor integration without libvirt reporting a VM's state, and the
// libvirt hook holding an incoming migration until the controller has prepared it.
void Agent::on_control(const ControlRequest& req, Answer answer) {
  auto log = logger("agent");
  if (req.op == "vm_state") {
    facts_.vm_state(req.iface_ids, req.state);
    log->info("control: VM interface(s) {}: {}", fmt::join(req.iface_ids, ", "), req.state);
    paused_changed();
    answer({{"ok", true}});
    return;
  }
  if (!link_) {
    answer({{"ok", false}, {"error", "this agent has no controller (--desired-state)"}});
    return;
  }
  const auto started = IncomingWaits::Clock::now();
  log->info(
      "control: domain '{}' is arriving here ({}); holding it up to {} ms for the controller to "
      "prepare it",
      req.domain, fmt::join(req.iface_ids, ", "), req.timeout_ms);
  waits_.add(req.iface_ids, started + std::chrono::milliseconds(req.timeout_ms),
             [req, started, answer](const IncomingWaits::Result& r) {
               const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   IncomingWaits::Clock::now() - started)
                                   .count();
               if (!r.unanswered.empty()) {
                 logger("agent")->warn(
                     "control: gave up waiting for the prepare of domain '{}' after {} ms (no "
                     "word on {}); libvirt goes on without it",
                     req.domain, ms, fmt::join(r.unanswered, ", "));
               } else {
                 logger("agent")->info(
                     "control: domain '{}' prepared in {} ms ({} ready, {} not cutover's to "
                     "prepare)",
                     req.domain, ms, r.prepared.size(), r.refused.size());
               }
               answer({{"ok", r.unanswered.empty()},
                       {"prepared", r.prepared},
                       {"refused", r.refused},
                       {"unanswered", r.unanswered},
                       {"waited_ms", ms}});
             });
  link_->incoming(req.iface_ids);
  arm_waits();
}

}  // namespace cutover::agent
