// bench_agent: one agent's dataplane path against a real OVS bridge (libopenvswitch IDL and
// OpenFlow, as the agent's OVS thread runs them), with N ports on 100 networks spread over 50
// remote hosts. Installs the state, then measures per change - one remote port moving to another
// host (5 times), one network added, a full resync (the switch read back and compared) - the
// wall time from the change's arrival (its wire text) to the barrier and the process CPU, and
// the process RSS. --mode delta is the agent as it is (decode the delta, apply it to the core's
// and the dataplane's DesiredIndex, one incremental pass); --mode whole is the algorithm the agent
// had before (each change a whole state: copied three times, topology and translation of every
// port, every installed flow dumped and every desired flow parsed before the diff). Prints JSON;
// never passes or fails. scripts/bench-agent runs it.
#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "desired_index.hpp"
#include "ovs_flow_switch.hpp"
#include "ovs_reconciler.hpp"
#include "ovs_shim.h"
#include "ovsdb_idl_switch.hpp"
#include "topology.hpp"
#include "wire.hpp"

using namespace cutover;
using namespace cutover::agent;
using Clock = std::chrono::steady_clock;

namespace {

double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
}

constexpr int kNetworks = 100;
constexpr int kRemoteHosts = 50;

DesiredState make_state(int ports) {
  DesiredState s;
  s.generation = 1;
  s.host = HostId::parse("hv0");
  for (int h = 0; h <= kRemoteHosts; ++h) {
    Host host;
    host.id = HostId::parse("hv" + std::to_string(h));
    host.underlay_ip =
        IpAddress::parse("10.200." + std::to_string(h / 250) + "." + std::to_string(1 + h % 250));
    s.hosts.push_back(host);
  }
  for (int n = 0; n < kNetworks; ++n) {
    Network net;
    net.id = NetworkId::parse("net" + std::to_string(n));
    net.vni = Vni::from(1000 + n);
    s.networks.push_back(net);
  }
  for (int i = 0; i < ports; ++i) {
    Port p;
    p.id = PortId::parse("p" + std::to_string(i));
    p.iface_id = p.id.str();
    p.network = NetworkId::parse("net" + std::to_string(i % kNetworks));
    char mac[32];
    std::snprintf(mac, sizeof mac, "52:54:%02x:%02x:%02x:%02x", (i >> 24) & 255, (i >> 16) & 255,
                  (i >> 8) & 255, i & 255);
    p.mac = MacAddress::parse(mac);
    p.ips = {IpAddress::parse("10." + std::to_string(i / 65536 % 256) + "." +
                              std::to_string(i / 256 % 256) + "." + std::to_string(i % 256))};
    p.host = HostId::parse("hv" + std::to_string(1 + i % kRemoteHosts));
    s.ports.push_back(p);
  }
  return s;
}

struct Ovs {
  cov_db* db;
  OvsdbIdlSwitch ovsdb;
  OvsFlowSwitch flows;
  Ovs(const std::string& remote, const std::string& target)
      : db(cov_db_create(remote.c_str())), ovsdb(db), flows(target) {}
  ~Ovs() { cov_db_destroy(db); }
  // Runs the IDL until `done` or 10 s.
  template <typename Fn>
  void run_until(Fn&& done) {
    const auto end = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < end) {
      cov_db_run(db);
      if (cov_db_connected(db) && done()) return;
      cov_db_wait(db, -1, 10);
    }
    throw std::runtime_error("OVS did not get there in 10 s");
  }
};

// The agent before: each change a whole state, every flow translated, parsed and compared.
struct WholePath {
  Ovs& ovs;
  std::string bridge = "br-int";
  size_t flows = 0;
  ApplyReport pass(const DesiredState& arrived) {
    DesiredState client = arrived;  // the controller client's copy
    DesiredState latest = client;   // the agent core's copy
    DesiredState mailbox = latest;  // the dataplane's copy
    ApplyReport report;
    auto topo = overlay::build_topology(mailbox);
    ovs.ovsdb.ensure_bridge(bridge, "netdev");
    auto ifaces = ovs.ovsdb.interfaces();
    auto desired = overlay::translate_ovs(topo, OvsReconciler::port_map(ifaces, bridge), {});
    flows = desired.flows.size();
    std::map<std::string, std::string> have;
    for (auto& e : ovs.flows.dump(kCutoverCookie)) have[e.key] = e.actions;
    const bool canonical = !have.empty();
    std::map<std::string, FlowEntry> want;
    for (const auto& f : desired.flows) {
      auto e = ovs.flows.normalize(f.text(), canonical);
      auto key = e.key;
      want[key] = std::move(e);
    }
    std::vector<FlowMod> mods;
    for (const auto& [key, actions] : have) {
      if (!want.count(key)) mods.push_back({FlowOp::remove, key});
    }
    for (const auto& [key, e] : want) {
      auto it = have.find(key);
      if (it == have.end()) {
        mods.push_back({FlowOp::add, key + " actions=" + e.actions, e.parsed});
      } else if (it->second != e.actions) {
        mods.push_back({FlowOp::modify, key + " actions=" + e.actions, e.parsed});
      }
    }
    report.modified = mods.size();
    if (!mods.empty()) ovs.flows.bundle(mods, kCutoverCookie);
    report.ok = true;
    return report;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_agent OVSDB_REMOTE OPENFLOW_TARGET PORTS delta|whole\n");
    return 2;
  }
  const int n = std::atoi(argv[3]);
  const std::string mode = argv[4];
  cov_init();
  Ovs ovs(argv[1], argv[2]);
  OvsReconciler reconciler(OvsReconcilerConfig{}, ovs.flows, ovs.ovsdb);
  WholePath whole{ovs};
  overlay::DesiredIndex core;             // the agent core's (io thread)
  overlay::DesiredIndex dataplane(true);  // the OVS thread's

