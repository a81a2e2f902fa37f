// Unit tests for the Inventory: ports made from the VM interfaces agents report (metadata,
// mappings, portgroups), all of a VM's ports or none, refusals named and recorded, hand-made
// ports untouched, retirement only when no host runs the VM, and the REST/mapping rules. Fake
// agents, a manual clock; no sleeps.
#include <gtest/gtest.h>

#include "controller_core.hpp"
#include "fake_agents.hpp"

using namespace cutover;
using namespace cutover::controller;
using cutover::testing::FakeAgent;
using nlohmann::json;

namespace {

struct Rig : cutover::testing::ControllerCore {
  FakeAgent h1{hub, "h1"}, h2{hub, "h2"};
  Rig() {
    state.on_change = [this](uint64_t, const ChangeSet& c) {
      hub.publish(c);
      inventory.state_changed();
    };
    for (auto [id, ip] : {std::pair{"h1", "10.0.0.1"}, std::pair{"h2", "10.0.0.2"}}) {
      Host h;
      h.id = HostId::parse(id);
      h.underlay_ip = IpAddress::parse(ip);
      state.put_host(h);
    }
    for (auto [id, vni] : {std::pair{"blue", 100}, std::pair{"red", 200}}) {
      Network n;
      n.id = NetworkId::parse(id);
      n.vni = Vni::from(vni);
      state.create_network(n);
    }
    h1.connect();
    h2.connect();
    pump();
  }
  void pump() {
    cutover::testing::settle(h1, h2);
    clock.advance(std::chrono::milliseconds(0));
    cutover::testing::settle(h1, h2);
  }
  // The agent reports what runs on it now.
  void report(FakeAgent& a) {
    a.ack();
    pump();
  }
  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = "") {
    return api.handle({method, target, body, "Bearer t0ken"});
  }
  const Port* port(const std::string& id) {
    auto it = state.ports().find(PortId::parse(id));
    return it == state.ports().end() ? nullptr : &it->second;
  }
  // A port made by hand (no origin label), placed on `host` if given.
  Port hand_port(const char* mac, const char* iface_id, const char* host = nullptr) {
    Port p;
    p.id = PortId::parse("hand");
    p.mac = MacAddress::parse(mac);
    p.network = NetworkId::parse("blue");
    p.iface_id = iface_id;
    if (host) p.host = HostId::parse(host);
    return state.create_port(p);
  }
  json inventory_json() { return json::parse(call("GET", "/v1/inventory").body); }
  json entry(const std::string& iface) {
    for (const auto& e : inventory_json()) {
      if (e["iface_id"] == iface) return e;
    }
    return nullptr;
  }
  size_t audit_count(const std::string& event) {
    size_t n = 0;
    for (const auto& e : state.audit()) n += e.value("event", "") == event;
    return n;
  }
};

VmInterface nic(const char* id, const char* mac, const char* libvirt_network = "",
                const char* portgroup = "", const char* network = "") {
  return {id, mac, libvirt_network, portgroup, network, {}};
}

}  // namespace

TEST(Inventory, MetadataNamesTheNetworkAndThePortIsPlacedWhereTheVmRuns) {
  Rig rig;
  rig.h1.domains["web"] = {nic("if-1", "52:54:00:00:00:01", "", "", "blue")};
  rig.report(rig.h1);
  const Port* p = rig.port("if-1");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->network.str(), "blue");
  EXPECT_EQ(p->mac.to_string(), "52:54:00:00:00:01");
  EXPECT_EQ(p->host, HostId::parse("h1"));
  EXPECT_EQ(p->iface_id, "if-1");
  EXPECT_EQ(p->labels.at("origin"), "libvirt");
  EXPECT_EQ(p->labels.at("vm"), "web");
  EXPECT_EQ(rig.audit_count("inventory_ports"), 1u);
  EXPECT_EQ(rig.entry("if-1").value("port", ""), "if-1");
  // The agent of the host got it (the hub published it).
  EXPECT_EQ(rig.h1.last.ports.size(), 1u);
  // Reporting the same again changes nothing.
  const auto gen = rig.state.generation();
  rig.report(rig.h1);
  EXPECT_EQ(rig.state.generation(), gen);
}

