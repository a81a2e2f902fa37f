// Unit tests for conntrack carry-over: parsing what ovs-vswitchd prints for dump-conntrack,
// choosing the connections a port takes along, and when the source agent dumps and sends them
// (ConntrackCarrier with a canned dump instead of OVS).
#include <gtest/gtest.h>

#include "conntrack.hpp"
#include "conntrack_carrier.hpp"

using namespace cutover;
using namespace cutover::overlay;

namespace {
const char* kDump =
    "tcp,orig=(src=10.1.0.9,dst=10.1.0.3,sport=6000,dport=40012),reply=(src=10.1.0.3,dst=10.1.0.9,"
    "sport=40012,dport=6000),zone=3,protoinfo=(state=ESTABLISHED)\n"
    "tcp,orig=(src=10.1.0.3,dst=10.1.0.9,sport=40100,dport=80),reply=(src=10.1.0.9,dst=10.1.0.3,"
    "sport=80,dport=40100),id=7,zone=3,timeout=86399,protoinfo=(state=ESTABLISHED)\n"
    "tcp,orig=(src=10.1.0.3,dst=10.1.0.9,sport=40200,dport=80),reply=(src=10.1.0.9,dst=10.1.0.3,"
    "sport=80,dport=40200),zone=3,protoinfo=(state=TIME_WAIT)\n"
    "udp,orig=(src=fd00::3,dst=fd00::9,sport=5353,dport=53),reply=(src=fd00::9,dst=fd00::3,"
    "sport=53,dport=5353),zone=3\n"
    "icmp,orig=(src=10.1.0.9,dst=10.1.0.3,id=1,type=8,code=0),reply=(src=10.1.0.3,dst=10.1.0.9,"
    "id=1,type=0,code=0),zone=3\n"
    "tcp,orig=(src=10.1.0.7,dst=10.1.0.8,sport=1,dport=2),reply=(src=10.1.0.8,dst=10.1.0.7,"
    "sport=2,dport=1),zone=3,protoinfo=(state=ESTABLISHED)\n"
    "garbage line\n"
    "tcp,orig=(src=10.1.0.9,dst=10.1.0.3,sport=99999,dport=1),reply=()\n";

Port fw(const char* host) {
  Port p;
  p.id = PortId::parse("fw");
  p.mac = MacAddress::parse("52:54:00:00:00:03");
  p.ips = {IpAddress::parse("10.1.0.3"), IpAddress::parse("fd00::3")};
  p.network = NetworkId::parse("blue");
  p.iface_id = "fw";
  p.host = HostId::parse(host);
  p.ingress_allow = std::vector<IngressRule>{{"tcp", 22}};
  return p;
}
DesiredState on_s(Port p) {
  DesiredState s;
  s.host = HostId::parse("s");
  s.ports = {std::move(p)};
  return s;
}
}  // namespace

TEST(ConntrackDump, ParsesOvsFormatAndCountsWhatItSkips) {
  const auto d = parse_conntrack_dump(kDump);
  ASSERT_EQ(d.entries.size(), 6u);
  EXPECT_EQ(d.skipped, 2u);
  EXPECT_EQ(d.entries[0].protocol, "tcp");
  EXPECT_EQ(d.entries[0].src, IpAddress::parse("10.1.0.9"));
  EXPECT_EQ(d.entries[0].dport, 40012);
  EXPECT_EQ(d.entries[0].zone, 3);
  EXPECT_EQ(d.entries[0].state, "ESTABLISHED");
  EXPECT_EQ(d.entries[3].src, IpAddress::parse("fd00::3"));
  EXPECT_EQ(d.entries[4].protocol, "icmp");
}

TEST(ConntrackDump, ChoosesLiveTcpAndUdpOfThePortOrientedFromTheVm) {
  const auto conns =
      connections_to_carry(parse_conntrack_dump(kDump).entries,
                           {IpAddress::parse("10.1.0.3"), IpAddress::parse("fd00::3")});
  ASSERT_EQ(conns.size(), 3u);  // not TIME_WAIT, not icmp, not another address's connection
  const CarriedConn inbound{"tcp", IpAddress::parse("10.1.0.3"), 40012,
                            IpAddress::parse("10.1.0.9"), 6000};
  const CarriedConn outbound{"tcp", IpAddress::parse("10.1.0.3"), 40100,
                             IpAddress::parse("10.1.0.9"), 80};
  const CarriedConn dns{"udp", IpAddress::parse("fd00::3"), 5353, IpAddress::parse("fd00::9"), 53};
  EXPECT_NE(std::find(conns.begin(), conns.end(), inbound), conns.end());
  EXPECT_NE(std::find(conns.begin(), conns.end(), outbound), conns.end());
  EXPECT_NE(std::find(conns.begin(), conns.end(), dns), conns.end());
}

TEST(ConntrackDump, EmptyAndHostileInputNeverThrows) {
  EXPECT_TRUE(parse_conntrack_dump("").entries.empty());
  EXPECT_EQ(parse_conntrack_dump("tcp,orig=(src=1.2.3.4,dst=1.2.3.5,sport=-1,dport=2)").skipped,
            1u);
  EXPECT_EQ(parse_conntrack_dump(",orig=(").skipped, 1u);
  EXPECT_EQ(
      parse_conntrack_dump("tcp,orig=(src=1.2.3.4,dst=1.2.3.5,sport=1,dport=2),zone=x").skipped,
      1u);
}

