// Unit tests for the strict JSON codecs: round trips, and every rejection names its field.
#include <gtest/gtest.h>

#include "desired_state.hpp"
#include "json_codec.hpp"
#include "json_reader.hpp"
#include "parse_error.hpp"

using namespace cutover;
using nlohmann::json;

namespace {
// Returns the field named by the ParseError that fn throws, or "<no error>".
template <typename Fn>
std::string error_field(Fn&& fn) {
  try {
    fn();
  } catch (const ParseError& e) {
    return e.field();
  }
  return "<no error>";
}

json good_port() {
  return {{"id", "vm1-eth0"},  {"mac", "52:54:00:00:00:01"},  {"ips", {"10.1.0.1", "fd00::1"}},
          {"network", "blue"}, {"labels", {{"tier", "web"}}}, {"host", "hv1"}};
}
}  // namespace

TEST(JsonCodec, HostRoundTrip) {
  auto h = host_from_json({{"id", "hv1"},
                           {"underlay_ip", "192.168.0.1"},
                           {"backend", "linux"},
                           {"labels", {{"zone", "a"}}}});
  EXPECT_EQ(h.backend, Backend::linux);
  EXPECT_EQ(host_from_json(to_json(h)), h);
  EXPECT_EQ(host_from_json({{"id", "hv2"}, {"underlay_ip", "fd00::2"}}).backend, Backend::ovs);
}

TEST(JsonCodec, HostRejects) {
  EXPECT_EQ(error_field([] { host_from_json({{"underlay_ip", "1.2.3.4"}}); }), "id");
  EXPECT_EQ(error_field([] {
              host_from_json({{"id", "h"}, {"underlay_ip", "1.2.3"}});
            }),
            "underlay_ip");
  EXPECT_EQ(error_field([] {
              host_from_json({{"id", "h"}, {"underlay_ip", "1.2.3.4"}, {"backend", "vpp"}});
            }),
            "backend");
  EXPECT_EQ(error_field([] {
              host_from_json({{"id", "h"}, {"underlay_ip", "1.2.3.4"}, {"colour", "red"}});
            }),
            "colour");
  EXPECT_EQ(error_field([] { host_from_json(json::array()); }), "");
  EXPECT_EQ(error_field([] {
              host_from_json({{"id", "h"}, {"underlay_ip", "1.2.3.4"}, {"labels", {{"k", 1}}}});
            }),
            "labels.k");
  EXPECT_EQ(error_field([] {
              host_from_json({{"id", "h"}, {"underlay_ip", "1.2.3.4"}, {"labels", {{"a b", "x"}}}});
            }),
            "labels.a b");
}

TEST(JsonCodec, NetworkRoundTripAndDefaults) {
  auto n = network_from_json({{"id", "blue"}, {"vni", 100}});
  EXPECT_EQ(n.name, "blue");
  EXPECT_EQ(n.mtu, 1450);
  EXPECT_EQ(n.vni.value(), 100u);
  EXPECT_EQ(network_from_json(to_json(n)), n);
}

TEST(JsonCodec, NetworkRejects) {
  EXPECT_EQ(error_field([] { network_from_json({{"id", "b"}, {"vni", 0}}); }), "vni");
  EXPECT_EQ(error_field([] { network_from_json({{"id", "b"}, {"vni", 16777216}}); }), "vni");
  EXPECT_EQ(error_field([] { network_from_json({{"id", "b"}, {"vni", "100"}}); }), "vni");
  EXPECT_EQ(error_field([] { network_from_json({{"id", "b"}, {"vni", 1.5}}); }), "vni");
  EXPECT_EQ(error_field([] { network_from_json({{"id", "b"}}); }), "vni");
  EXPECT_EQ(error_field([] {
              network_from_json({{"id", "b"}, {"vni", 5}, {"mtu", 100000}});
            }),
            "mtu");
  EXPECT_EQ(error_field([] {
              network_from_json({{"id", "b"}, {"vni", 5}, {"mtu", 18446744073709551615ull}});
            }),
            "mtu");
}

