// cutover-agent: one per hypervisor. Takes desired state from the controller (--controller, over
// the agent channel) or from a JSON file (--desired-state, re-read on SIGHUP; for debugging) and
// reconciles this host's dataplane to it, reporting each applied generation to the controller
// (ACK/NACK), in the log and in --status-file. Flags and environment are read only here; this
// file builds the backends and wires their events into the Agent (agent.hpp), which decides.
#include <cstdlib>
#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <unistd.h>
#include <boost/asio.hpp>
#include <csignal>
#include <cstdio>
#include <optional>
#include <sstream>
#include <thread>

#include "agent.hpp"
#include "control_server.hpp"
#include "controller_client.hpp"
#include "json_codec.hpp"
#include "json_reader.hpp"
#include "libvirt/libvirt_domain_events.hpp"
#include "libvirt/libvirt_migrator.hpp"
#include "linux/linux_dataplane.hpp"
#include "logging.hpp"
#include "metrics_server.hpp"
#include "options.hpp"
#include "ovs/ovs_appctl.hpp"
#include "ovs/ovs_dataplane.hpp"
#include "preflight.hpp"
#include "storage/storage_coordinator.hpp"
#include "tls.hpp"

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
  bool migrate_tls = false;
  bool migrate_no_persist = false;
  bool migrate_auto_converge = false;
  bool migrate_postcopy = false;
  bool migrate_compressed = false;
  int64_t migrate_bandwidth_mib_s = 0;
  TlsFiles tls;
  std::string storage = "none";
  std::string host_nqn;
  std::string bridge = "br-int";
  std::string datapath_type = "netdev";
  int64_t resync_interval_ms = 30000;
  int64_t relay_port = 4797;
  std::string control_socket = "/run/cutover/agent.sock";
  std::string metrics_listen;
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

}  // namespace

