// Golden tests for the OVS translation: fixtures/ovs/<case>.json (desired state + the ofports OVS
// reports) must translate to exactly fixtures/ovs/<case>.flows. CUTOVER_UPDATE_GOLDEN=1 rewrites
// the .flows files; review the diff before committing it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "json_reader.hpp"
#include "ovs_pipeline.hpp"

using namespace cutover;
using namespace cutover::overlay;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string render(const nlohmann::json& fixture) {
  auto topo = build_topology(desired_state_from_json(fixture.at("state"), "state"));
  OvsPortMap ports;  // "comment" is for the reader
  for (const auto& [k, v] : fixture.at("vm_ofports").items())
    ports.vm_ofports[k] = v.get<int64_t>();
  for (const auto& [k, v] : fixture.at("tunnel_ofports").items()) {
    ports.tunnel_ofports[IpAddress::parse(k)] = v.get<int64_t>();
  }
  std::set<std::string> departed;  // VMs stopped here for an outgoing migration (libvirt)
  if (fixture.contains("departed")) {
    for (const auto& id : fixture.at("departed")) departed.insert(id.get<std::string>());
  }
  auto desired = translate_ovs(topo, ports, departed);
  std::string out;
  for (const auto& t : desired.tunnels) {
    out += "# tunnel " + t.name + " remote_ip=" + t.remote_ip.to_string() + "\n";
  }
  for (const auto& id : desired.unbound_iface_ids) out += "# unbound port " + id + "\n";
  for (const auto& ip : desired.unbound_tunnels) out += "# unbound tunnel " + ip.to_string() + "\n";
  for (const auto& f : desired.flows) out += f.text() + "\n";
  return out;
}

}  // namespace

class OvsGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(OvsGolden, MatchesFixture) {
  const std::filesystem::path dir = CUTOVER_FIXTURES "/ovs";
  const auto json_path = dir / (GetParam() + ".json");
  const auto flows_path = dir / (GetParam() + ".flows");
  const auto actual = render(parse_json_text(read_file(json_path)));
  if (std::getenv("CUTOVER_UPDATE_GOLDEN")) {
    std::ofstream(flows_path) << actual;
  }
  ASSERT_TRUE(std::filesystem::exists(flows_path)) << flows_path;
  EXPECT_EQ(actual, read_file(flows_path)) << "golden mismatch for " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Fixtures, OvsGolden,
                         ::testing::Values("two_hosts", "two_vnis_three_hosts", "nothing_bound_yet",
                                           "migrating_port", "stateful_port"));

TEST(OvsPipeline, TunnelNamesAreStableAndShort) {
  EXPECT_EQ(tunnel_port_name(IpAddress::parse("192.168.100.2")), "cv-c0a86402");
  auto v6 = tunnel_port_name(IpAddress::parse("fd00::2"));
  EXPECT_EQ(v6.size(), 11u);
  EXPECT_EQ(v6, tunnel_port_name(IpAddress::parse("fd00:0::2")));
}

TEST(OvsPipeline, OtherVniNeverReachesLocalPort) {
  // Isolation, stated directly: every flow that outputs to a port of VNI 100 matches reg0=0x64.
  auto fixture = parse_json_text(read_file(CUTOVER_FIXTURES "/ovs/two_vnis_three_hosts.json"));
  auto topo = build_topology(desired_state_from_json(fixture.at("state")));
  OvsPortMap ports;
  ports.vm_ofports = {{"tap-b1", 5}, {"r1", 6}};
  ports.tunnel_ofports[IpAddress::parse("192.168.100.2")] = 7;
  ports.tunnel_ofports[IpAddress::parse("192.168.100.3")] = 8;
  for (const auto& f : translate_ovs(topo, ports).flows) {
    if (f.table != kL2Table) continue;
    if (f.actions.find("output:5") != std::string::npos) {
      EXPECT_NE(f.match.find("reg0=0x64"), std::string::npos) << f.text();
    }
    if (f.actions.find("output:6") != std::string::npos) {
      EXPECT_NE(f.match.find("reg0=0xc8"), std::string::npos) << f.text();
    }
    // red (VNI 200) has no port on h2 (tunnel 7): nothing of red may flood there.
    if (f.match.find("reg0=0xc8") != std::string::npos) {
      EXPECT_EQ(f.actions.find("output:7"), std::string::npos) << f.text();
    }
  }
}