TEST(Inventory, BandwidthBecomesThePortsRateLimitsAndFollowsItsDefinition) {
  Rig rig;
  auto web = nic("if-1", "52:54:00:00:00:01", "", "", "blue");
  web.qos.to_vm = RateLimit{8000, 0};
  rig.h1.domains["web"] = {web};
  rig.report(rig.h1);
  ASSERT_NE(rig.port("if-1"), nullptr);
  EXPECT_EQ(rig.port("if-1")->qos, web.qos);
  EXPECT_EQ(rig.h1.last.ports.at(0).qos, web.qos) << "the agent must get the limits too";
  // The domain's <bandwidth> changed (virsh domiftune --config, a redefinition): followed.
  web.qos.to_vm.reset();
  web.qos.from_vm = RateLimit{1000, 0};
  rig.h1.domains["web"] = {web};
  rig.report(rig.h1);
  EXPECT_EQ(rig.port("if-1")->qos, web.qos);
}

TEST(Inventory, MappingsAndPortgroupsDecideAndAnUnmappedNetworkIsRefusedByName) {
  Rig rig;
  ASSERT_EQ(rig.call("PUT", "/v1/network-mappings/prod",
                     R"({"network":"blue","portgroups":{"db":"red"}})")
                .status,
            200);
  rig.h1.domains["web"] = {nic("if-1", "52:54:00:00:00:01", "prod"),
                           nic("if-2", "52:54:00:00:00:02", "prod", "db")};
  rig.h1.domains["other"] = {nic("if-3", "52:54:00:00:00:03", "lab")};
  rig.report(rig.h1);
  ASSERT_NE(rig.port("if-1"), nullptr);
  EXPECT_EQ(rig.port("if-1")->network.str(), "blue");
  ASSERT_NE(rig.port("if-2"), nullptr);
  EXPECT_EQ(rig.port("if-2")->network.str(), "red");
  EXPECT_EQ(rig.port("if-3"), nullptr);
  const auto e = rig.entry("if-3");
  EXPECT_EQ(e.value("field", ""), "libvirt_network");
  EXPECT_NE(e.value("problem", "").find("no mapping for libvirt network 'lab'"), std::string::npos)
      << e.dump();
  EXPECT_EQ(rig.audit_count("inventory_refused"), 1u);
  // The mapping arrives: the port is made at once.
  ASSERT_EQ(rig.call("PUT", "/v1/network-mappings/lab", R"({"network":"red"})").status, 200);
  rig.pump();
  ASSERT_NE(rig.port("if-3"), nullptr);
  EXPECT_EQ(rig.port("if-3")->network.str(), "red");
  EXPECT_FALSE(rig.entry("if-3").contains("problem"));
  // A portgroup with no entry and no default network is refused naming the portgroup.
  ASSERT_EQ(rig.call("PUT", "/v1/network-mappings/pgonly", R"({"portgroups":{"a":"blue"}})").status,
            200);
  rig.h2.domains["db"] = {nic("if-4", "52:54:00:00:00:04", "pgonly", "b")};
  rig.report(rig.h2);
  EXPECT_EQ(rig.port("if-4"), nullptr);
  EXPECT_EQ(rig.entry("if-4").value("field", ""), "portgroup");
}

