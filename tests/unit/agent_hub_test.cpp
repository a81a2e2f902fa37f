// Unit tests for AgentHub: full state on connect, only changed slices re-sent, ACK bookkeeping
// and generation waits that succeed, fail on NACK and fail on disconnect.
#include <gtest/gtest.h>

#include "fake_agents.hpp"

using namespace cutover;
using namespace cutover::controller;
using cutover::testing::FakeAgent;
using cutover::testing::settle;

namespace {
struct Rig {
  MemoryStore store;
  ControllerState state{store};
  AgentHub hub{state};
  Rig() {
    state.on_change = [this](uint64_t, const ChangeSet& c) { hub.publish(c); };
    for (auto [id, ip] : {std::pair{"a", "10.0.0.1"}, {"b", "10.0.0.2"}, {"c", "10.0.0.3"}}) {
      Host h;
      h.id = HostId::parse(id);
      h.underlay_ip = IpAddress::parse(ip);
      state.put_host(h);
    }
    Network n;
    n.id = NetworkId::parse("blue");
    n.vni = Vni::from(5);
    state.create_network(n);
  }
  void port(const char* id, const char* mac, const char* host) {
    Port p;
    p.id = PortId::parse(id);
    p.mac = MacAddress::parse(mac);
    p.network = NetworkId::parse("blue");
    p.iface_id = id;
    p.host = HostId::parse(host);
    state.create_port(p);
  }
};
template <class... Agents>
void connect(Agents&... agents) {
  (agents.connect(), ...);
}
}  // namespace

TEST(AgentHub, SendsFullStateOnConnectAndOnlyChangedSlices) {
  Rig rig;
  FakeAgent a(rig.hub, "a"), b(rig.hub, "b"), c(rig.hub, "c");
  connect(a, b, c);
  EXPECT_EQ(a.received, 1);
  rig.port("pa", "52:54:00:00:00:01", "a");
  rig.port("pb", "52:54:00:00:00:02", "b");
  settle(a, b, c);
  EXPECT_EQ(a.last.ports.size(), 2u);
  EXPECT_EQ(c.received, 1) << "c shares no network: nothing to send";
  EXPECT_TRUE(rig.hub.host_applied(HostId::parse("a"), rig.state.generation()));
  EXPECT_TRUE(rig.hub.host_applied(HostId::parse("c"), rig.state.generation()));
  EXPECT_EQ(rig.hub.max_generation_lag(), 0u);
  EXPECT_EQ(rig.hub.connected_count(), 3u);
}

TEST(AgentHub, WaitSucceedsFailsOnNackAndOnDisconnect) {
  Rig rig;
  FakeAgent a(rig.hub, "a", false), b(rig.hub, "b", false);
  a.connect();
  b.connect();
  rig.port("pa", "52:54:00:00:00:01", "a");
  rig.port("pb", "52:54:00:00:00:02", "b");
  const auto gen = rig.state.generation();
  std::vector<std::pair<bool, std::string>> results;
  auto record = [&](bool ok, const std::string& why) { results.push_back({ok, why}); };
  rig.hub.wait_applied({HostId::parse("a"), HostId::parse("b")}, gen, record);
  a.ack();
  EXPECT_TRUE(results.empty());
  b.ack();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].first);

  rig.port("pa2", "52:54:00:00:00:03", "a");
  rig.hub.wait_applied({HostId::parse("a")}, rig.state.generation(), record);
  a.nack("no bridge");
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FALSE(results[1].first);
  EXPECT_NE(results[1].second.find("no bridge"), std::string::npos);

  rig.port("pb2", "52:54:00:00:00:04", "b");
  rig.hub.wait_applied({HostId::parse("b")}, rig.state.generation(), record);
  b.disconnect();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_FALSE(results[2].first);
  EXPECT_NE(results[2].second.find("disconnected"), std::string::npos);
}

TEST(AgentHub, ReconnectResyncsAndResetsApplied) {
  Rig rig;
  FakeAgent a(rig.hub, "a");
  a.connect();
  rig.port("pa", "52:54:00:00:00:01", "a");
  settle(a);
  EXPECT_TRUE(rig.hub.host_applied(HostId::parse("a"), rig.state.generation()));
  a.set_auto_ack(false);
  a.connect();  // a new session replaces the old one
  EXPECT_FALSE(rig.hub.host_applied(HostId::parse("a"), rig.state.generation()));
  EXPECT_EQ(a.last.ports.size(), 1u);
  a.ack();
  EXPECT_TRUE(rig.hub.host_applied(HostId::parse("a"), rig.state.generation()));
}