TEST(JsonCodec, PortRoundTrip) {
  auto p = port_from_json(good_port());
  EXPECT_EQ(p.iface_id, "vm1-eth0");  // defaults to the id
  EXPECT_EQ(p.ips.size(), 2u);
  ASSERT_TRUE(p.host.has_value());
  EXPECT_EQ(port_from_json(to_json(p)), p);
}

TEST(JsonCodec, PortRejectsNamingTheField) {
  auto with = [](const char* key, json value) {
    auto j = good_port();
    j[key] = value;
    return error_field([&] { port_from_json(j, "ports[3]"); });
  };
  EXPECT_EQ(with("mac", "52:54:00:00:00"), "ports[3].mac");
  EXPECT_EQ(with("mac", "01:00:5e:00:00:01"), "ports[3].mac");
  EXPECT_EQ(with("mac", "00:00:00:00:00:00"), "ports[3].mac");
  EXPECT_EQ(with("ips", json::array({"10.0.0.1", "nope"})), "ports[3].ips[1]");
  EXPECT_EQ(with("ips", json::array({7})), "ports[3].ips[0]");
  EXPECT_EQ(with("ips", "10.0.0.1"), "ports[3].ips");
  EXPECT_EQ(with("network", "bad id"), "ports[3].network");
  EXPECT_EQ(with("iface_id", "a,b"), "ports[3].iface_id");
  EXPECT_EQ(with("iface_id", ""), "ports[3].iface_id");
  EXPECT_EQ(with("host", 5), "ports[3].host");
  EXPECT_EQ(with("extra", true), "ports[3].extra");
  EXPECT_EQ(with("ingress_allow", json::array({{{"protocol", "sctp"}}})),
            "ports[3].ingress_allow[0].protocol");
  EXPECT_EQ(with("ingress_allow", json::array({{{"protocol", "tcp"}, {"port", 70000}}})),
            "ports[3].ingress_allow[0].port");
  EXPECT_EQ(with("ingress_allow", json::array({{{"protocol", "icmp"}, {"port", 1}}})),
            "ports[3].ingress_allow[0].port");
  const json conn = {{"protocol", "tcp"},
                     {"local_ip", "10.1.0.1"},
                     {"local_port", 40000},
                     {"remote_ip", "10.9.9.9"},
                     {"remote_port", 80}};
  auto conn_with = [&](const char* key, json value) {
    json c = conn;
    c[key] = value;
    return with("carried_conns", json::array({conn, c}));
  };
  EXPECT_EQ(conn_with("local_ip", "10.1.0.2"), "ports[3].carried_conns[1].local_ip");
  EXPECT_EQ(conn_with("remote_ip", "fd00::9"), "ports[3].carried_conns[1].remote_ip");
  EXPECT_EQ(conn_with("remote_port", 0), "ports[3].carried_conns[1].remote_port");
  EXPECT_EQ(conn_with("protocol", "icmp"), "ports[3].carried_conns[1].protocol");
}

TEST(JsonCodec, PortQosRoundTripAndRejects) {
  auto j = good_port();
  j["qos"] = {{"to_vm", {{"kbit_s", 8000}}}, {"from_vm", {{"kbit_s", 2000}, {"burst_kbit", 400}}}};
  auto p = port_from_json(j);
  EXPECT_EQ(p.qos.to_vm, (RateLimit{8000, 0}));
  EXPECT_EQ(burst_kbit(*p.qos.to_vm), 800);
  EXPECT_EQ(p.qos.from_vm, (RateLimit{2000, 400}));
  EXPECT_EQ(port_from_json(to_json(p)), p);
  EXPECT_FALSE(to_json(port_from_json(good_port())).contains("qos"));
  auto with = [&](json qos) {
    auto k = good_port();
    k["qos"] = qos;
    return error_field([&] { port_from_json(k, "ports[0]"); });
  };
  EXPECT_EQ(with({{"to_vm", {{"kbit_s", 0}}}}), "ports[0].qos.to_vm.kbit_s");
  EXPECT_EQ(with({{"to_vm", {{"kbit_s", 10000001}}}}), "ports[0].qos.to_vm.kbit_s");
  EXPECT_EQ(with({{"from_vm", {{"kbit_s", 10}, {"burst_kbit", 8}}}}),
            "ports[0].qos.from_vm.burst_kbit");
  EXPECT_EQ(with({{"from_vm", {{"rate", 10}}}}), "ports[0].qos.from_vm.kbit_s");
  EXPECT_EQ(with({{"sideways", {{"kbit_s", 10}}}}), "ports[0].qos.sideways");
  EXPECT_EQ(with("fast"), "ports[0].qos");
}