TEST(ProcConntrack, ParsesTheKernelsTableAndKeepsOneZone) {
  const char* text =
      "ipv4     2 tcp      6 431999 ESTABLISHED src=10.1.0.9 dst=10.1.0.3 sport=6000 dport=40012 "
      "src=10.1.0.3 dst=10.1.0.9 sport=40012 dport=6000 [ASSURED] mark=0 zone=100 use=2\n"
      "ipv4     2 tcp      6 117 TIME_WAIT src=10.1.0.3 dst=10.1.0.9 sport=40200 dport=80 "
      "src=10.1.0.9 dst=10.1.0.3 sport=80 dport=40200 [ASSURED] mark=0 zone=100 use=2\n"
      "ipv6     10 udp      17 29 src=fd00::3 dst=fd00::9 sport=5353 dport=53 [UNREPLIED] "
      "src=fd00::9 dst=fd00::3 sport=53 dport=5353 mark=0 zone=100 use=2\n"
      "ipv4     2 icmp     1 29 src=10.1.0.9 dst=10.1.0.3 type=8 code=0 id=7 src=10.1.0.3 "
      "dst=10.1.0.9 type=0 code=0 id=7 mark=0 zone=100 use=2\n"
      "ipv4     2 tcp      6 431999 ESTABLISHED src=10.1.0.9 dst=10.1.0.3 sport=6001 dport=40013 "
      "src=10.1.0.3 dst=10.1.0.9 sport=40013 dport=6001 [ASSURED] mark=0 zone=200 use=2\n"
      "ipv4     2 udp      17 29 src=192.168.100.1 dst=192.168.100.2 sport=4789 dport=4789 "
      "[UNREPLIED] src=192.168.100.2 dst=192.168.100.1 sport=4789 dport=4789 mark=0 use=2\n"
      "ipv4     2 tcp      6 1 ESTABLISHED src=10.1.0.9 dst=10.1.0.3 sport=99999 dport=1 zone=100\n"
      "not a line\n";
  const auto dump = parse_proc_conntrack(text, 100);
  ASSERT_EQ(dump.entries.size(), 4u);
  EXPECT_EQ(dump.skipped, 2u);
  EXPECT_EQ(dump.entries[0].state, "ESTABLISHED");
  EXPECT_EQ(dump.entries[0].sport, 6000);
  EXPECT_EQ(dump.entries[0].dst.to_string(), "10.1.0.3");
  EXPECT_EQ(dump.entries[2].protocol, "udp");
  EXPECT_EQ(dump.entries[2].state, "");
  EXPECT_EQ(parse_proc_conntrack(text, 0).entries.size(), 1u) << "no zone= is zone 0";
  const auto carried = connections_to_carry(dump.entries, fw("s").ips);
  ASSERT_EQ(carried.size(), 2u);  // the TIME_WAIT and icmp entries stay behind
  EXPECT_EQ(carried[0].protocol, "tcp");
  EXPECT_EQ(carried[0].local_port, 40012);
  EXPECT_EQ(carried[0].remote_port, 6000);
  EXPECT_EQ(carried[1].local_ip.to_string(), "fd00::3");
}

TEST(ConntrackCarrier, SendsAtPrepareAndAgainAtPauseOnlyForLeavingStatefulPorts) {
  std::vector<int64_t> dumped;
  std::vector<wire::Conntrack> sent;
  agent::ConntrackCarrier c(
      [&](int64_t zone) {
        dumped.push_back(zone);
        return overlay::parse_conntrack_dump(kDump);
      },
      [&](const wire::Conntrack& ct) { sent.push_back(ct); });
  const std::map<std::string, int64_t> zones{{"fw", 3}};
  EXPECT_TRUE(c.update(on_s(fw("s")), zones, {}).empty());
  EXPECT_TRUE(sent.empty()) << "not migrating";
  auto leaving = fw("s");
  leaving.migrating_to = HostId::parse("d");
  c.update(on_s(leaving), zones, {});
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].port, "fw");
  EXPECT_EQ(sent[0].conns.size(), 3u);
  c.update(on_s(leaving), zones, {});
  EXPECT_EQ(sent.size(), 1u) << "once per phase";
  c.update(on_s(leaving), zones, {"fw"});  // the VM paused for the final copy
  EXPECT_EQ(sent.size(), 2u);
  EXPECT_EQ(dumped, (std::vector<int64_t>{3, 3}));
  c.update(on_s(leaving), {}, {"fw"});
  EXPECT_EQ(sent.size(), 2u);
  // A later migration of the same port dumps again.
  c.update(on_s(fw("s")), zones, {});
  c.update(on_s(leaving), zones, {});
  EXPECT_EQ(sent.size(), 3u);
  auto plain = leaving;
  plain.ingress_allow.reset();
  c.update(on_s(plain), zones, {});
  EXPECT_EQ(sent.size(), 3u) << "no firewall, nothing to carry";
}

TEST(ConntrackCarrier, AFailedDumpIsReportedAndRetried) {
  int calls = 0;
  std::vector<wire::Conntrack> sent;
  agent::ConntrackCarrier c(
      [&](int64_t) -> overlay::ConntrackDump {
        if (++calls == 1) throw std::runtime_error("no ovs-vswitchd control socket");
        return {};
      },
      [&](const wire::Conntrack& ct) { sent.push_back(ct); });
  auto leaving = fw("s");
  leaving.migrating_to = HostId::parse("d");
  auto errors = c.update(on_s(leaving), {{"fw", 3}}, {});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("zone 3"), std::string::npos);
  EXPECT_TRUE(sent.empty());
  EXPECT_TRUE(c.update(on_s(leaving), {{"fw", 3}}, {}).empty());
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].conns.empty());
}
