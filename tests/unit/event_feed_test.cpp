// Unit tests for the console's event feed: a subscriber's snapshot, then one event per change of
// topology, port, agent and migration (a whole migration with fake agents), in the SSE text
// format; nothing after unsubscribing. And the REST side: the console's assets are served
// without a token and with a content security policy; the event stream needs one.
#include <gtest/gtest.h>

#include "controller_core.hpp"
#include "event_feed.hpp"
#include "fake_agents.hpp"

using namespace cutover;
using namespace cutover::controller;
using cutover::testing::FakeAgent;
using cutover::testing::settle;
using nlohmann::json;

namespace {

struct Event {
  std::string name;
  json data;
};

// Splits the SSE text a subscriber received into events.
std::vector<Event> parse(const std::string& text) {
  std::vector<Event> out;
  size_t at = 0;
  for (size_t end; (end = text.find("\n\n", at)) != std::string::npos; at = end + 2) {
    const std::string block = text.substr(at, end - at);
    const auto nl = block.find('\n');
    EXPECT_EQ(block.rfind("event: ", 0), 0u) << block;
    EXPECT_EQ(block.compare(nl + 1, 6, "data: "), 0) << block;
    out.push_back({block.substr(7, nl - 7), json::parse(block.substr(nl + 7))});
  }
  EXPECT_EQ(at, text.size()) << "every event ends with a blank line";
  return out;
}

struct Rig : cutover::testing::ControllerCore {
  EventFeed feed{state, hub};
  std::string received;
  Rig() {
    state.on_change = [this](uint64_t, const ChangeSet& c) {
      hub.publish(c);
      feed.state_changed(c);
    };
    hub.on_agent_update = [this, before = std::move(hub.on_agent_update)](
                              const HostId& h, AgentHub::AgentChange what) {
      if (before) before(h, what);
      feed.agent_changed(h);
    };
  }
  std::vector<Event> take() {
    auto out = parse(received);
    received.clear();
    return out;
  }
  void add_host(const char* id, const char* ip) {
    Host h;
    h.id = HostId::parse(id);
    h.underlay_ip = IpAddress::parse(ip);
    h.migration_uri = std::string("qemu+tcp://") + id + "/system";
    state.put_host(h);
  }
  void add_network() {
    Network n;
    n.id = NetworkId::parse("blue");
    n.vni = Vni::from(100);
    state.create_network(n);
  }
  // A port on blue (add_network first).
  Port add_port(const char* id, const char* iface, const char* host) {
    Port p;
    p.id = PortId::parse(id);
    p.mac = MacAddress::parse("52:54:00:00:00:01");
    p.network = NetworkId::parse("blue");
    p.iface_id = iface;
    p.host = HostId::parse(host);
    return state.create_port(p);
  }
};

std::vector<std::string> names(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.name);
  return out;
}

}  // namespace

TEST(EventFeed, SnapshotThenAnEventPerChangeUntilUnsubscribed) {
  Rig rig;
  rig.add_host("h1", "10.0.0.1");
  const auto id = rig.feed.subscribe([&](const std::string& t) { rig.received += t; });
  auto events = rig.take();
  ASSERT_EQ(names(events), std::vector<std::string>{"snapshot"});
  EXPECT_EQ(events[0].data["hosts"][0]["id"], "h1");
  EXPECT_EQ(events[0].data["generation"], rig.state.generation());
  for (const char* k : {"networks", "ports", "agents", "migrations"}) {
    EXPECT_TRUE(events[0].data[k].is_array()) << k;
  }

  rig.add_network();
  events = rig.take();
  ASSERT_EQ(names(events), std::vector<std::string>{"topology"});
  EXPECT_EQ(events[0].data["networks"][0]["vni"], 100);

  const Port p = rig.add_port("web", "if-web", "h1");
  events = rig.take();
  ASSERT_EQ(names(events), (std::vector<std::string>{"port", "generation"}));
  EXPECT_EQ(events[0].data["host"], "h1");
  EXPECT_EQ(events[1].data["generation"], rig.state.generation());

  // A message with a newline in it stays one data line.
  EXPECT_EQ(EventFeed::frame("x", {{"m", "a\nb"}}), "event: x\ndata: {\"m\":\"a\\nb\"}\n\n");
  // Bytes that are not UTF-8 do not throw out of the commit that publishes them.
  EXPECT_EQ(EventFeed::frame("x", {{"m", "a\xff"}}),
            "event: x\ndata: {\"m\":\"a\xef\xbf\xbd\"}\n\n");

  rig.state.delete_port(p.id);
  events = rig.take();
  ASSERT_EQ(names(events), (std::vector<std::string>{"port_removed", "generation"}));
  EXPECT_EQ(events[0].data["id"], "web");

  rig.feed.unsubscribe(id);
  EXPECT_EQ(rig.feed.subscribers(), 0u);
  rig.state.create_port(p);
  EXPECT_TRUE(rig.received.empty());
}