TEST(JsonCodec, StatefulPortRoundTrip) {
  auto j = good_port();
  j["ingress_allow"] = json::array({{{"protocol", "tcp"}, {"port", 22}}, {{"protocol", "icmp"}}});
  j["carried_conns"] = json::array({{{"protocol", "udp"},
                                     {"local_ip", "fd00::1"},
                                     {"local_port", 5353},
                                     {"remote_ip", "fd00::9"},
                                     {"remote_port", 53}}});
  auto p = port_from_json(j);
  ASSERT_TRUE(p.ingress_allow.has_value());
  EXPECT_EQ(p.ingress_allow->size(), 2u);
  EXPECT_EQ(p.carried_conns.size(), 1u);
  EXPECT_EQ(port_from_json(to_json(p)), p);
  j["ingress_allow"] = json::array();  // stateful, nothing new allowed: differs from absent
  auto closed = port_from_json(j);
  ASSERT_TRUE(closed.ingress_allow.has_value());
  EXPECT_TRUE(closed.ingress_allow->empty());
  EXPECT_EQ(port_from_json(to_json(closed)), closed);
}

TEST(JsonCodec, MigrationRoundTripAndRejects) {
  Migration m;
  m.id = MigrationId::parse("m1");
  m.port = PortId::parse("p1");
  m.source = HostId::parse("a");
  m.destination = HostId::parse("b");
  m.state = MigrationState::rolled_back;
  m.reason = "destination never acknowledged";
  m.timeline["requested"] = 1700000000000000;
  EXPECT_EQ(migration_from_json(to_json(m)), m);
  auto j = to_json(m);
  j["state"] = "flying";
  EXPECT_EQ(error_field([&] { migration_from_json(j); }), "state");
  j = to_json(m);
  j["timeline"]["requested"] = -1;
  EXPECT_EQ(error_field([&] { migration_from_json(j); }), "timeline.requested");
  EXPECT_FALSE(to_json(m).contains("measured")) << "absent until posted";
  m.measured = Measurement{1000, 15000, 3, 8, 7, "scripts/lab"};
  EXPECT_EQ(migration_from_json(to_json(m)), m);
  j = to_json(m);
  j["measured"]["lost"] = 15001;
  EXPECT_EQ(error_field([&] { migration_from_json(j); }), "measured.lost");
}

TEST(JsonCodec, DesiredStateRoundTripAndPaths) {
  json j = {{"generation", 7},
            {"host", "hv1"},
            {"hosts", {{{"id", "hv1"}, {"underlay_ip", "192.168.0.1"}}}},
            {"networks", {{{"id", "blue"}, {"vni", 100}}}},
            {"ports", {good_port()}}};
  auto d = desired_state_from_json(j);
  EXPECT_EQ(d.generation, 7u);
  EXPECT_EQ(desired_state_from_json(to_json(d)), d);
  j["ports"][0]["mac"] = "x";
  EXPECT_EQ(error_field([&] { desired_state_from_json(j); }), "ports[0].mac");
  j["ports"] = json::object();
  EXPECT_EQ(error_field([&] { desired_state_from_json(j); }), "ports");
  j.erase("ports");
  j["generation"] = -1;
  EXPECT_EQ(error_field([&] { desired_state_from_json(j); }), "generation");
}

TEST(JsonCodec, MalformedTextGivesOffset) {
  try {
    parse_json_text("{\"a\": ");
    FAIL() << "expected ParseError";
  } catch (const ParseError& e) {
    EXPECT_NE(std::string(e.what()).find("malformed JSON at byte"), std::string::npos);
  }
  EXPECT_NO_THROW(parse_json_text("{}"));
  // Found by fuzz_wire: a number overflowing a double is out_of_range, not parse_error.
  EXPECT_THROW(parse_json_text("{\"host\": 66666666e6666666}"), ParseError);
}
