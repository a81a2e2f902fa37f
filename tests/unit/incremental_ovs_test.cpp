// Property tests of the incremental OVS path: random sequences of deltas (ports placed, moved,
// migrating, forwarding, stateful, removed, clashing; a host's address moving), VM taps coming
// and going and VMs departing, each applied as the agent applies them (DesiredIndex + one
// OvsReconciler pass, verifying against the switch only now and then). After every step the
// switch must hold exactly what a full translation of the whole state gives, the report must
// say what the full translation says, and a state the full translation rejects must be rejected
// with nothing touched.
#include <gtest/gtest.h>

#include <random>

#include "desired_index.hpp"
#include "fake_flow_switch.hpp"
#include "fake_ovsdb_switch.hpp"
#include "ovs_reconciler.hpp"
#include "topology.hpp"

using namespace cutover;
using namespace cutover::agent;
using cutover::testing::FakeFlowSwitch;
using cutover::testing::FakeOvsdbSwitch;

namespace {

constexpr int kHosts = 5;     // h1 (this agent) .. h5
constexpr int kNetworks = 4;  // n0..n3, VNI 100..103
constexpr int kPorts = 30;    // p0..p29

std::string ip_of(int host, int shift) {
  return "192.168." + std::to_string(100 + shift) + "." + std::to_string(host);
}

struct World {
  std::mt19937 rng;
  uint64_t generation = 1;
  std::vector<Host> hosts;
  std::map<std::string, Port> ports;
  std::set<std::string> departed;

  explicit World(unsigned seed) : rng(seed) {
    for (int h = 1; h <= kHosts; ++h) {
      Host host;
      host.id = HostId::parse("h" + std::to_string(h));
      host.underlay_ip = IpAddress::parse(ip_of(h, 0));
      hosts.push_back(host);
    }
  }
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
  bool chance(int percent) { return pick(100) < percent; }
  HostId host(int h) { return HostId::parse("h" + std::to_string(h)); }

  DesiredState whole() const {
    DesiredState s;
    s.generation = generation;
    s.host = HostId::parse("h1");
    s.hosts = hosts;
    for (int n = 0; n < kNetworks; ++n) {
      Network net;
      net.id = NetworkId::parse("n" + std::to_string(n));
      net.vni = Vni::from(100 + n);
      s.networks.push_back(net);
    }
    for (const auto& [id, p] : ports) s.ports.push_back(p);
    return s;
  }

  Port random_port(int i) {
    Port p;
    p.id = PortId::parse("p" + std::to_string(i));
    p.iface_id = "if-" + std::to_string(i);
    p.network = NetworkId::parse("n" + std::to_string(pick(kNetworks)));
    // Now and then a MAC another port may hold in the same VNI: a state to reject.
    const int m = chance(4) ? pick(kPorts) : i;
    p.mac = MacAddress::parse("52:54:00:00:00:" + std::string(m < 16 ? "0" : "") + [&] {
      char b[4];
      std::snprintf(b, sizeof b, "%x", m);
      return std::string(b);
    }());
    p.ips = {IpAddress::parse("10.0.0." + std::to_string(10 + i))};
    if (!chance(10)) p.host = host(1 + pick(kHosts));
    if (p.host && chance(25)) {
      auto to = host(1 + pick(kHosts));
      if (to != *p.host) p.migrating_to = to;
    }
    if (p.host && !p.migrating_to && chance(15)) {
      auto from = host(1 + pick(kHosts));
      if (from != *p.host) p.previous_host = from;
    }
    if (chance(25)) {
      p.ingress_allow = std::vector<IngressRule>{};
      IngressRule r;
      r.protocol = chance(50) ? "tcp" : "icmp";
      r.port = r.protocol == "tcp" ? 22 : 0;
      p.ingress_allow->push_back(r);
      if (chance(50)) {
        CarriedConn c;
        c.protocol = "tcp";
        c.local_ip = p.ips[0];
        c.remote_ip = IpAddress::parse("10.0.0.200");
        c.local_port = 22;
        c.remote_port = 40000 + pick(1000);
        p.carried_conns.push_back(c);
      }
    }
    return p;
  }