TEST(Inventory, AVmsPortsAreMadeAllOrNoneAndAConflictIsRecordedUntilItGoes) {
  Rig rig;
  // A hand-made port already uses the second NIC's MAC in blue's VNI.
  const Port hand = rig.hand_port("52:54:00:00:00:02", "hand");
  rig.h1.domains["web"] = {nic("if-1", "52:54:00:00:00:01", "", "", "red"),
                           nic("if-2", "52:54:00:00:00:02", "", "", "blue")};
  const auto gen = rig.state.generation();
  rig.report(rig.h1);
  EXPECT_EQ(rig.port("if-1"), nullptr) << "not half-applied";
  EXPECT_EQ(rig.port("if-2"), nullptr);
  EXPECT_EQ(rig.state.generation(), gen);
  EXPECT_EQ(rig.entry("if-2").value("field", ""), "mac");
  EXPECT_NE(rig.entry("if-2").value("problem", "").find("already used in VNI 100 by port hand"),
            std::string::npos);
  EXPECT_NE(rig.entry("if-1").value("problem", "").find("held back"), std::string::npos);
  EXPECT_EQ(rig.audit_count("inventory_refused"), 2u);
  // Judged again on the next report, the same problems are not audited twice.
  rig.report(rig.h1);
  EXPECT_EQ(rig.audit_count("inventory_refused"), 2u);
  // The hand-made port goes: both are made, in one generation.
  rig.state.delete_port(hand.id);
  const auto before = rig.state.generation();
  rig.pump();
  ASSERT_NE(rig.port("if-1"), nullptr);
  ASSERT_NE(rig.port("if-2"), nullptr);
  EXPECT_EQ(rig.state.generation(), before + 1);
  // Two NICs of one VM with the same MAC in one network: refused, named.
  rig.h2.domains["twin"] = {nic("t-1", "52:54:00:00:00:09", "", "", "blue"),
                            nic("t-2", "52:54:00:00:00:09", "", "", "blue")};
  rig.report(rig.h2);
  EXPECT_EQ(rig.port("t-1"), nullptr);
  EXPECT_EQ(rig.port("t-2"), nullptr);
  EXPECT_EQ(rig.entry("t-2").value("field", ""), "mac");
}

TEST(Inventory, InterfacesThatCannotBePortsAreNamed) {
  Rig rig;
  rig.h1.domains["a"] = {nic("if-a", "52:54:00:00:00:01")};  // no network named or mapped
  rig.h1.domains["b"] = {nic("if-b", "", "", "", "blue")};   // no MAC
  rig.h1.domains["c"] = {nic("if c", "52:54:00:00:00:03", "", "", "blue")};   // not an id
  rig.h1.domains["d"] = {nic("if-d", "52:54:00:00:00:04", "", "", "green")};  // no such net
  rig.h1.domains["e"] = {nic("if-e", "zz:54:00:00:00:05", "", "", "blue")};   // bad MAC
  rig.report(rig.h1);
  EXPECT_TRUE(rig.state.ports().empty());
  EXPECT_EQ(rig.entry("if-a").value("field", ""), "network");
  EXPECT_EQ(rig.entry("if-b").value("field", ""), "mac");
  EXPECT_EQ(rig.entry("if c").value("field", ""), "iface_id");
  EXPECT_EQ(rig.entry("if-d").value("field", ""), "network");
  EXPECT_EQ(rig.entry("if-e").value("field", ""), "mac");
  // green is created: the VM's metadata named it, so its port is made.
  ASSERT_EQ(rig.call("POST", "/v1/networks", R"({"id":"green","vni":300})").status, 201);
  rig.pump();
  ASSERT_NE(rig.port("if-d"), nullptr);
}

