// Unit tests for cutover announcements: the frames' bytes (GARP, RARP, unsolicited NA with a
// checksum verified independently), which ports count as arrived, and the Announcer's pacing
// and reporting through a recording sink.
#include <gtest/gtest.h>

#include "announce.hpp"
#include "announcer.hpp"

using namespace cutover;
using namespace cutover::overlay;
using cutover::agent::Announcer;
using namespace std::chrono_literals;

namespace {
Port port(const char* id, const char* host, std::vector<const char*> ips = {"10.0.0.5"}) {
  Port p;
  p.id = PortId::parse(id);
  p.mac = MacAddress::parse("52:54:00:12:34:56");
  for (auto ip : ips) p.ips.push_back(IpAddress::parse(ip));
  p.network = NetworkId::parse("blue");
  p.iface_id = id;
  p.host = HostId::parse(host);
  return p;
}
DesiredState state(uint64_t gen, std::vector<Port> ports) {
  DesiredState s;
  s.generation = gen;
  s.host = HostId::parse("d");
  Network n;
  n.id = NetworkId::parse("blue");
  n.vni = Vni::from(100);
  s.networks.push_back(n);
  s.ports = std::move(ports);
  return s;
}
Port held_on_d(Port p) {
  p.migrating_to = HostId::parse("d");
  return p;
}
struct RecordingSink : agent::FrameSink {
  std::vector<std::pair<std::string, Frame>> sent;
  bool fail = false;
  void send(const Port& p, uint32_t vni, const Frame& f) override {
    if (fail) throw std::runtime_error("not bound");
    EXPECT_EQ(vni, 100u);
    sent.emplace_back(p.id.str(), f);
  }
};
uint16_t be16(const Frame& f, size_t at) { return static_cast<uint16_t>(f[at] << 8 | f[at + 1]); }
}  // namespace

TEST(AnnounceFrames, GarpIsABroadcastArpRequestForItsOwnAddress) {
  const auto f = garp_frame(MacAddress::parse("52:54:00:12:34:56"), IpAddress::parse("10.0.0.5"));
  ASSERT_EQ(f.size(), 60u);
  EXPECT_EQ(Frame(f.begin(), f.begin() + 6), Frame(6, 0xff));
  EXPECT_EQ(Frame(f.begin() + 6, f.begin() + 12), (Frame{0x52, 0x54, 0, 0x12, 0x34, 0x56}));
  EXPECT_EQ(be16(f, 12), 0x0806);
  EXPECT_EQ(be16(f, 20), 1);                                               // request
  EXPECT_EQ(Frame(f.begin() + 28, f.begin() + 32), (Frame{10, 0, 0, 5}));  // sender IP
  EXPECT_EQ(Frame(f.begin() + 32, f.begin() + 38), Frame(6, 0));           // target MAC
  EXPECT_EQ(Frame(f.begin() + 38, f.begin() + 42), (Frame{10, 0, 0, 5}));  // target IP
}

TEST(AnnounceFrames, RarpCarriesTheMacAsSenderAndTarget) {
  const auto f = rarp_frame(MacAddress::parse("52:54:00:12:34:56"));
  EXPECT_EQ(be16(f, 12), 0x8035);
  EXPECT_EQ(be16(f, 20), 3);  // reverse request
  EXPECT_EQ(Frame(f.begin() + 22, f.begin() + 28), Frame(f.begin() + 32, f.begin() + 38));
}

