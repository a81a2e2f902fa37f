// cutover-agent: one per hypervisor. Takes desired state from the controller (--controller, over
// the agent channel) or from a JSON file (--desired-state, re-read on SIGHUP; for debugging) and
// reconciles this host's dataplane to it, reporting each applied generation to the controller
// (ACK/NACK), in the log and in --status-file. Flags and environment are read only here.
#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <unistd.h>
#include <boost/asio.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "blocking_jobs.hpp"
#include "conntrack_carrier.hpp"
#include "control_server.hpp"
#include "controller_client.hpp"
#include "desired_state.hpp"
#include "host_facts.hpp"
#include "incoming_waits.hpp"
#include "json_codec.hpp"
#include "json_reader.hpp"
#include "libvirt/libvirt_domain_events.hpp"
#include "libvirt/libvirt_migrator.hpp"
#include "linux/linux_dataplane.hpp"
#include "logging.hpp"
#include "migration_relay.hpp"
#include "options.hpp"
#include "ovs/ovs_appctl.hpp"
#include "ovs/ovs_dataplane.hpp"
#include "preflight.hpp"
#include "status_file.hpp"
#include "storage/storage_coordinator.hpp"

using namespace cutover;
using namespace cutover::agent;

namespace {

struct AgentConfig {
  std::string controller;
  std::string token;
  std::string token_file;
  std::string host;
  std::string underlay_ip;
  std::string labels;
  std::string desired_state;
  std::string status_file;
  std::string ovs_rundir = "/run/openvswitch";
  std::string ovsdb;
  std::string openflow;
  std::string backend = "ovs";
  std::string libvirt_uri;
  std::string migration_uri;
  std::string storage = "none";
  std::string host_nqn;
  std::string bridge = "br-int";
  std::string datapath_type = "netdev";
  int64_t resync_interval_ms = 30000;
  int64_t relay_port = 4797;
  std::string control_socket = "/run/cutover/agent.sock";
  std::string log_level = "info";
  std::string log_format = "text";
};

Labels parse_labels(const std::string& text) {
  Labels labels;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ParseError("--labels", "expected k=v, got '" + item + "'");
    labels[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return labels;
}

DesiredState read_desired_state(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ParseError("--desired-state", "cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return desired_state_from_json(parse_json_text(ss.str()));
}

}  // namespace

int main(int argc, char** argv) {
  AgentConfig cfg;
  Options opts("cutover-agent",
               "Reconciles this hypervisor's overlay dataplane (Open vSwitch) to cutover's "
               "desired state.");
  opts.add("controller", &cfg.controller, "controller agent channel, ws://HOST:PORT");
  opts.add("token-file", &cfg.token_file, "file whose first line is the shared token");
  opts.add("token", &cfg.token, "shared token (prefer --token-file)");
  opts.add("host", &cfg.host, "this hypervisor's host id (default: the hostname)");
  opts.add("underlay-ip", &cfg.underlay_ip, "this hypervisor's VXLAN tunnel endpoint address");
  opts.add("labels", &cfg.labels, "host labels for placement policy, k=v,k2=v2");
  opts.add("desired-state", &cfg.desired_state,
           "JSON desired-state file to apply (re-read on SIGHUP)");
  opts.add("status-file", &cfg.status_file,
           "write {applied_generation, ok, error, ...} here after every apply");
  opts.add("backend", &cfg.backend,
           "dataplane: ovs (Open vSwitch via libopenvswitch) or linux (bridge + vxlan via libnl)");
  opts.add("libvirt-uri", &cfg.libvirt_uri,
           "watch this libvirt (e.g. qemu:///system): a port counts as up here only while its "
           "domain runs here, so a migration cuts over at the destination's resume");
  opts.add("migration-uri", &cfg.migration_uri,
           "libvirt URI other hypervisors use to live-migrate VMs here (e.g. "
           "qemu+tls://hv2/system); given, the controller drives migrations to this host");
  opts.add("storage", &cfg.storage,
           "NVMe/TCP volumes of arriving VMs: kernel (attach with the kernel's nvme-tcp via "
           "libnvme), probe (verify the path with the userspace probe) or none");
  opts.add("host-nqn", &cfg.host_nqn,
           "this host's NVMe NQN (default nqn.2014-08.dev.cutover:host:<host id>)");
  opts.add("ovs-rundir", &cfg.ovs_rundir,
           "OVS run directory: db.sock and <bridge>.mgmt are looked up here");
  opts.add("ovsdb", &cfg.ovsdb, "OVSDB remote (default: unix:<ovs-rundir>/db.sock)");
  opts.add("openflow", &cfg.openflow, "OpenFlow target (default: unix:<ovs-rundir>/<bridge>.mgmt)");
  opts.add("bridge", &cfg.bridge, "integration bridge to create and program");
  opts.add("datapath-type", &cfg.datapath_type, "datapath type for a bridge we create");
  opts.add("resync-interval-ms", &cfg.resync_interval_ms,
           "full reconcile at least this often, to heal drift");
  opts.add("control-socket", &cfg.control_socket,
           "unix socket for this host's libvirt hook (cutover-libvirt-hook: hold an incoming "
           "migration until it is prepared) and hypervisor integrations without libvirt; "
           "\"\" = none");
  opts.add("relay-port", &cfg.relay_port,
           "UDP port on the underlay address for frames a migration's source relays to its "
           "destination (those that reached the VM's tap after it stopped); 0 = off");
  opts.add("log-level", &cfg.log_level, "trace, debug, info, warn, error");
  opts.add("log-format", &cfg.log_format, "text or json");

  LogConfig log_cfg;
  ControllerClientConfig client_cfg;
  try {
    if (!opts.parse(argc, argv)) return 0;
    log_cfg.level = parse_log_level(cfg.log_level, "--log-level");
    log_cfg.format = parse_log_format(cfg.log_format, "--log-format");
    if (cfg.desired_state.empty() == cfg.controller.empty()) {
      throw ParseError("--controller", "give exactly one of --controller or --desired-state");
    }
    if (!cfg.controller.empty()) {
      parse_controller_url(cfg.controller, client_cfg);
      if (!cfg.token_file.empty()) cfg.token = read_token_file(cfg.token_file);
      if (cfg.token.empty())
        throw ParseError("--token-file", "the controller needs the shared token");
      client_cfg.token = cfg.token;
      if (cfg.host.empty()) {
        char name[256] = {};
        gethostname(name, sizeof name - 1);
        cfg.host = name;
      }
      try {
        client_cfg.self.id = HostId::parse(cfg.host);
      } catch (const ParseError& e) {
        throw ParseError("--host", e.message());
      }
      if (cfg.underlay_ip.empty()) throw ParseError("--underlay-ip", "required with --controller");
      try {
        client_cfg.self.underlay_ip = IpAddress::parse(cfg.underlay_ip);
      } catch (const ParseError& e) {
        throw ParseError("--underlay-ip", e.message());
      }
      client_cfg.self.labels = parse_labels(cfg.labels);
      client_cfg.self.backend = cfg.backend == "linux" ? Backend::linux : Backend::ovs;
      client_cfg.self.migration_uri = cfg.migration_uri;
    }
    if (cfg.backend != "ovs" && cfg.backend != "linux") {
      throw ParseError("--backend", "expected ovs or linux, got '" + cfg.backend + "'");
    }
    if (cfg.storage != "none" && cfg.storage != "kernel" && cfg.storage != "probe") {
      throw ParseError("--storage", "expected kernel, probe or none, got '" + cfg.storage + "'");
    }
    if (cfg.host_nqn.empty()) cfg.host_nqn = "nqn.2014-08.dev.cutover:host:" + cfg.host;
    if (!valid_nqn(cfg.host_nqn)) {
      throw ParseError("--host-nqn", "expected 'nqn.' and up to 223 printable characters");
    }
    if (cfg.resync_interval_ms < 100) {
      throw ParseError("--resync-interval-ms", "must be at least 100");
    }
    if (cfg.relay_port < 0 || cfg.relay_port > 65535) {
      throw ParseError("--relay-port", "must be 0 (off) to 65535");
    }
  } catch (const ParseError& e) {
    std::fprintf(stderr, "cutover-agent: %s\n", e.what());
    return 2;
  }
  setup_logging(log_cfg);
  auto log = logger("agent");

  boost::asio::io_context io;
  // Our handlers go in before the OVS thread starts, so libopenvswitch leaves them alone.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);

  OvsDataplaneConfig ovs;
  ovs.ovsdb_remote = cfg.ovsdb.empty() ? "unix:" + cfg.ovs_rundir + "/db.sock" : cfg.ovsdb;
  ovs.openflow_target =
      cfg.openflow.empty() ? "unix:" + cfg.ovs_rundir + "/" + cfg.bridge + ".mgmt" : cfg.openflow;
  ovs.reconciler.bridge = cfg.bridge;
  ovs.reconciler.datapath_type = cfg.datapath_type;
  ovs.resync_interval = std::chrono::milliseconds(cfg.resync_interval_ms);
  PreflightConfig checks{cfg.backend == "ovs" ? ovs.ovsdb_remote : "", std::nullopt, ""};
  if (!cfg.controller.empty()) checks.underlay_ip = client_cfg.self.underlay_ip;
  checks.libvirt_uri = cfg.libvirt_uri;
  if (auto problems = preflight(checks); !problems.empty()) {
    for (const auto& p : problems) log->critical("preflight: {}", p);
    return 1;
  }
  std::unique_ptr<DataplaneThread> dataplane_ptr;
  if (cfg.backend == "linux") {
    LinuxDataplaneConfig lc;
    lc.resync_interval = ovs.resync_interval;
    dataplane_ptr = std::make_unique<LinuxDataplane>(lc);
  } else {
    dataplane_ptr = std::make_unique<OvsDataplane>(ovs);
  }
  DataplaneThread& dataplane = *dataplane_ptr;

  // Storage: what this agent can do for VMs' NVMe/TCP volumes, announced with its host so the
  // controller refuses migrations that would need more (rather than failing midway).
  std::unique_ptr<NvmeFabric> fabric;
  std::unique_ptr<StorageAttacher> attacher;
  if (cfg.storage == "kernel") {
    std::string why;
    fabric = make_libnvme_fabric(why);
    if (!fabric) {
      log->critical(
          "storage: {}: NVMe/TCP volumes cannot be attached on this host; migrations of "
          "VMs with volumes to it will be refused",
          why);
    } else {
      attacher = std::make_unique<KernelAttacher>(
          *fabric, std::chrono::milliseconds(10000),
          [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); });
    }
  } else if (cfg.storage == "probe") {
    attacher = std::make_unique<ProbeAttacher>(std::chrono::milliseconds(3000));
  }
  client_cfg.self.storage = attacher ? attacher->kind() : "";
  client_cfg.self.host_nqn = cfg.storage == "none" ? "" : cfg.host_nqn;

  StatusFile status(cfg.status_file);
  ApplyReport last;
  MigrationRelayConfig relay_cfg;
  relay_cfg.port = static_cast<uint16_t>(cfg.relay_port);
  relay_cfg.forward_tunnel = cfg.backend == "linux";
  MigrationRelay relay(io, relay_cfg, [&](const std::string& port, const std::string& what) {
    if (port.empty()) {
      log->warn("relay: {}", what);
    } else {
      log->info("relay: port {}: {}", port, what);
    }
  });
  std::unique_ptr<ControllerClient> client;
  // What the core knows of this host beyond the dataplane, and the report built from it. With
  // --libvirt-uri a port is reported up only while its domain runs here.
  HostFacts facts;
  IncomingWaits waits;  // libvirt hooks holding incoming migrations
  // The newest desired state handed to the dataplane; what the parts below need of it is its
  // local slice (the ports this host programs), which costs what the change costs.
  overlay::DesiredIndex desired;
  ConntrackCarrier carrier(
      [&](int64_t zone) {
        // Name the datapath: with more than one (system and netdev), OVS wants to be told.
        return ovs_appctl(
            vswitchd_ctl_path(cfg.ovs_rundir), "dpctl/dump-conntrack",
            {cfg.datapath_type + "@ovs-" + cfg.datapath_type, "zone=" + std::to_string(zone)});
      },
      [&](const wire::Conntrack& ct) {
        log->info("carrying {} connection(s) of port {} to its destination", ct.conns.size(),
                  ct.port);
        if (client) client->conntrack(ct);
      });
  // Before any report of a pause, so the carried entries reach the controller first.
  auto carry = [&] {
    if (cfg.backend != "ovs" || desired.empty() || !client) return;
    for (const auto& e : carrier.update(desired.local(), last.ct_zones, facts.paused_here())) {
      log->warn("{}", e);
    }
  };
  // A VM stopped here for an outgoing migration's final copy, or runs again. First what the
  // pause needs at once: the relay of what its tap holds unread, and the dataplane forwarding
  // its port's frames to the destination; then the conntrack carry and the report.
  auto paused_changed = [&] {
    const auto paused = facts.paused_here();
    if (!desired.empty()) relay.update(desired.local(), last.tap_names, paused);
    dataplane.set_departed(paused);
    carry();
    if (client) client->report(facts.for_controller(last));
  };
  std::unique_ptr<StorageThread> storage;
  if (attacher) {
    storage = std::make_unique<StorageThread>(*attacher, cfg.host_nqn, [&](const StorageReport& r) {
      boost::asio::post(io, [&, r] {
        if (r == facts.storage()) return;
        for (const auto& [key, why] : r.failed) log->warn("storage: {} not ready: {}", key, why);
        log->info("storage: {} volume(s) ready here{}", r.ready.size(),
                  r.detach_failed.empty() ? "" : ", some still attached after a failed detach");
        facts.storage(r);
        if (client) client->report(facts.for_controller(last));
      });
    });
  }
  auto remember = [&](const overlay::DesiredChange& change) {
    desired.apply(change);
    const auto& local = desired.local();
    if (storage) storage->set_desired(local);
    facts.desired(local);
  };
  if (!cfg.controller.empty()) {
    client = std::make_unique<ControllerClient>(
        io, client_cfg, [&, refused = false](overlay::DesiredChange change) mutable {
          if (auto* full = std::get_if<DesiredState>(&change)) {
            refused = full->host != client_cfg.self.id;
            if (refused) {
              log->error("controller sent state for host {}, we are {}; ignored (and what follows)",
                         full->host.str(), client_cfg.self.id.str());
            }
          }
          if (refused) return;
          if (log->should_log(spdlog::level::debug)) {
            std::visit(
                [&](const auto& c) {
                  log->debug("desired state generation {} from controller", c.generation);
                },
                change);
          }
          remember(change);
          dataplane.set_desired(std::move(change));
        });
  }
  dataplane.on_announce([&](const AnnounceRound& r) {
    boost::asio::post(io, [&, r] {
      if (r.failed) {
        log->warn("announce {} round {}/{}: {} frames sent, {} failed: {}", r.port, r.round + 1,
                  r.rounds, r.frames, r.failed, r.error);
      } else {
        log->info("announce {} round {}/{}: {} frames sent", r.port, r.round + 1, r.rounds,
                  r.frames);
      }
      if (client) {
        client->announced(wire::Announced{
            r.port, static_cast<int64_t>(r.round), static_cast<int64_t>(r.rounds),
            static_cast<int64_t>(r.frames), static_cast<int64_t>(r.failed), r.error});
      }
    });
  });
  dataplane.start([&](const ApplyReport& report) {
    boost::asio::post(io, [&, report] {
      if (!desired.empty()) relay.update(desired.local(), report.tap_names, facts.paused_here());
      const bool changed = report.ok != last.ok || report.generation != last.generation ||
                           report.error != last.error || report.waiting_for != last.waiting_for ||
                           report.awaiting_taps != last.awaiting_taps ||
                           report.added + report.modified + report.removed > 0;
      last = report;
      status.write(report);
      carry();
      if (client) client->report(facts.for_controller(report));
      if (!changed) return;
      if (report.rejected) {
        log->error("generation {} rejected, nothing changed: {}{}{}", report.generation,
                   report.error_field, report.error_field.empty() ? "" : ": ", report.error);
      } else if (!report.ok) {
        log->warn("generation {} not applied (will retry): {}", report.generation, report.error);
      } else if (!report.applied()) {
        log->info(
            "generation {} partially applied (+{} ~{} -{} objects in {:.1f} ms), not "
            "acknowledged yet: waiting for {}",
            report.generation, report.added, report.modified, report.removed, report.apply_ms,
            fmt::join(report.waiting_for, ", "));
      } else {
        log->info("generation {} applied: +{} ~{} -{} objects in {:.1f} ms{}{}", report.generation,
                  report.added, report.modified, report.removed, report.apply_ms,
                  report.awaiting_taps.empty() ? "" : "; VM taps not here yet: ",
                  fmt::join(report.awaiting_taps, ", "));
      }
    });
  });

  auto load = [&] {
    if (cfg.desired_state.empty()) return;
    try {
      auto state = read_desired_state(cfg.desired_state);
      log->info("desired state generation {} from {}: {} networks, {} ports", state.generation,
                cfg.desired_state, state.networks.size(), state.ports.size());
      remember(state);
      dataplane.set_desired(std::move(state));
    } catch (const ParseError& e) {
      log->error("desired state {} rejected, keeping the previous one: {}", cfg.desired_state,
                 e.what());
    }
  };
  load();
  // libvirt migrations and their aborts block for seconds: bounded, joined before exit.
  BlockingJobs libvirt_jobs(8);
  if (client) {
    client->on_migrate([&](const wire::Migrate& m) {
      if (cfg.libvirt_uri.empty()) {
        client->migration_failed(m.migration, "this agent has no --libvirt-uri");
        return;
      }
      log->info("migration {}: live-migrating the VM with interface {} to {}", m.migration,
                m.iface_id, m.destination_uri);
      facts.libvirt_call(m.migration, true);
      const bool started = libvirt_jobs.submit([&, m] {
        auto error = libvirt_migrate(cfg.libvirt_uri, m.iface_id, m.destination_uri);
        boost::asio::post(io, [&, m, error] {
          facts.libvirt_call(m.migration, false);
          if (error.empty()) {
            log->info("migration {}: libvirt finished", m.migration);
          } else {
            log->error("migration {}: {}", m.migration, error);
            if (client) client->migration_failed(m.migration, error);
          }
        });
      });
      if (!started) {
        facts.libvirt_call(m.migration, false);
        client->migration_failed(m.migration, "this agent already runs its limit of libvirt calls");
      }
    });
    client->on_abort([&](const wire::Abort& a) {
      if (cfg.libvirt_uri.empty()) {
        client->aborted(
            {a.migration, wire::Aborted::Where::unknown, "this agent has no --libvirt-uri"});
        return;
      }
      log->warn("migration {}: aborting the live migration of the VM with interface {}",
                a.migration, a.iface_id);
      const bool started = libvirt_jobs.submit([&, a] {
        auto answer = libvirt_abort(cfg.libvirt_uri, a.migration, a.iface_id,
                                    std::chrono::milliseconds(10000));
        boost::asio::post(io, [&, answer] {
          log->info("migration {}: after the abort the VM is {}: {}", answer.migration,
                    wire::to_string(answer.where), answer.detail);
          if (client) client->aborted(answer);
        });
      });
      if (!started) {
        client->aborted({a.migration, wire::Aborted::Where::unknown,
                         "this agent already runs its limit of libvirt calls"});
      }
    });
    client->start();
  }
  // The control socket: the libvirt hook holding an incoming migration until the controller has
  // prepared it, and hypervisor integrations without libvirt reporting a VM's pause.
  boost::asio::steady_timer waits_timer(io);
  std::function<void()> arm_waits = [&] {
    auto next = waits.next_deadline();
    if (!next) return;
    waits_timer.expires_at(*next);
    waits_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      waits.expire(IncomingWaits::Clock::now());
      arm_waits();
    });
  };
  if (client) {
    client->on_prepared([&](const wire::Prepared& p) { waits.resolved(p); });
  }
  std::unique_ptr<ControlServer> control;
  if (!cfg.control_socket.empty()) {
    try {
      control = std::make_unique<ControlServer>(
          io, cfg.control_socket, [&](const ControlRequest& req, ControlServer::Answer answer) {
            if (req.op == "vm_state") {
              facts.vm_state(req.iface_ids, req.state);
              log->info("control: VM interface(s) {}: {}", fmt::join(req.iface_ids, ", "),
                        req.state);
              paused_changed();
              answer({{"ok", true}});
              return;
            }
            if (!client) {
              answer({{"ok", false}, {"error", "this agent has no controller (--desired-state)"}});
              return;
            }
            const auto started = IncomingWaits::Clock::now();
            log->info(
                "control: domain '{}' is arriving here ({}); holding it up to {} ms for the "
                "controller to prepare it",
                req.domain, fmt::join(req.iface_ids, ", "), req.timeout_ms);
            waits.add(req.iface_ids, started + std::chrono::milliseconds(req.timeout_ms),
                      [&, req, started, answer](const IncomingWaits::Result& r) {
                        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                            IncomingWaits::Clock::now() - started)
                                            .count();
                        if (!r.unanswered.empty()) {
                          log->warn(
                              "control: gave up waiting for the prepare of domain '{}' "
                              "after {} ms (no word on {}); libvirt goes on without it",
                              req.domain, ms, fmt::join(r.unanswered, ", "));
                        } else {
                          log->info(
                              "control: domain '{}' prepared in {} ms ({} ready, {} not "
                              "cutover's to prepare)",
                              req.domain, ms, r.prepared.size(), r.refused.size());
                        }
                        answer({{"ok", r.unanswered.empty()},
                                {"prepared", r.prepared},
                                {"refused", r.refused},
                                {"unanswered", r.unanswered},
                                {"waited_ms", ms}});
                      });
            client->incoming(req.iface_ids);
            arm_waits();
          });
      log->info("control socket {}", cfg.control_socket);
    } catch (const std::exception& e) {
      log->warn("{}; the libvirt hook cannot reach this agent", e.what());
    }
  }
  std::unique_ptr<LibvirtDomainEvents> domains;
  if (!cfg.libvirt_uri.empty()) {
    facts.watching_libvirt();
    domains = std::make_unique<LibvirtDomainEvents>(
        cfg.libvirt_uri, [&](LibvirtDomainEvents::DomainsNow now) {
          boost::asio::post(io, [&, now = std::move(now)] {
            log->info("libvirt: {} interface(s) running here, {} paused for migration",
                      now.running.size(), now.paused.size());
            facts.libvirt(now);
            paused_changed();
          });
        });
    domains->start();
  }

  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          if (!cfg.desired_state.empty()) log->info("SIGHUP: re-reading {}", cfg.desired_state);
          load();
          if (client) client->reconnect();
          signals.async_wait(on_signal);
          return;
        }
        log->info("signal {}: stopping", sig);
        io.stop();
      };
  signals.async_wait(on_signal);
  const std::string source = cfg.controller.empty() ? cfg.desired_state : cfg.controller;
  if (cfg.backend == "linux") {
    log->info("cutover-agent started (Linux bridge + VXLAN via netlink, desired state from {})",
              source);
  } else {
    log->info("cutover-agent started (OVSDB {}, OpenFlow {}, desired state from {})",
              ovs.ovsdb_remote, ovs.openflow_target, source);
  }
  io.run();
  if (domains) domains->stop();
  if (client) client->stop();
  dataplane.stop();
  return 0;
}