TEST(Inventory, HandMadePortsAreNeverChangedOrRetired) {
  Rig rig;
  rig.hand_port("52:54:00:00:00:07", "if-h", "h1");
  rig.pump();
  // The VM says red; the hand-made port stays in blue.
  rig.h1.domains["hand-vm"] = {nic("if-h", "52:54:00:00:00:07", "", "", "red")};
  rig.report(rig.h1);
  EXPECT_EQ(rig.port("hand")->network.str(), "blue");
  EXPECT_EQ(rig.entry("if-h").value("port", ""), "hand");
  // A hand-made port whose id is another VM's interfaceid is not taken over.
  rig.h2.domains["clash"] = {nic("hand", "52:54:00:00:00:08", "", "", "blue")};
  rig.report(rig.h2);
  EXPECT_EQ(rig.port("hand")->iface_id, "if-h");
  EXPECT_EQ(rig.port("hand")->mac.to_string(), "52:54:00:00:00:07");
  EXPECT_EQ(rig.entry("hand").value("field", ""), "iface_id");
  // It stops running: a hand-made port is never retired.
  rig.h1.domains.clear();
  rig.report(rig.h1);
  rig.clock.advance(std::chrono::minutes(10));
  rig.pump();
  EXPECT_NE(rig.port("hand"), nullptr);
}

TEST(Inventory, APortFollowsItsMappingButNotWhileItMigrates) {
  Rig rig;
  ASSERT_EQ(rig.call("PUT", "/v1/network-mappings/prod", R"({"network":"blue"})").status, 200);
  rig.h1.domains["web"] = {nic("if-1", "52:54:00:00:00:01", "prod")};
  rig.report(rig.h1);
  ASSERT_EQ(rig.port("if-1")->network.str(), "blue");
  ASSERT_EQ(rig.call("PUT", "/v1/network-mappings/prod", R"({"network":"red"})").status, 200);
  rig.pump();
  EXPECT_EQ(rig.port("if-1")->network.str(), "red");
  // While it migrates (migrating_to set) a mapping change waits.
  Port moving = *rig.port("if-1");
  moving.migrating_to = HostId::parse("h2");
  rig.state.replace_port(moving);
  ASSERT_EQ(rig.call("PUT", "/v1/network-mappings/prod", R"({"network":"blue"})").status, 200);
  rig.pump();
  EXPECT_EQ(rig.port("if-1")->network.str(), "red");
}

TEST(Inventory, APortIsRetiredOnlyOnceNoHostRunsItsVmForTheWholeGrace) {
  Rig rig;
  rig.h1.domains["web"] = {nic("if-1", "52:54:00:00:00:01", "", "", "blue")};
  rig.report(rig.h1);
  ASSERT_NE(rig.port("if-1"), nullptr);
  // Stopped, and started again within the grace: kept.
  rig.h1.domains.clear();
  rig.report(rig.h1);
  rig.clock.advance(std::chrono::seconds(30));
  rig.h1.domains["web"] = {nic("if-1", "52:54:00:00:00:01", "", "", "blue")};
  rig.report(rig.h1);
  rig.clock.advance(std::chrono::seconds(60));
  rig.pump();
  ASSERT_NE(rig.port("if-1"), nullptr);
  // Its host's agent gone: nobody can say the VM stopped; kept however long that lasts.
  rig.h1.disconnect();
  rig.pump();
  rig.clock.advance(std::chrono::minutes(5));
  rig.pump();
  ASSERT_NE(rig.port("if-1"), nullptr);
  // Back, and the VM no longer runs: retired after the grace, with an audit entry.
  rig.h1.domains.clear();
  rig.h1.connect();
  rig.report(rig.h1);
  rig.clock.advance(std::chrono::seconds(59));
  rig.pump();
  ASSERT_NE(rig.port("if-1"), nullptr);
  rig.clock.advance(std::chrono::seconds(2));
  rig.pump();
  EXPECT_EQ(rig.port("if-1"), nullptr);
  EXPECT_EQ(rig.audit_count("inventory_retired"), 1u);
}