TEST(AnnounceFrames, NeighbourAdvertisementHasOverrideTargetOptionAndValidChecksum) {
  const auto ip = IpAddress::parse("2001:db8::5");
  const auto f = unsolicited_na_frame(MacAddress::parse("52:54:00:12:34:56"), ip);
  ASSERT_EQ(f.size(), 14u + 40 + 32);
  EXPECT_EQ(Frame(f.begin(), f.begin() + 6), (Frame{0x33, 0x33, 0, 0, 0, 1}));
  EXPECT_EQ(be16(f, 12), 0x86dd);
  EXPECT_EQ(f[14 + 6], 58);   // next header ICMPv6
  EXPECT_EQ(f[14 + 7], 255);  // hop limit, required for ND
  EXPECT_EQ(f[54], 136);      // neighbour advertisement
  EXPECT_EQ(f[58], 0x20);     // Override, not Solicited, not Router
  EXPECT_EQ(Frame(f.begin() + 62, f.begin() + 78), Frame(ip.bytes().begin(), ip.bytes().end()));
  EXPECT_EQ(f[78], 2);  // target link-layer address option
  // One's complement sum over pseudo-header + message including the checksum must be 0xffff.
  uint32_t sum = 0;
  for (size_t i = 22; i < 54; i += 2) sum += be16(f, i);  // src + dst addresses
  sum += 32 + 58;
  for (size_t i = 54; i < f.size(); i += 2) sum += be16(f, i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  EXPECT_EQ(sum, 0xffffu);
}

TEST(AnnounceFrames, OneFramePerAddressPlusRarp) {
  const auto frames = announcement_frames(port("vm", "d", {"10.0.0.5", "2001:db8::5"}));
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(be16(frames[0], 12), 0x0806);
  EXPECT_EQ(be16(frames[1], 12), 0x86dd);
  EXPECT_EQ(be16(frames[2], 12), 0x8035);
}

TEST(ArrivalTracker, AnnouncesAtCutoverOnlyOnceAndOnlyWhenBound) {
  ArrivalTracker t;
  const std::set<std::string> bound{"vm"};
  EXPECT_TRUE(t.observe(state(1, {port("vm", "s")}), {}).empty());
  EXPECT_TRUE(t.observe(state(2, {held_on_d(port("vm", "s"))}), bound).empty()) << "held";
  auto here = port("vm", "d");
  here.previous_host = HostId::parse("s");
  EXPECT_TRUE(t.observe(state(3, {here}), {}).empty()) << "not bound yet";
  EXPECT_EQ(t.observe(state(3, {here}), bound), std::vector<PortId>{PortId::parse("vm")});
  EXPECT_TRUE(t.observe(state(4, {port("vm", "d")}), bound).empty()) << "already announced";
}

TEST(ArrivalTracker, AnnouncesAPortMovedHereWithoutPrepareButNotOnFirstStateOrNewPorts) {
  ArrivalTracker t;
  EXPECT_TRUE(t.observe(state(1, {port("vm", "d"), port("x", "s")}), {"vm"}).empty());
  EXPECT_TRUE(
      t.observe(state(2, {port("vm", "d"), port("x", "s"), port("new", "d")}), {"vm", "new"})
          .empty());
  EXPECT_EQ(
      t.observe(state(3, {port("vm", "d"), port("x", "d"), port("new", "d")}), {"vm", "new", "x"}),
      std::vector<PortId>{PortId::parse("x")});
}

TEST(ArrivalTracker, RolledBackMigrationIsNotAnnounced) {
  ArrivalTracker t;
  t.observe(state(1, {port("vm", "s")}), {});
  t.observe(state(2, {held_on_d(port("vm", "s"))}), {"vm"});
  EXPECT_TRUE(t.observe(state(3, {port("vm", "s")}), {}).empty());
}

TEST(Announcer, PacesRoundsOnTheScheduleAndReportsEach) {
  Announcer a;
  RecordingSink sink;
  const auto t0 = Announcer::Clock::time_point{} + 1h;
  a.after_apply(state(1, {port("vm", "s")}), {}, t0);
  a.after_apply(state(2, {held_on_d(port("vm", "s"))}), {"vm"}, t0);
  EXPECT_FALSE(a.next_due());
  a.after_apply(state(3, {port("vm", "d", {"10.0.0.5", "2001:db8::5"})}), {"vm"}, t0);
  ASSERT_EQ(a.next_due(), t0);
  auto r = a.run_due(t0, sink);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].port, "vm");
  EXPECT_EQ(r[0].round, 0u);
  EXPECT_EQ(r[0].rounds, 4u);
  EXPECT_EQ(r[0].frames, 3u);
  EXPECT_EQ(a.next_due(), t0 + 10ms);
  EXPECT_TRUE(a.run_due(t0 + 9ms, sink).empty());
  EXPECT_EQ(a.run_due(t0 + 10ms, sink).size(), 1u);
  EXPECT_EQ(a.next_due(), t0 + 50ms);
  // Late: both remaining rounds are still sent (counted), none is skipped.
  EXPECT_EQ(a.run_due(t0 + 500ms, sink).size(), 2u);
  EXPECT_FALSE(a.next_due());
  EXPECT_EQ(sink.sent.size(), 12u);
}

TEST(Announcer, StopsWhenThePortLeavesAndCountsFailures) {
  Announcer a;
  RecordingSink sink;
  const auto t0 = Announcer::Clock::time_point{} + 1h;
  a.after_apply(state(1, {port("vm", "s")}), {}, t0);
  a.after_apply(state(2, {port("vm", "d")}), {"vm"}, t0);
  sink.fail = true;
  auto r = a.run_due(t0, sink);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].frames, 0u);
  EXPECT_EQ(r[0].failed, 2u);
  EXPECT_EQ(r[0].error, "not bound");
  a.after_apply(state(3, {port("vm", "s")}), {}, t0 + 5ms);  // moved away again
  EXPECT_FALSE(a.next_due());
}
