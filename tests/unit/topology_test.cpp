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
  EXPECT_EQ(blue.remote_macs[0].vtep, IpAddress::parse("192.168.100.2"));
  EXPECT_FALSE(blue.remote_macs[0].forward);
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

  j = base();
  j["ports"][1]["previous_host"] = "h8";
  EXPECT_EQ(rejected_field(j), "ports[1].previous_host");
}

TEST(Topology, AMigrationIsSeenFromItsSourceItsDestinationAndEveryOtherVtep) {
  auto j = base();
  j["hosts"].push_back({{"id", "h3"}, {"underlay_ip", "192.168.100.3"}});
  j["ports"][0]["migrating_to"] = "h3";  // a: h1 -> h3
  const auto h1 = IpAddress::parse("192.168.100.1"), h3 = IpAddress::parse("192.168.100.3");
  // The source: a is leaving; its frames go to h3 once the VM has left (forwarded from anywhere).
  auto src = build_topology(desired_state_from_json(j));
  const auto& s = src.networks.at(100);
  EXPECT_TRUE(s.leaving_iface_ids.count("a"));
  EXPECT_TRUE(s.held_iface_ids.empty());
  ASSERT_EQ(s.remote_macs.size(), 2u);
  EXPECT_EQ(s.remote_macs[0].vtep, h3);
  EXPECT_EQ(s.remote_macs[0].local_iface_id, "a");
  EXPECT_TRUE(s.remote_macs[0].forward);
  EXPECT_TRUE(s.flood_vteps.count(h3));
  // The destination: a arrives held; local senders' frames for it go to the source.
  j["host"] = "h3";
  auto dst = build_topology(desired_state_from_json(j));
  const auto& d = dst.networks.at(100);
  ASSERT_EQ(d.local_ports.size(), 1u);
  EXPECT_TRUE(d.held_iface_ids.count("a"));
  EXPECT_EQ(d.remote_macs[0].vtep, h1);
  EXPECT_FALSE(d.remote_macs[0].forward);
  // Any other VTEP: a is still at h1 only - no dual delivery; h3 is a VTEP of the network.
  j["host"] = "h2";
  auto other = build_topology(desired_state_from_json(j));
  const auto& o = other.networks.at(100);
  EXPECT_EQ(o.remote_macs[0].vtep, h1);
  EXPECT_FALSE(o.remote_macs[0].local_iface_id.has_value());
  EXPECT_TRUE(o.flood_vteps.count(h3));
  // After cutover: a runs on h3, h1 forwards what still reaches it.
  j["ports"][0].erase("migrating_to");
  j["ports"][0]["host"] = "h3";
  j["ports"][0]["previous_host"] = "h1";
  j["host"] = "h1";
  auto left = build_topology(desired_state_from_json(j));
  const auto& l = left.networks.at(100);
  EXPECT_TRUE(l.local_ports.empty());
  EXPECT_EQ(l.remote_macs[0].vtep, h3);
  EXPECT_TRUE(l.remote_macs[0].forward);
  j["host"] = "h2";
  auto later = build_topology(desired_state_from_json(j));
  EXPECT_FALSE(later.networks.at(100).remote_macs[0].forward);
  EXPECT_TRUE(later.networks.at(100).flood_vteps.count(h1)) << "h1 forwards: accept from it";
}
