// cutover-agent: one per hypervisor. Takes desired state from a JSON file (--desired-state,
// re-read on SIGHUP) and reconciles this host's dataplane to it, reporting each applied
// generation in the log and in --status-file. Flags and environment are read only here.
#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "desired_state.hpp"
#include "json_reader.hpp"
#include "logging.hpp"
#include "options.hpp"
#include "ovs/ovs_dataplane.hpp"
#include "status_file.hpp"

using namespace cutover;
using namespace cutover::agent;

namespace {

struct AgentConfig {
  std::string desired_state;
  std::string status_file;
  std::string ovs_rundir = "/run/openvswitch";
  std::string ovsdb;
  std::string openflow;
  std::string bridge = "br-int";
  std::string datapath_type = "netdev";
  int64_t resync_interval_ms = 30000;
  std::string log_level = "info";
  std::string log_format = "text";
};

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
  opts.add("desired-state", &cfg.desired_state,
           "JSON desired-state file to apply (re-read on SIGHUP)");
  opts.add("status-file", &cfg.status_file,
           "write {applied_generation, ok, error, ...} here after every apply");
  opts.add("ovs-rundir", &cfg.ovs_rundir,
           "OVS run directory: db.sock and <bridge>.mgmt are looked up here");
  opts.add("ovsdb", &cfg.ovsdb, "OVSDB remote (default: unix:<ovs-rundir>/db.sock)");
  opts.add("openflow", &cfg.openflow, "OpenFlow target (default: unix:<ovs-rundir>/<bridge>.mgmt)");
  opts.add("bridge", &cfg.bridge, "integration bridge to create and program");
  opts.add("datapath-type", &cfg.datapath_type, "datapath type for a bridge we create");
  opts.add("resync-interval-ms", &cfg.resync_interval_ms,
           "full reconcile at least this often, to heal drift");
  opts.add("log-level", &cfg.log_level, "trace, debug, info, warn, error");
  opts.add("log-format", &cfg.log_format, "text or json");

  LogConfig log_cfg;
  try {
    if (!opts.parse(argc, argv)) return 0;
    log_cfg.level = parse_log_level(cfg.log_level, "--log-level");
    log_cfg.format = parse_log_format(cfg.log_format, "--log-format");
    if (cfg.desired_state.empty()) {
      throw ParseError("--desired-state", "required (the controller channel is not enabled)");
    }
    if (cfg.resync_interval_ms < 100) {
      throw ParseError("--resync-interval-ms", "must be at least 100");
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
  OvsDataplane dataplane(ovs);

  StatusFile status(cfg.status_file);
  ApplyReport last;
  dataplane.start([&](const ApplyReport& report) {
    boost::asio::post(io, [&, report] {
      const bool changed = report.ok != last.ok || report.generation != last.generation ||
                           report.error != last.error || report.waiting_for != last.waiting_for ||
                           report.added + report.modified + report.removed > 0;
      last = report;
      status.write(report);
      if (!changed) return;
      if (report.rejected) {
        log->error("generation {} rejected, nothing changed: {}{}{}", report.generation,
                   report.error_field, report.error_field.empty() ? "" : ": ", report.error);
      } else if (!report.ok) {
        log->warn("generation {} not applied (will retry): {}", report.generation, report.error);
      } else {
        log->info("generation {} applied: +{} ~{} -{} flows in {:.1f} ms{}{}", report.generation,
                  report.added, report.modified, report.removed, report.apply_ms,
                  report.waiting_for.empty() ? "" : "; waiting for ",
                  fmt::join(report.waiting_for, ", "));
      }
    });
  });

  auto load = [&] {
    try {
      auto state = read_desired_state(cfg.desired_state);
      log->info("desired state generation {} from {}: {} networks, {} ports", state.generation,
                cfg.desired_state, state.networks.size(), state.ports.size());
      dataplane.set_desired(std::move(state));
    } catch (const ParseError& e) {
      log->error("desired state {} rejected, keeping the previous one: {}", cfg.desired_state,
                 e.what());
    }
  };
  load();

  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          log->info("SIGHUP: re-reading {}", cfg.desired_state);
          load();
          signals.async_wait(on_signal);
          return;
        }
        log->info("signal {}: stopping", sig);
        io.stop();
      };
  signals.async_wait(on_signal);
  log->info("cutover-agent started (OVSDB {}, OpenFlow {})", ovs.ovsdb_remote, ovs.openflow_target);
  io.run();
  dataplane.stop();
  return 0;
}
