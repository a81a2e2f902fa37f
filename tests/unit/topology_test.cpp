// Unit tests for Topology: the view it builds and every inconsistency it rejects (by field).
#include <gtest/gtest.h>

#include "topology.hpp"

using namespace cutover;
using namespace cutover::overlay;
using nlohmann::json;

namespace {
json base() {
  return {{"generation", 1},
          {"host", "h1"},
          {"hosts",
           {{{"id", "h1"}, {"underlay_ip", "192.168.100.1"}},
            {{"id", "h2"}, {"underlay_ip", "192.168.100.2"}}}},
          {"networks", {{{"id", "blue"}, {"vni", 100}}, {{"id", "red"}, {"vni", 200}}}},
          {"ports",
           {{{"id", "a"}, {"mac", "52:54:00:00:00:01"}, {"network", "blue"}, {"host", "h1"}},
            {{"id", "b"}, {"mac", "52:54:00:00:00:02"}, {"network", "blue"}, {"host", "h2"}},
            {{"id", "c"}, {"mac", "52:54:00:00:00:02"}, {"network", "red"}, {"host", "h1"}}}}};
}

std::string rejected_field(const json& j) {
  try {
    build_topology(desired_state_from_json(j));
  } catch (const ParseError& e) {
    return e.field();
  }
  return "<accepted>";
}
}  // namespace

TEST(Topology, BuildsLocalAndRemoteViews) {
  auto t = build_topology(desired_state_from_json(base()));
  ASSERT_EQ(t.networks.size(), 2u);
  const auto& blue = t.networks.at(100);
  ASSERT_EQ(blue.local_ports.size(), 1u);
  EXPECT_EQ(blue.local_ports[0].id.str(), "a");
  ASSERT_EQ(blue.remote_macs.size(), 1u);
  EXPECT_EQ(blue.remote_macs[0].vteps, std::vector{IpAddress::parse("192.168.100.2")});
  EXPECT_EQ(blue.flood_vteps.size(), 1u);
  EXPECT_TRUE(t.networks.at(200).flood_vteps.empty());  // same MAC in another VNI is fine
  EXPECT_EQ(t.remote_vteps.size(), 1u);
}

TEST(Topology, RejectsInconsistentState) {
  auto j = base();
  j["host"] = "h9";
  EXPECT_EQ(rejected_field(j), "host");

  j = base();
  j["ports"][1]["mac"] = "52:54:00:00:00:01";
  EXPECT_EQ(rejected_field(j), "ports[1].mac");

  j = base();
  j["ports"][2]["network"] = "green";
  EXPECT_EQ(rejected_field(j), "ports[2].network");

  j = base();
  j["ports"][1]["host"] = "h7";
  EXPECT_EQ(rejected_field(j), "ports[1].host");

  j = base();
  j["networks"][1]["vni"] = 100;
  EXPECT_EQ(rejected_field(j), "networks[1].vni");

  j = base();
  j["networks"][1]["id"] = "blue";
  EXPECT_EQ(rejected_field(j), "networks[1].id");

  j = base();
  j["ports"][2]["id"] = "a";
  EXPECT_EQ(rejected_field(j), "ports[2].id");

  j = base();
  j["hosts"][1]["underlay_ip"] = "192.168.100.1";
  EXPECT_EQ(rejected_field(j), "hosts[1].underlay_ip");

  j = base();
  j["ports"][2]["iface_id"] = "a";
  EXPECT_EQ(rejected_field(j), "ports[2].iface_id");
}