TEST(Inventory, AnInterfaceReportedByTwoHostsWaitsAndMigrationsMoveNothingHere) {
  Rig rig;
  rig.h1.domains["web"] = {nic("if-1", "52:54:00:00:00:01", "", "", "blue")};
  rig.h2.domains["web"] = {nic("if-1", "52:54:00:00:00:01", "", "", "blue")};
  rig.report(rig.h1);
  rig.report(rig.h2);
  // h1 reported first, alone: the port was made there. h2 then reports it too: the inventory
  // leaves placement alone (the migration driver follows VMs).
  ASSERT_NE(rig.port("if-1"), nullptr);
  EXPECT_EQ(rig.port("if-1")->host, HostId::parse("h1"));
  // Both report a VM whose network is not mapped yet; when the mapping comes, the interface
  // runs on two hosts: no port until one of them stops reporting it.
  rig.h1.domains["db"] = {nic("if-9", "52:54:00:00:00:09", "prod")};
  rig.h2.domains["db"] = {nic("if-9", "52:54:00:00:00:09", "prod")};
  rig.report(rig.h1);
  rig.report(rig.h2);
  ASSERT_EQ(rig.call("PUT", "/v1/network-mappings/prod", R"({"network":"blue"})").status, 200);
  rig.pump();
  EXPECT_EQ(rig.port("if-9"), nullptr) << "reported by both hosts: not made";
  EXPECT_NE(rig.entry("if-9").value("problem", "").find("more than one host"), std::string::npos);
  rig.h2.domains.erase("db");
  rig.report(rig.h2);
  ASSERT_NE(rig.port("if-9"), nullptr);
  EXPECT_EQ(rig.port("if-9")->host, HostId::parse("h1"));
}

TEST(Inventory, MappingsAreValidatedAndNetworksTheyNameCannotGo) {
  Rig rig;
  auto err = [&](const HttpResponse& r) { return json::parse(r.body)["error"]; };
  auto r = rig.call("PUT", "/v1/network-mappings/prod", R"({"network":"nope"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(err(r).value("field", ""), "network");
  r = rig.call("PUT", "/v1/network-mappings/prod", R"({"portgroups":{"web":"nope"}})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(err(r).value("field", ""), "portgroups.web");
  r = rig.call("PUT", "/v1/network-mappings/prod", R"({})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(err(r).value("field", ""), "network");
  r = rig.call("PUT", "/v1/network-mappings/prod",
               R"({"libvirt_network":"other","network":"blue"})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(err(r).value("field", ""), "libvirt_network");
  r = rig.call("PUT", "/v1/network-mappings/prod",
               R"({"network":"blue","portgroups":{"a b":"red"}})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(err(r).value("field", ""), "portgroups.a b");
  r = rig.call("PUT", "/v1/network-mappings/prod", R"({"network":"blue","extra":1})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(err(r).value("field", ""), "extra");
  EXPECT_TRUE(rig.state.mappings().empty()) << "nothing stored on refusal";
  const auto gen = rig.state.generation();
  ASSERT_EQ(rig.call("PUT", "/v1/network-mappings/prod", R"({"network":"blue"})").status, 200);
  EXPECT_EQ(rig.state.generation(), gen) << "agents do not see mappings";
  EXPECT_EQ(rig.call("DELETE", "/v1/networks/blue").status, 409);
  EXPECT_EQ(json::parse(rig.call("GET", "/v1/network-mappings").body).size(), 1u);
  EXPECT_EQ(json::parse(rig.call("GET", "/v1/network-mappings/prod").body)["network"], "blue");
  EXPECT_EQ(rig.call("DELETE", "/v1/network-mappings/prod").status, 204);
  EXPECT_EQ(rig.call("GET", "/v1/network-mappings/prod").status, 404);
  EXPECT_EQ(rig.call("DELETE", "/v1/network-mappings/prod").status, 404);
  EXPECT_EQ(rig.call("DELETE", "/v1/networks/blue").status, 204);
  // Mappings survive a restart (the store holds them).
  ASSERT_EQ(rig.call("PUT", "/v1/network-mappings/lab", R"({"network":"red"})").status, 200);
  ControllerState reloaded(rig.store);
  ASSERT_EQ(reloaded.mappings().size(), 1u);
  EXPECT_EQ(reloaded.mappings().at("lab").network, NetworkId::parse("red"));
}