TEST(AgentHub, PortChangesGoOutAsOneDeltaAndAgentsStayExact) {
  Rig rig;
  FakeAgent a(rig.hub, "a"), b(rig.hub, "b"), c(rig.hub, "c");
  connect(a, b, c);
  rig.port("pa", "52:54:00:00:00:01", "a");
  rig.port("pb", "52:54:00:00:00:02", "b");
  rig.port("pc", "52:54:00:00:00:03", "c");
  settle(a, b, c);
  const int deltas_before = a.deltas;
  // pb moves b -> c: a is only affected (delta); b and c are movers (whole slices).
  auto pb = rig.state.ports().at(PortId::parse("pb"));
  pb.host = HostId::parse("c");
  rig.state.replace_port(pb);
  settle(a, b, c);
  EXPECT_EQ(a.deltas, deltas_before + 1);
  auto ids = [](const DesiredState& d) {
    std::set<std::string> s;
    for (const auto& p : d.ports) s.insert(p.id.str() + "@" + (p.host ? p.host->str() : "-"));
    return s;
  };
  for (FakeAgent* agent : {&a, &b, &c}) {
    const auto expect = rig.state.desired_for(agent->last.host);
    EXPECT_EQ(ids(agent->last), ids(expect)) << agent->last.host.str();
    EXPECT_EQ(agent->last.generation, rig.state.generation());
  }
  // A port deleted: removed everywhere by delta.
  rig.state.delete_port(PortId::parse("pc"));
  settle(a, b, c);
  EXPECT_EQ(ids(a.last), ids(rig.state.desired_for(HostId::parse("a"))));
  EXPECT_TRUE(rig.hub.host_applied(HostId::parse("a"), rig.state.generation()));
}

TEST(AgentHub, WholeSlicesFromCachedEncodingsMatchTheDesiredState) {
  Rig rig;
  FakeAgent a(rig.hub, "a"), b(rig.hub, "b"), c(rig.hub, "c");
  connect(a, b, c);
  rig.port("pa", "52:54:00:00:00:01", "a");
  rig.port("pb", "52:54:00:00:00:02", "b");
  settle(a, b, c);
  // pa changes after its encoding was cached; then c joins the network and gets a whole slice.
  Port pa = rig.state.ports().at(PortId::parse("pa"));
  pa.labels["tier"] = "web";
  rig.state.replace_port(pa);
  rig.port("pc", "52:54:00:00:00:03", "c");
  settle(a, b, c);
  for (auto* agent : {&a, &b, &c}) {
    auto want = rig.state.desired_for(agent->last.host);
    want.generation = agent->last.generation;
    EXPECT_EQ(agent->last, want) << agent->last.host.str();
  }
  EXPECT_EQ(c.last.ports.size(), 3u);
  EXPECT_EQ(c.last.ports[0].labels.at("tier"), "web") << "a stale cached encoding was sent";
  // A port deleted and created again with other values is not served from the cache.
  rig.state.delete_port(PortId::parse("pa"));
  rig.port("pa", "52:54:00:00:00:09", "a");
  settle(a, b, c);
  const auto same = [](const Port& p) { return p.id.str() == "pa"; };
  auto it = std::find_if(c.last.ports.begin(), c.last.ports.end(), same);
  ASSERT_NE(it, c.last.ports.end());
  EXPECT_EQ(it->mac, MacAddress::parse("52:54:00:00:00:09"));
  // Host b moves to another underlay address after its encoding was cached: every agent that
  // lists b gets the new one.
  Host hb = rig.state.hosts().at(HostId::parse("b"));
  hb.underlay_ip = IpAddress::parse("10.0.9.2");
  rig.state.put_host(hb);
  settle(a, b, c);
  for (auto* agent : {&a, &b, &c}) {
    auto want = rig.state.desired_for(agent->last.host);
    want.generation = agent->last.generation;
    EXPECT_EQ(agent->last, want) << agent->last.host.str() << " has a stale host encoding";
  }
}

TEST(AgentHub, AFanOutIsTimedUntilTheLastAgentItWasSentToAcks) {
  Rig rig;
  std::vector<double> took;
  rig.hub.on_fanout_acked = [&](double s) { took.push_back(s); };
  FakeAgent a(rig.hub, "a"), b(rig.hub, "b"), c(rig.hub, "c", /*auto_ack=*/false);
  connect(a, b, c);
  settle(a, b, c);
  c.ack();
  EXPECT_TRUE(took.empty()) << "connecting is a resync, not a fan-out";
  rig.port("pa", "52:54:00:00:00:01", "a");
  rig.port("pb", "52:54:00:00:00:02", "b");
  settle(a, b, c);
  EXPECT_EQ(took.size(), 2u) << "two changes, each ACKed by the agents it reached";
  rig.port("pc", "52:54:00:00:00:03", "c");  // reaches a, b and c; c does not answer yet
  settle(a, b, c);
  EXPECT_EQ(took.size(), 2u);
  c.ack();
  ASSERT_EQ(took.size(), 3u);
  EXPECT_GE(took.back(), 0.0);
  Port pa = rig.state.ports().at(PortId::parse("pa"));
  pa.labels["x"] = "y";
  rig.state.replace_port(pa);
  settle(a, b, c);
  c.disconnect();  // never ACKs: that fan-out is not measured
  EXPECT_EQ(took.size(), 3u);
}