int main(int argc, char** argv) {
  AgentConfig cfg;
  Options opts("cutover-agent",
               "Reconciles this hypervisor's overlay dataplane (Open vSwitch) to cutover's "
               "desired state.");
  opts.add("controller", &cfg.controller,
           "controller agent channel, ws://HOST:PORT or wss://HOST:PORT (TLS: see --tls-cert); "
           "highly available controllers: every one, comma-separated (the leader takes the "
           "agent, followers send it on)");
  opts.add("tls-cert", &cfg.tls.cert,
           "with wss://: this host's PEM certificate, naming its host id (cutoverctl pki issue "
           "HOST); the controller knows the agent by it");
  opts.add("tls-key", &cfg.tls.key, "with wss://: the PEM key of --tls-cert");
  opts.add("tls-ca", &cfg.tls.ca,
           "with wss://: the PEM CA that signed the controller's certificate");
  opts.add("token-file", &cfg.token_file, "file whose first line is the shared token");
  opts.add_secret("token", &cfg.token, "shared token (prefer --token-file)");
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
  opts.add("migrate-tls", &cfg.migrate_tls,
           "live-migrate VMs over libvirt's TLS (VIR_MIGRATE_TLS); every hypervisor's libvirt "
           "needs its migration certificates (docs/install.md)");
  opts.add("migrate-no-persist", &cfg.migrate_no_persist,
           "live migrations this host starts leave the domain's definition where it was "
           "(default: defined on the destination, undefined here; a request may say otherwise)");
  opts.add("migrate-auto-converge", &cfg.migrate_auto_converge,
           "live migrations default to libvirt's auto-converge (vCPUs throttled until pre-copy "
           "converges)");
  opts.add("migrate-postcopy", &cfg.migrate_postcopy,
           "live migrations default to post-copy: the VM switches to the destination after one "
           "pass over its memory; the pages it dirtied follow in the background and on demand");
  opts.add("migrate-compressed", &cfg.migrate_compressed,
           "live migrations default to compressed memory pages (CPU on both hosts)");
  opts.add("migrate-bandwidth-mib-s", &cfg.migrate_bandwidth_mib_s,
           "live migrations default to this bandwidth cap in MiB/s (0: libvirt's own)");
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
  opts.add("metrics-listen", &cfg.metrics_listen,
           "serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9478; port 0 = "
           "any free one, logged); \"\" = off");
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
  std::optional<boost::asio::ip::tcp::endpoint> metrics_at;
  try {
    if (!opts.parse(argc, argv)) return 0;
    log_cfg.level = parse_log_level(cfg.log_level, "--log-level");
    log_cfg.format = parse_log_format(cfg.log_format, "--log-format");
    log_cfg.journal = stderr_is_journal(std::getenv("JOURNAL_STREAM"));
    if (cfg.desired_state.empty() == cfg.controller.empty()) {
      throw ParseError("--controller", "give exactly one of --controller or --desired-state");
    }
    if (!cfg.controller.empty()) {
      parse_controller_url(cfg.controller, client_cfg);
      if (!cfg.token_file.empty()) cfg.token = read_token_file(cfg.token_file);
      if (client_cfg.tls) {
        if (cfg.tls.cert.empty() || cfg.tls.key.empty() || cfg.tls.ca.empty()) {
          throw ParseError("--tls-cert",
                           "wss:// needs this host's certificate and key and the CA (--tls-cert, "
                           "--tls-key, --tls-ca)");
        }
        try {
          client_cfg.tls_context = make_client_tls(cfg.tls);
        } catch (const std::exception& e) {
          throw ParseError("--tls-cert", e.what());
        }
      } else if (cfg.tls.any()) {
        throw ParseError("--tls-cert", "TLS files given but --controller is not wss://");
      } else if (cfg.token.empty()) {
        throw ParseError("--token-file", "the controller needs the shared token");
      }
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
    if (cfg.migrate_tls && cfg.libvirt_uri.empty()) {
      throw ParseError("--migrate-tls",
                       "needs --libvirt-uri (the agent runs no migration without)");
    }
    if (cfg.migrate_bandwidth_mib_s < 0 || cfg.migrate_bandwidth_mib_s > 1000000) {
      throw ParseError("--migrate-bandwidth-mib-s", "must be 0 (libvirt's own) to 1000000");
    }
    if (cfg.host_nqn.empty()) cfg.host_nqn = "nqn.2014-08.dev.cutover:host:" + cfg.host;
    if (!valid_nqn(cfg.host_nqn)) {
      throw ParseError("--host-nqn", "expected 'nqn.' and up to 223 printable characters");
    }
    if (!cfg.metrics_listen.empty())
      metrics_at = parse_listen(cfg.metrics_listen, "--metrics-listen");
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

  AgentSettings settings;
  if (!cfg.controller.empty()) settings.self = client_cfg.self.id;
  settings.desired_state_file = cfg.desired_state;
  settings.status_file = cfg.status_file;
  settings.relay.port = static_cast<uint16_t>(cfg.relay_port);
  settings.relay.forward_tunnel = cfg.backend == "linux";
  LibvirtCalls libvirt;
  if (!cfg.libvirt_uri.empty()) {
    MigrateOptions defaults;
    defaults.tls = cfg.migrate_tls;
    defaults.persist = !cfg.migrate_no_persist;
    defaults.auto_converge = cfg.migrate_auto_converge;
    defaults.compressed = cfg.migrate_compressed;
    defaults.postcopy = cfg.migrate_postcopy;
    defaults.bandwidth_mib_s = cfg.migrate_bandwidth_mib_s;
    libvirt.migrate = [uri = cfg.libvirt_uri, defaults](const std::string& iface,
                                                        const std::string& dest,
                                                        const LibvirtMigrationSettings& asked) {
      return libvirt_migrate(uri, iface, dest, defaults.with(asked));
    };
    libvirt.abort = [uri = cfg.libvirt_uri](const std::string& migration,
                                            const std::string& iface) {
      return libvirt_abort(uri, migration, iface, std::chrono::milliseconds(10000));
    };
  }
  Agent agent(
      io, settings, dataplane,
      [&](int64_t zone) {
        if (cfg.backend == "linux") return linux_conntrack(zone);
        // Name the datapath: with more than one (system and netdev), OVS wants to be told.
        return overlay::parse_conntrack_dump(ovs_appctl(
            vswitchd_ctl_path(cfg.ovs_rundir), "dpctl/dump-conntrack",
            {cfg.datapath_type + "@ovs-" + cfg.datapath_type, "zone=" + std::to_string(zone)}));
      },
      libvirt);
  std::unique_ptr<StorageThread> storage;
  if (attacher) {
    storage = std::make_unique<StorageThread>(*attacher, cfg.host_nqn, [&](const StorageReport& r) {
      boost::asio::post(io, [&agent, r] { agent.on_storage(r); });
    });
    agent.set_storage(storage.get());
  }
  std::unique_ptr<ControllerClient> client;
  if (!cfg.controller.empty()) {
    client = std::make_unique<ControllerClient>(io, client_cfg, [&](overlay::DesiredChange change) {
      agent.on_desired(std::move(change));
    });
    agent.set_controller(client.get());
  }
  dataplane.on_announce([&](const AnnounceRound& r) {
    boost::asio::post(io, [&agent, r] { agent.on_announced(r); });
  });
  dataplane.start([&](const ApplyReport& report) {
    boost::asio::post(io, [&agent, report] { agent.on_applied(report); });
  });
  agent.reload();  // file mode: the first state
  if (client) {
    client->on_migrate([&](const wire::Migrate& m) { agent.on_migrate(m); });
    client->on_abort([&](const wire::Abort& a) { agent.on_abort(a); });
    client->on_prepared([&](const wire::Prepared& p) { agent.on_prepared(p); });
    client->start();
  }
  AgentMetrics metrics(cfg.backend);
  agent.set_metrics(&metrics);
  if (client) metrics.watch(AgentMetrics::Peer::controller);
  if (!cfg.libvirt_uri.empty()) metrics.watch(AgentMetrics::Peer::libvirt);
  std::unique_ptr<MetricsServer> metrics_server;
  std::unique_ptr<LibvirtDomainEvents> domains;
  if (metrics_at) {
    try {
      metrics_server = std::make_unique<MetricsServer>(io, *metrics_at, [&] {
        // Connection states are polled here: each lives on its own thread.
        if (client) metrics.set_connected(AgentMetrics::Peer::controller, client->connected());
        if (domains) metrics.set_connected(AgentMetrics::Peer::libvirt, domains->connected());
        if (const int up = dataplane.backend_connected(); up >= 0) {
          metrics.set_connected(AgentMetrics::Peer::ovsdb, up == 1);
        }
        return metrics.render();
      });
      log->info("metrics on http://{}:{}/metrics", metrics_at->address().to_string(),
                metrics_server->port());
    } catch (const std::exception& e) {
      log->critical("{}", e.what());
      return 1;
    }
  }
  std::unique_ptr<ControlServer> control;
  if (!cfg.control_socket.empty()) {
    try {
      control = std::make_unique<ControlServer>(
          io, cfg.control_socket, [&](const ControlRequest& req, ControlServer::Answer answer) {
            agent.on_control(req, std::move(answer));
          });
      log->info("control socket {}", cfg.control_socket);
    } catch (const std::exception& e) {
      log->warn("{}; the libvirt hook cannot reach this agent", e.what());
    }
  }
  if (!cfg.libvirt_uri.empty()) {
    agent.watching_libvirt();
    domains = std::make_unique<LibvirtDomainEvents>(
        cfg.libvirt_uri, [&](LibvirtDomainEvents::DomainsNow now) {
          boost::asio::post(io, [&agent, now = std::move(now)] { agent.on_domains(now); });
        });
    domains->start();
  }

  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          if (!cfg.desired_state.empty()) log->info("SIGHUP: re-reading {}", cfg.desired_state);
          agent.reload();
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