  // One random change, as the controller would send it.
  wire::Delta step() {
    wire::Delta d;
    d.generation = ++generation;
    const int what = pick(100);
    if (what < 5) {  // a host's address moves
      auto& h = hosts[1 + pick(kHosts - 1)];
      h.underlay_ip = IpAddress::parse(ip_of(std::stoi(h.id.str().substr(1)), 1 + pick(3)));
      d.upsert_hosts.push_back(h);
      return d;
    }
    const int count = 1 + (chance(20) ? pick(4) : 0);
    for (int k = 0; k < count; ++k) {
      const int i = pick(kPorts);
      const std::string id = "p" + std::to_string(i);
      if (what < 20 && ports.count(id)) {
        ports.erase(id);
        std::erase_if(d.upsert_ports, [&](const Port& q) { return q.id.str() == id; });
        d.remove_ports.push_back(PortId::parse(id));
      } else {
        auto p = random_port(i);
        ports[id] = p;
        std::erase_if(d.upsert_ports, [&](const Port& q) { return q.id == p.id; });
        std::erase_if(d.remove_ports, [&](const PortId& q) { return q == p.id; });
        d.upsert_ports.push_back(p);
      }
    }
    return d;
  }
};

std::map<std::string, std::string> expected_table(FakeFlowSwitch& flows,
                                                  const overlay::OvsDesired& d) {
  std::map<std::string, std::string> out;
  for (const auto& f : d.flows) {
    auto e = flows.normalize(f.text());
    out[e.key] = e.actions;
  }
  return out;
}

std::map<std::string, std::string> installed(const FakeFlowSwitch& flows) {
  std::map<std::string, std::string> out;
  for (const auto& [key, f] : flows.table) out[key] = f.actions;
  return out;
}

// What differs between two tables, for a failure message.
std::string differences(const std::map<std::string, std::string>& have,
                        const std::map<std::string, std::string>& want) {
  std::string out;
  for (const auto& [k, v] : have) {
    auto it = want.find(k);
    if (it == want.end())
      out += "\n  extra: " + k + " actions=" + v;
    else if (it->second != v)
      out += "\n  differs: " + k + " actions=" + v + " (want " + it->second + ")";
  }
  for (const auto& [k, v] : want) {
    if (!have.count(k)) out += "\n  missing: " + k + " actions=" + v;
  }
  return out;
}

// One agent's OVS path over the fakes, starting from a whole state.
struct Rig {
  FakeFlowSwitch flows;
  FakeOvsdbSwitch db;
  OvsReconciler reconciler{OvsReconcilerConfig{}, flows, db};
  overlay::DesiredIndex index;
  explicit Rig(const DesiredState& whole) { index.reset(whole); }
};

void run(unsigned seed, int steps) {
  World world(seed);
  Rig rig(world.whole());
  ASSERT_TRUE(rig.reconciler.reconcile(rig.index, {}, false).ok);
  int rejected = 0, checked = 0;
  for (int s = 0; s < steps; ++s) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " step " + std::to_string(s));
    auto delta = world.step();
    if (world.chance(10)) {
      rig.index.reset(world.whole());  // a whole state now and then (a reconnect)
    } else {
      rig.index.apply(delta);
    }
    // VM taps of local ports come and go; VMs depart.
    if (world.chance(30)) {
      const std::string iface = "if-" + std::to_string(world.pick(kPorts));
      auto it = std::find_if(rig.db.ifaces.begin(), rig.db.ifaces.end(),
                             [&](const OvsInterface& i) { return i.iface_id == iface; });
      if (it != rig.db.ifaces.end()) {
        rig.db.ifaces.erase(it);
      } else {
        rig.db.add_vm("tap-" + iface, iface, 1000 + world.pick(100000));
      }
    }
    if (world.chance(20)) {
      const std::string iface = "if-" + std::to_string(world.pick(kPorts));
      if (!world.departed.erase(iface)) world.departed.insert(iface);
    }
    const auto before = installed(rig.flows);
    const bool verify = world.chance(10);
    auto r = rig.reconciler.reconcile(rig.index, world.departed, verify);
    const auto whole = world.whole();
    overlay::Topology topo;
    try {
      topo = overlay::build_topology(whole);
    } catch (const ParseError& e) {
      ++rejected;
      EXPECT_TRUE(r.rejected) << "the full translation rejects: " << e.what();
      EXPECT_FALSE(r.error.empty());  // the first problem found may differ
      EXPECT_EQ(installed(rig.flows), before) << "a rejected state touched the switch";
      continue;
    }
    ASSERT_TRUE(r.ok) << r.error_field << ": " << r.error;
    // A tunnel added in this pass gets its ofport now: the next pass uses it.
    if (!r.waiting_for.empty() || r.added + r.removed > 0) {
      r = rig.reconciler.reconcile(rig.index, world.departed, false);
      ASSERT_TRUE(r.ok) << r.error;
    }
    const auto map = OvsReconciler::port_map(rig.db.interfaces(), "br-int");
    const auto want = overlay::translate_ovs(topo, map, world.departed);
    ASSERT_EQ(installed(rig.flows), expected_table(rig.flows, want))
        << differences(installed(rig.flows), expected_table(rig.flows, want));
    EXPECT_EQ(r.bound_ports, want.bound_port_ids);
    EXPECT_EQ(r.awaiting_taps, want.unbound_iface_ids);
    EXPECT_EQ(r.ct_zones, want.ct_zones);
    std::set<std::string> tunnels;
    for (const auto& i : rig.db.interfaces()) {
      if (i.owned) tunnels.insert(i.name);
    }
    std::set<std::string> want_tunnels;
    for (const auto& t : want.tunnels) want_tunnels.insert(t.name);
    EXPECT_EQ(tunnels, want_tunnels);
    ++checked;
  }
  EXPECT_GT(checked, steps / 2) << "the generator should mostly make valid states";
  EXPECT_GT(rejected, 0) << "the generator should sometimes make a state to reject";
}

}  // namespace