TEST(AgentHub, APartiallyAppliedGenerationIsNotCountedUntilNothingIsMissing) {
  Rig rig;
  FakeAgent a(rig.hub, "a", false), b(rig.hub, "b", false);
  connect(a, b);
  rig.port("pa", "52:54:00:00:00:01", "a");
  rig.port("pb", "52:54:00:00:00:02", "b");  // b joins the VNI: a needs a tunnel to b
  const auto gen = rig.state.generation();
  std::vector<bool> results;
  rig.hub.wait_applied({HostId::parse("a"), HostId::parse("b")}, gen,
                       [&](bool ok, const std::string&) { results.push_back(ok); });
  b.ack();
  a.waiting_for = {"tunnel to 10.0.0.2"};
  a.ack();
  EXPECT_TRUE(results.empty()) << "a still lacks its tunnel to b";
  EXPECT_FALSE(rig.hub.host_applied(HostId::parse("a"), gen));
  const auto& info = rig.hub.agents().at(HostId::parse("a"));
  EXPECT_EQ(info.partial_generation, gen);
  EXPECT_EQ(info.waiting_for, std::vector<std::string>{"tunnel to 10.0.0.2"});
  EXPECT_EQ(rig.hub.waiting_count(), 1u);
  a.waiting_for.clear();
  a.ack();
  ASSERT_EQ(results, std::vector<bool>{true});
  EXPECT_TRUE(rig.hub.host_applied(HostId::parse("a"), gen));
  EXPECT_EQ(rig.hub.agents().at(HostId::parse("a")).partial_generation, 0u);
  EXPECT_EQ(rig.hub.waiting_count(), 0u);
}

TEST(AgentHub, UpdatesSayWhetherAnAckChangedMoreThanTheGeneration) {
  Rig rig;
  std::vector<AgentHub::AgentChange> seen;
  rig.hub.on_agent_update = [&](const HostId&, AgentHub::AgentChange what) {
    seen.push_back(what);
  };
  using C = AgentHub::AgentChange;
  FakeAgent a(rig.hub, "a", false);
  a.connect();
  EXPECT_EQ(seen, std::vector<C>{C::connection});
  seen.clear();
  a.ack();  // the first report of a session
  rig.port("pa", "52:54:00:00:00:01", "a");
  a.ack();       // the same report, a new generation
  a.bind("pa");  // the report changed: a port is bound
  a.ack();
  a.waiting_for = {"pa"};
  a.ack();  // partially applied: not just a generation
  a.nack("bad");
  a.disconnect();
  EXPECT_EQ(seen, (std::vector<C>{C::report, C::generation, C::report, C::generation, C::report,
                                  C::report, C::connection}));
  seen.clear();
  a.waiting_for.clear();
  a.connect();
  a.ack();  // the same report as before the reconnect: a new session's first, so a report
  a.ack();
  EXPECT_EQ(seen, (std::vector<C>{C::connection, C::report, C::generation}));
}

// A repeated ACK (its report word for word the last one's) counts exactly as the full ACK would:
// the generation is applied, the fan-out and the waiters see it, and the update says so.
TEST(AgentHub, ARepeatedAckCountsAsTheFullAck) {
  Rig rig;
  std::vector<AgentHub::AgentChange> seen;
  rig.hub.on_agent_update = [&](const HostId&, AgentHub::AgentChange what) {
    seen.push_back(what);
  };
  int fanouts = 0;
  rig.hub.on_fanout_acked = [&](double) { ++fanouts; };
  FakeAgent full(rig.hub, "a", false), repeat(rig.hub, "b", false);
  rig.port("pa", "52:54:00:00:00:01", "a");
  rig.port("pb", "52:54:00:00:00:02", "b");  // both on the network: both get its deltas
  for (auto* agent : {&full, &repeat}) {
    agent->connect();
    agent->bind("x");  // the same report from both, and both remembered
  }
  rig.port("pc", "52:54:00:00:00:03", "a");
  const uint64_t g = rig.state.generation();
  bool done = false;
  rig.hub.wait_applied({HostId::parse("a"), HostId::parse("b")}, g,
                       [&](bool ok, auto) { done = ok; });
  seen.clear();
  full.ack();
  EXPECT_FALSE(done);
  EXPECT_EQ(fanouts, 0);
  repeat.repeat_ack();
  EXPECT_TRUE(done);
  EXPECT_EQ(fanouts, 1);
  using C = AgentHub::AgentChange;
  EXPECT_EQ(seen, (std::vector<C>{C::generation, C::generation}));
  const auto& a = rig.hub.agents().at(HostId::parse("a"));
  const auto& b = rig.hub.agents().at(HostId::parse("b"));
  EXPECT_EQ(b.applied_generation, g);
  EXPECT_EQ(b.applied_generation, a.applied_generation);
  EXPECT_EQ(b.report, a.report);
  EXPECT_TRUE(rig.hub.host_applied(HostId::parse("b"), g));
  // A session that is gone: nothing happens.
  repeat.disconnect();
  seen.clear();
  repeat.repeat_ack();
  EXPECT_TRUE(seen.empty());
}