TEST(EventFeed, AWholeMigrationArrivesStateByStateWithItsTimeline) {
  Rig rig;
  rig.add_host("s", "10.0.0.1");
  rig.add_host("d", "10.0.0.2");
  rig.add_network();
  rig.add_port("vm", "vm", "s");
  FakeAgent s{rig.hub, "s"}, d{rig.hub, "d"};
  rig.feed.subscribe([&](const std::string& t) { rig.received += t; });
  rig.take();
  s.connect();
  d.connect();
  s.bound.insert("vm");
  settle(s, d);
  auto events = rig.take();
  ASSERT_FALSE(events.empty());
  // Agents: connected, then their reports.
  EXPECT_EQ(events.back().name, "agent");
  bool s_bound = false;
  for (const auto& e : events) {
    if (e.name == "agent" && e.data["host"] == "s") {
      s_bound = e.data["bound_ports"] == json::array({"vm"}) && e.data["connected"] == true;
    }
  }
  EXPECT_TRUE(s_bound);

  rig.driver.create(PortId::parse("vm"), HostId::parse("d"));
  settle(s, d);
  s.paused.insert("vm");
  s.ack();
  d.bind("vm");
  settle(s, d);
  std::vector<std::string> states;
  json last;
  for (const auto& e : rig.take()) {
    if (e.name != "migration") continue;
    if (states.empty() || states.back() != e.data["state"]) states.push_back(e.data["state"]);
    last = e.data;
  }
  EXPECT_EQ(states, (std::vector<std::string>{"preparing", "ready", "migrating", "cutting_over",
                                              "completed"}));
  for (const char* phase : {"requested", "source_paused", "destination_bound", "completed"}) {
    EXPECT_TRUE(last["timeline"].contains(phase)) << phase;
  }
  // A subscriber arriving now gets the finished migration in its snapshot.
  std::string late;
  rig.feed.subscribe([&](const std::string& t) { late += t; });
  const auto snap = parse(late).at(0).data;
  ASSERT_EQ(snap["migrations"].size(), 1u);
  EXPECT_EQ(snap["migrations"][0]["state"], "completed");
  EXPECT_EQ(snap["ports"][0]["host"], "d");
}

TEST(EventFeed, AMeasurementIsValidatedByFieldBeforeTheMigrationIsLookedAt) {
  cutover::testing::ControllerCore core;
  auto put = [&](const std::string& body, const std::string& auth = "Bearer t0ken") {
    return core.api.handle({"PUT", "/v1/migrations/m9/measurement", body, auth});
  };
  auto field = [](const HttpResponse& r) {
    return json::parse(r.body)["error"].value("field", "");
  };
  EXPECT_EQ(field(put(R"({"pps":1000,"sent":10,"lost":11})")), "lost");
  EXPECT_EQ(field(put(R"({"pps":0,"sent":10,"lost":1})")), "pps");
  EXPECT_EQ(field(put(R"({"pps":1,"sent":10,"lost":1,"tcp_sessions":2,"tcp_survived":3})")),
            "tcp_survived");
  EXPECT_EQ(field(put(R"({"pps":1,"sent":10,"lost":1,"by":"a\nb"})")), "by");
  EXPECT_EQ(field(put(R"({"pps":1,"sent":10,"lost":1,"colour":"red"})")), "colour");
  EXPECT_EQ(put(R"({"pps":1,"sent":10,"lost":1})").status, 404);
  EXPECT_EQ(put(R"({"pps":1,"sent":10,"lost":1})", "Bearer r3ad").status, 403);
}

TEST(EventFeed, ConsoleAssetsAreOpenAndTheStreamNeedsAToken) {
  cutover::testing::ControllerCore core;
  for (const char* path : {"/", "/console.js", "/console.css"}) {
    const auto r = core.api.handle({"GET", path, "", ""});
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_FALSE(r.body.empty()) << path;
    bool csp = false;
    for (const auto& [k, v] : r.headers) csp |= k == "Content-Security-Policy";
    EXPECT_TRUE(csp) << path;
  }
  EXPECT_EQ(core.api.handle({"GET", "/", "", ""}).content_type, "text/html; charset=utf-8");
  EXPECT_EQ(core.api.handle({"GET", "/v1/events", "", ""}).status, 401);
  EXPECT_EQ(core.api.handle({"POST", "/", "x", "Bearer t0ken"}).status, 405);
  auto ok = core.api.handle({"GET", "/v1/events", "", "Bearer r3ad"});
  EXPECT_EQ(ok.status, 200);
  EXPECT_TRUE(ok.event_stream) << "a read-only token may watch";
  EXPECT_EQ(ok.content_type, "text/event-stream");
}