  DesiredState state = make_state(n);
  // Install: the tunnels first (OVS gives them ofports), then every flow.
  const auto t_install = Clock::now();
  ApplyReport r;
  ovs.run_until([&] {
    if (mode == "delta") {
      if (dataplane.empty()) {
        core.reset(state);
        dataplane.reset(state);
      }
      r = reconciler.reconcile(dataplane, {}, false);
    } else {
      reconciler.reconcile(state, {});  // the tunnels (the whole path does not manage them)
      r = whole.pass(state);
      r.waiting_for.clear();
      for (const auto& i : ovs.ovsdb.interfaces()) {
        if (i.owned && i.ofport <= 0) r.waiting_for.push_back(i.name);
      }
    }
    return r.ok && r.waiting_for.empty();
  });
  const double install_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - t_install).count();
  // One more pass: settled.
  if (mode == "delta") {
    reconciler.reconcile(dataplane, {}, false);
  } else {
    whole.pass(state);
  }

  auto measure = [&](const std::string& text) {
    const auto t0 = Clock::now();
    const double c0 = cpu_ms();
    auto msg = wire::decode_controller_message(text);
    if (mode == "delta") {
      overlay::DesiredChange change;
      if (auto* d = std::get_if<wire::Delta>(&msg)) {
        change = std::move(*d);
      } else {
        change = std::move(std::get<wire::Desired>(msg).state);
      }
      core.apply(change);
      dataplane.apply(std::move(change));
      r = reconciler.reconcile(dataplane, {}, false);
      dataplane.take_changes();  // the announcer's
    } else {
      if (auto* d = std::get_if<wire::Delta>(&msg)) {
        wire::apply(state, *d);
      } else {
        state = std::move(std::get<wire::Desired>(msg).state);
      }
      r = whole.pass(state);
    }
    if (!r.ok) throw std::runtime_error("pass failed: " + r.error);
    return std::pair{std::chrono::duration<double, std::milli>(Clock::now() - t0).count(),
                     cpu_ms() - c0};
  };

  std::string moves = "[";
  uint64_t gen = 1;
  for (int k = 0; k < 5; ++k) {
    // A remote port moves to another remote host: one flow's tunnel changes.
    Port p = state.ports[(k * 7919) % n];
    if (mode == "delta") p = *dataplane.port(p.id);
    const int from = std::stoi(p.host->str().substr(2));
    p.host = HostId::parse("hv" + std::to_string(1 + from % kRemoteHosts));
    wire::Delta d;
    d.generation = ++gen;
    d.upsert_ports.push_back(p);
    auto [wall, cpu] = measure(wire::encode(wire::ControllerMessage{d}));
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s{\"wall_ms\":%.3f,\"cpu_ms\":%.3f,\"modified\":%zu}",
                  k ? "," : "", wall, cpu, r.modified);
    moves += buf;
  }
  moves += "]";
  // One network added, with 10 ports on it: a whole state (networks come only that way).
  DesiredState bigger = mode == "delta" ? dataplane.snapshot() : state;
  bigger.generation = ++gen;
  Network net;
  net.id = NetworkId::parse("net-new");
  net.vni = Vni::from(5000);
  bigger.networks.push_back(net);
  for (int i = 0; i < 10; ++i) {
    Port p;
    p.id = PortId::parse("new" + std::to_string(i));
    p.iface_id = p.id.str();
    p.network = net.id;
    char mac[32];
    std::snprintf(mac, sizeof mac, "02:00:00:00:50:%02x", i);
    p.mac = MacAddress::parse(mac);
    p.host = HostId::parse("hv" + std::to_string(1 + i));
    bigger.ports.push_back(p);
  }
  auto [net_wall, net_cpu] = measure(wire::encode(wire::ControllerMessage{wire::Desired{bigger}}));
  // A full resync: the switch read back and compared with everything.
  const auto t0 = Clock::now();
  const double c0 = cpu_ms();
  if (mode == "delta") {
    r = reconciler.reconcile(dataplane, {}, true);
  } else {
    r = whole.pass(state);
  }
  const double resync_wall = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const double resync_cpu = cpu_ms() - c0;
  std::printf(
      "{\"mode\":\"%s\",\"ports\":%d,\"flows\":%zu,\"install_ms\":%.1f,\"moves\":%s,"
      "\"network_added\":{\"wall_ms\":%.3f,\"cpu_ms\":%.3f},"
      "\"resync\":{\"wall_ms\":%.3f,\"cpu_ms\":%.3f},\"rss_kb\":%ld}\n",
      mode.c_str(), n, mode == "delta" ? reconciler.desired_flows() : whole.flows, install_ms,
      moves.c_str(), net_wall, net_cpu, resync_wall, resync_cpu, rss_kb());
  return 0;
}