TEST(IncrementalOvs, EqualsTheFullTranslationAfterEveryChange) {
  for (unsigned seed = 1; seed <= 6; ++seed) run(seed, 300);
}

TEST(IncrementalOvs, ChangeOfOnePortTouchesOnlyItsFlows) {
  World world(42);
  for (int i = 0; i < kPorts; ++i) {
    Port p;
    p.id = PortId::parse("p" + std::to_string(i));
    p.iface_id = "if-" + std::to_string(i);
    p.network = NetworkId::parse("n" + std::to_string(i % kNetworks));
    char mac[32];
    std::snprintf(mac, sizeof mac, "52:54:00:00:01:%02x", i);
    p.mac = MacAddress::parse(mac);
    p.host = world.host(2 + (i / kNetworks) % (kHosts - 1));
    world.ports[p.id.str()] = p;
  }
  Rig rig(world.whole());
  rig.reconciler.reconcile(rig.index, {}, false);
  ASSERT_TRUE(rig.reconciler.reconcile(rig.index, {}, false).ok);
  // One remote port moves to another remote host: one flow changes, nothing is dumped.
  auto p = world.ports["p5"];
  p.host = world.host(p.host == world.host(2) ? 3 : 2);
  wire::Delta d;
  d.generation = 2;
  d.upsert_ports.push_back(p);
  rig.index.apply(d);
  const int bundles = rig.flows.bundles;
  rig.flows.fail_next_dump = true;  // a dump now would fail the pass
  auto r = rig.reconciler.reconcile(rig.index, {}, false);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.added + r.removed, 0u);
  EXPECT_EQ(r.modified, 1u);
  EXPECT_EQ(rig.flows.bundles, bundles + 1);
}

TEST(IncrementalOvs, AFailedBundleIsRepairedFromWhatTheSwitchHolds) {
  World world(7);
  Rig rig(world.whole());
  ASSERT_TRUE(rig.reconciler.reconcile(rig.index, {}, false).ok);
  for (int s = 0; s < 20; ++s) {
    rig.index.apply(world.step());
    rig.flows.fail_next_bundle = s % 3 == 0;
    rig.reconciler.reconcile(rig.index, {}, false);
  }
  rig.flows.fail_next_bundle = false;
  auto r = rig.reconciler.reconcile(rig.index, {}, false);
  r = rig.reconciler.reconcile(rig.index, {}, false);
  try {
    const auto topo = overlay::build_topology(world.whole());
    ASSERT_TRUE(r.ok) << r.error;
    const auto want =
        overlay::translate_ovs(topo, OvsReconciler::port_map(rig.db.interfaces(), "br-int"), {});
    EXPECT_EQ(installed(rig.flows), expected_table(rig.flows, want));
  } catch (const ParseError&) {
    EXPECT_TRUE(r.rejected);
  }
}
