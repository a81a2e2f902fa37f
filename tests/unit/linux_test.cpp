// Unit tests for the Linux dataplane: the pure plan (bridges, VXLAN devices, FDB incl. dual
// delivery and BUM replication) and LinuxReconciler over FakeNetlinkTables (converge, adopt
// without changes, foreign devices untouched, failures retried, late taps, rejection).
#include <gtest/gtest.h>

#include "fake_netlink_tables.hpp"
#include "linux_firewall.hpp"
#include "linux_plan.hpp"
#include "linux_reconciler.hpp"

using namespace cutover;
using namespace cutover::agent;
using namespace cutover::overlay;
using cutover::testing::FakeNetlinkTables;

namespace {
DesiredState state(bool migrating = false) {
  nlohmann::json j = {
      {"generation", 4},
      {"host", "h1"},
      {"hosts",
       {{{"id", "h1"}, {"underlay_ip", "192.168.100.1"}},
        {{"id", "h2"}, {"underlay_ip", "192.168.100.2"}},
        {{"id", "h3"}, {"underlay_ip", "192.168.100.3"}}}},
      {"networks", {{{"id", "blue"}, {"vni", 100}}, {{"id", "red"}, {"vni", 200}}}},
      {"ports",
       {{{"id", "a"}, {"mac", "52:54:00:00:00:01"}, {"network", "blue"}, {"host", "h1"}},
        {{"id", "b"}, {"mac", "52:54:00:00:00:02"}, {"network", "blue"}, {"host", "h2"}},
        {{"id", "r"}, {"mac", "52:54:00:00:00:03"}, {"network", "red"}, {"host", "h1"}}}}};
  if (migrating) j["ports"][1]["migrating_to"] = "h3";
  return desired_state_from_json(j);
}
NlFdb fdb(const char* dev, const char* mac, const char* dst) {
  return {dev, MacAddress::parse(mac), IpAddress::parse(dst)};
}
}  // namespace

TEST(LinuxPlan, BridgesVxlansAndFdbToEachMacsOneHost) {
  auto topo = build_topology(state(true));
  auto plan = plan_linux(topo, {{"a", "tap-a"}});
  ASSERT_EQ(plan.bridges.size(), 2u);
  EXPECT_EQ(plan.bridges[0].name, "cvb100");
  EXPECT_EQ(plan.vxlans[0].name, "cvx100");
  EXPECT_EQ(plan.vxlans[0].local, IpAddress::parse("192.168.100.1"));
  EXPECT_EQ(plan.vxlans[0].bridge, "cvb100");
  ASSERT_EQ(plan.ports.size(), 1u);
  EXPECT_EQ(plan.ports[0].ifname, "tap-a");
  EXPECT_EQ(plan.unbound_iface_ids, std::vector<std::string>{"r"});
  const MacAddress b = MacAddress::parse("52:54:00:00:00:02");
  const MacAddress zero;
  // b moves h2 -> h3: its frames still go to h2 only (no dual delivery; h2 forwards them once
  // its VM has stopped); h3 is a VTEP of blue for BUM traffic.
  std::set<LinuxFdb> expected = {
      {"cvx100", b, IpAddress::parse("192.168.100.2")},
      {"cvx100", zero, IpAddress::parse("192.168.100.2")},
      {"cvx100", zero, IpAddress::parse("192.168.100.3")},
  };
  EXPECT_EQ(plan.fdb, expected);  // red has no remote VTEP: no entries at all
  // Not migrating: one unicast entry to its one host.
  auto still = plan_linux(build_topology(state(false)), {{"a", "tap-a"}});
  EXPECT_TRUE(still.fdb.count({"cvx100", b, IpAddress::parse("192.168.100.2")}));
  EXPECT_FALSE(still.fdb.count({"cvx100", b, IpAddress::parse("192.168.100.3")}));
}

TEST(LinuxReconciler, ConvergesThenAdoptsWithoutChanges) {
  FakeNetlinkTables nl;
  nl.add_tap("tap-a", "iface-id=a");
  nl.add_tap("r");  // named after its iface-id
  LinuxReconciler rec(nl);
  auto r = rec.reconcile(state());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.waiting_for.empty());
  EXPECT_EQ(nl.find("tap-a").master, "cvb100");
  EXPECT_EQ(nl.find("r").master, "cvb200");
  EXPECT_EQ(nl.find("cvx100").master, "cvb100");
  EXPECT_TRUE(nl.find("cvx100").up);
  EXPECT_TRUE(nl.fdb_.count(fdb("cvx100", "52:54:00:00:00:02", "192.168.100.2")));
  EXPECT_TRUE(nl.fdb_.count(fdb("cvx100", "00:00:00:00:00:00", "192.168.100.2")));
  const int ops = nl.ops;
  LinuxReconciler restarted(nl);
  auto again = restarted.reconcile(state());
  ASSERT_TRUE(again.ok);
  EXPECT_EQ(again.added + again.modified + again.removed, 0u);
  EXPECT_EQ(nl.ops, ops) << "an unchanged state must not touch the kernel";
}

TEST(LinuxReconciler, RemovesWhatIsNoLongerWantedAndLeavesForeignAlone) {
  FakeNetlinkTables nl;
  nl.add_tap("tap-a", "iface-id=a");
  nl.links_.push_back({"br-foreign", "bridge", "", "", true, 0, std::nullopt, 0, false});
  nl.links_.push_back({"vx-foreign", "vxlan", "br-foreign", "", true, 9,
                       IpAddress::parse("192.168.100.1"), 4789, false});
  nl.fdb_.insert(fdb("vx-foreign", "00:00:00:00:00:00", "192.168.100.9"));
  LinuxReconciler rec(nl);
  ASSERT_TRUE(rec.reconcile(state()).ok);
  auto s = state();
  s.ports.erase(s.ports.begin() + 1);  // b gone: no remote in blue
  s.ports.pop_back();                  // r gone: red unused
  s.networks.pop_back();
  auto r = rec.reconcile(s);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_FALSE(nl.has("cvb200"));
  EXPECT_FALSE(nl.has("cvx200"));
  EXPECT_TRUE(nl.fdb(std::vector<std::string>{"cvx100"}).empty());
  EXPECT_TRUE(nl.has("br-foreign"));
  EXPECT_EQ(nl.fdb_.count(fdb("vx-foreign", "00:00:00:00:00:00", "192.168.100.9")), 1u);
}

TEST(LinuxReconciler, FailureNamesObjectAndRetrySucceeds) {
  FakeNetlinkTables nl;
  nl.add_tap("tap-a", "iface-id=a");
  nl.fail_at_op = 3;
  LinuxReconciler rec(nl);
  auto r = rec.reconcile(state());
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.rejected);
  EXPECT_NE(r.error.find("Operation not permitted"), std::string::npos) << r.error;
  auto retry = rec.reconcile(state());
  ASSERT_TRUE(retry.ok) << retry.error;
  EXPECT_EQ(nl.find("tap-a").master, "cvb100");
}

TEST(LinuxReconciler, RefusesToAdoptAForeignDeviceWithOurName) {
  FakeNetlinkTables nl;
  nl.links_.push_back({"cvb100", "bridge", "", "", true, 0, std::nullopt, 0, false});
  LinuxReconciler rec(nl);
  auto r = rec.reconcile(state());
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("not owned by cutover"), std::string::npos);
}

TEST(LinuxReconciler, LateTapIsEnslavedAndBadStateRejectedWhole) {
  FakeNetlinkTables nl;
  LinuxReconciler rec(nl);
  auto r = rec.reconcile(state());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.awaiting_taps.size(), 2u);
  // Devices and FDB entries are all there once netlink ACKed them: nothing else to wait for.
  EXPECT_TRUE(r.waiting_for.empty());
  EXPECT_TRUE(r.applied());
  nl.add_tap("tap-a", "iface-id=a");
  r = rec.reconcile(state());
  EXPECT_EQ(nl.find("tap-a").master, "cvb100");
  EXPECT_EQ(r.bound_ports, std::vector<std::string>{"a"});
  const int ops = nl.ops;
  auto bad = state();
  bad.networks[1].vni = bad.networks[0].vni;
  auto rej = rec.reconcile(bad);
  EXPECT_TRUE(rej.rejected);
  EXPECT_EQ(rej.error_field, "networks[1].vni");
  EXPECT_EQ(nl.ops, ops);
}

TEST(LinuxReconciler, ArrivingPortIsHeldOffTheBridgeUntilCutover) {
  // h1 is the destination of b (h2 -> h1). Its tap appears at the prepare; until cutover it
  // stays off the bridge (what h2 relays is written into it by the agent) and local senders'
  // frames for b keep going to h2; then it is delivered here.
  auto s = state();
  s.ports[1].migrating_to = HostId::parse("h1");
  FakeNetlinkTables nl;
  nl.add_tap("tap-a", "iface-id=a");
  LinuxReconciler rec(nl);
  ASSERT_TRUE(rec.reconcile(s).ok);
  EXPECT_TRUE(nl.fdb_.count(fdb("cvx100", "52:54:00:00:00:02", "192.168.100.2")));
  nl.add_tap("b");
  auto held = rec.reconcile(s);
  ASSERT_TRUE(held.ok);
  EXPECT_EQ(nl.find("b").master, "");
  EXPECT_TRUE(nl.fdb_.count(fdb("cvx100", "52:54:00:00:00:02", "192.168.100.2")));
  EXPECT_NE(std::find(held.bound_ports.begin(), held.bound_ports.end(), "b"),
            held.bound_ports.end());
  s.ports[1].host = HostId::parse("h1");  // cut over
  s.ports[1].migrating_to.reset();
  s.ports[1].previous_host = HostId::parse("h2");
  ASSERT_TRUE(rec.reconcile(s).ok);
  EXPECT_FALSE(nl.fdb_.count(fdb("cvx100", "52:54:00:00:00:02", "192.168.100.2")));
  EXPECT_EQ(nl.find("b").master, "cvb100");
}

TEST(LinuxPlan, ALeavingPortIsDeliveredHereWhileItsTapIsHereThenByTheDestination) {
  // a moves h1 -> h3. While its tap is here nothing for it goes to a tunnel; once QEMU is gone,
  // local senders' frames for it take the VXLAN device to h3.
  auto s = state();
  s.ports[0].migrating_to = HostId::parse("h3");
  const auto a = MacAddress::parse("52:54:00:00:00:01");
  auto with_tap = plan_linux(build_topology(s), {{"a", "tap-a"}});
  EXPECT_EQ(with_tap.ports.size(), 1u);
  EXPECT_FALSE(with_tap.fdb.count({"cvx100", a, IpAddress::parse("192.168.100.3")}));
  auto gone = plan_linux(build_topology(s), {});
  EXPECT_TRUE(gone.ports.empty());
  EXPECT_TRUE(gone.fdb.count({"cvx100", a, IpAddress::parse("192.168.100.3")}));
}

TEST(LinuxReconciler, ALocalVmsMacIsPinnedToItsTapOnceAndAgainIfLost) {
  // Pinned, the bridge never sends the VM's frames where it once learned the MAC (behind the
  // VXLAN port, while the VM ran on another host).
  FakeNetlinkTables nl;
  nl.add_tap("tap-a", "iface-id=a");
  LinuxReconciler rec(nl);
  ASSERT_TRUE(rec.reconcile(state()).ok);
  EXPECT_TRUE(nl.pins_.count({"tap-a", MacAddress::parse("52:54:00:00:00:01")}));
  const int ops = nl.ops;
  auto again = rec.reconcile(state());
  EXPECT_EQ(again.added + again.modified + again.removed, 0u);
  EXPECT_EQ(nl.ops, ops);
  nl.pins_.clear();  // e.g. flushed by hand
  ASSERT_TRUE(rec.reconcile(state()).ok);
  EXPECT_EQ(nl.pins_.size(), 1u);
}

TEST(LinuxReconciler, RateLimitsFollowThePortOntoItsTapAndAnIfbAndLeaveWithIt) {
  // a: 8 Mbit/s to the VM (tbf on its tap), 2 Mbit/s from it (ingress -> our ifb, tbf there).
  auto s = state();
  s.ports[0].qos.to_vm = RateLimit{8000, 0};
  s.ports[0].qos.from_vm = RateLimit{2000, 400};
  FakeNetlinkTables nl;
  nl.add_tap("tap-a", "iface-id=a");
  nl.add_tap("r");
  LinuxReconciler rec(nl);
  auto r = rec.reconcile(s);
  ASSERT_TRUE(r.ok) << r.error;
  const auto ifb = linux_ifb_name("tap-a");
  EXPECT_EQ(ifb.size(), 11u);
  ASSERT_TRUE(nl.has(ifb));
  EXPECT_EQ(nl.find(ifb).kind, "ifb");
  EXPECT_EQ(nl.tc_["tap-a"].tbf, (NlTbf{8000 * 125, 800 * 125}));  // default burst: 100 ms
  EXPECT_EQ(nl.tc_["tap-a"].redirect_to, ifb);
  EXPECT_EQ(nl.tc_[ifb].tbf, (NlTbf{2000 * 125, 400 * 125}));

  // The kernel reports buckets rounded: close enough is left alone.
  nl.tc_["tap-a"].tbf->burst_bytes += 40;
  const int ops = nl.ops;
  auto again = rec.reconcile(s);
  ASSERT_TRUE(again.ok);
  EXPECT_EQ(nl.ops, ops) << "unchanged limits must not touch the kernel";

  // A changed rate is replaced; from_vm dropped: the redirect goes, then the ifb.
  s.ports[0].qos.to_vm->kbit_s = 4000;
  s.ports[0].qos.from_vm.reset();
  ASSERT_TRUE(rec.reconcile(s).ok);
  EXPECT_EQ(nl.tc_["tap-a"].tbf->rate_bytes_s, 4000 * 125);
  EXPECT_EQ(nl.tc_["tap-a"].redirect_to, "");
  EXPECT_FALSE(nl.has(ifb));

  // The port leaves this host (migrated away, tap still here for a moment): limits removed.
  s.ports[0].host = HostId::parse("h2");
  ASSERT_TRUE(rec.reconcile(s).ok);
  EXPECT_FALSE(nl.tc_["tap-a"].tbf);
  EXPECT_FALSE(nl.tc_["r"].tbf) << "a port without limits gets none";
}

TEST(LinuxReconciler, AnArrivingPortGetsItsRateLimitsWhileHeld) {
  // b arrives h2 -> h1: its tap is off the bridge until cutover, but its limits are installed
  // at once (before the pause), so the VM resumes here already limited.
  auto s = state();
  s.ports[1].migrating_to = HostId::parse("h1");
  s.ports[1].qos.to_vm = RateLimit{1000, 0};
  FakeNetlinkTables nl;
  nl.add_tap("b");
  LinuxReconciler rec(nl);
  ASSERT_TRUE(rec.reconcile(s).ok);
  EXPECT_EQ(nl.find("b").master, "");
  EXPECT_EQ(nl.tc_["b"].tbf, (NlTbf{1000 * 125, 100 * 125}));
}

TEST(LinuxReconciler, AForeignDeviceWithOurIfbNameIsRefused) {
  auto s = state();
  s.ports[0].qos.from_vm = RateLimit{2000, 0};
  FakeNetlinkTables nl;
  nl.add_tap("tap-a", "iface-id=a");
  nl.links_.push_back({linux_ifb_name("tap-a"), "ifb", "", "", true, 0, std::nullopt, 0, false});
  LinuxReconciler rec(nl);
  auto r = rec.reconcile(s);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("not cutover's ifb"), std::string::npos) << r.error;
}

namespace {
// Port a (blue, here) with a firewall: ssh and ping in, one connection carried from its source.
DesiredState stateful_state() {
  auto s = state();
  for (auto& p : s.ports) {
    if (p.id.str() != "a") continue;
    p.ips = {IpAddress::parse("10.1.0.1")};
    p.ingress_allow = std::vector<IngressRule>{{"tcp", 22}, {"icmp", 0}, {"udp", 0}, {"tcp", 22}};
    p.carried_conns = {
        {"tcp", IpAddress::parse("10.1.0.1"), 5100, IpAddress::parse("10.1.0.9"), 40001},
        {"udp", IpAddress::parse("fd00::1"), 53, IpAddress::parse("fd00::9"), 5353}};
  }
  return s;
}
}  // namespace

TEST(LinuxFirewall, AStatefulPortGetsItsChainAndEveryNetworkItsZone) {
  const auto topo = overlay::build_topology(stateful_state());
  const auto fw = overlay::plan_linux_firewall(topo);
  EXPECT_EQ(fw.ports, 1u);
  EXPECT_EQ(fw.ct_zones, (std::map<std::string, int64_t>{{"a", 100}}));
  const auto& r = fw.ruleset;
  for (const char* line : {
           "table inet cutover {",
           "type filter hook prerouting priority raw; policy accept;",
           "iifname \"cvb100\" ct zone set 100",
           "iifname \"cvb200\" ct zone set 200",
           "type filter hook forward priority filter; policy accept;",
           "ether daddr 52:54:00:00:00:01 jump port_0",
           "ct state established,related accept",
           "ct state invalid drop",
           "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept",
           "ct state new tcp dport 22 accept",
           "ct state new meta l4proto { icmp, ipv6-icmp } accept",
           "ct state new meta l4proto udp accept",
           "ct state new ip saddr 10.1.0.9 ip daddr 10.1.0.1 tcp sport 40001 tcp dport 5100 accept",
           "ct state new ip6 saddr fd00::9 ip6 daddr fd00::1 udp sport 5353 udp dport 53 accept",
       }) {
    EXPECT_NE(r.find(line), std::string::npos) << line << " missing from\n" << r;
  }
  EXPECT_EQ(r.find("tcp dport 22 accept"), r.rfind("tcp dport 22 accept")) << "rules de-duplicated";
  EXPECT_EQ(r.find("52:54:00:00:00:02"), std::string::npos) << "b is remote: not filtered here";
  EXPECT_EQ(r.find("52:54:00:00:00:03"), std::string::npos) << "r has no firewall";
  // Tagged with a hash of its chains, which nft lists back: a restarted agent adopts it.
  const auto tag = overlay::linux_firewall_tag_of(r);
  EXPECT_EQ(tag.rfind("cutover ", 0), 0u) << tag;
  EXPECT_NE(r.find("comment \"" + tag + "\""), std::string::npos);
  auto other = stateful_state();
  other.ports[0].ingress_allow->push_back({"tcp", 23});
  EXPECT_NE(overlay::linux_firewall_tag_of(
                overlay::plan_linux_firewall(overlay::build_topology(other)).ruleset),
            tag);
  // The chain ends in a drop: what no rule admits does not reach the VM.
  EXPECT_NE(r.find("\t\tdrop\n\t}\n}\n"), std::string::npos);
}

TEST(LinuxFirewall, NoStatefulPortNoTableAndZonesStayInRange) {
  const auto fw = overlay::plan_linux_firewall(overlay::build_topology(state()));
  EXPECT_TRUE(fw.ruleset.empty());
  EXPECT_TRUE(fw.ct_zones.empty());
  EXPECT_EQ(overlay::linux_firewall_transaction(""),
            "add table inet cutover\ndelete table inet cutover\n");
  EXPECT_EQ(overlay::linux_ct_zone(1), 1);
  EXPECT_EQ(overlay::linux_ct_zone(65535), 65535);
  EXPECT_EQ(overlay::linux_ct_zone(65536), 1);
  EXPECT_EQ(overlay::linux_ct_zone(16777215), 255);  // the largest VNI
}

TEST(LinuxReconciler, TheFirewallFollowsItsPortsAndAnUnchangedOneIsLeftAlone) {
  FakeNetlinkTables nl;
  nl.add_tap("tap-a", "iface-id=a");
  LinuxReconciler rec(nl);
  auto r = rec.reconcile(stateful_state());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_NE(nl.firewall.find("jump port_0"), std::string::npos);
  EXPECT_EQ(r.ct_zones, (std::map<std::string, int64_t>{{"a", 100}}));
  EXPECT_EQ(r.installed.at("firewalled_ports"), 1u);
  const int ops = nl.ops;
  auto again = rec.reconcile(stateful_state());
  EXPECT_EQ(again.added + again.modified + again.removed, 0u);
  EXPECT_EQ(nl.ops, ops);
  // The port loses its firewall: the table goes.
  auto plain = rec.reconcile(state());
  ASSERT_TRUE(plain.ok) << plain.error;
  EXPECT_TRUE(nl.firewall.empty());
  EXPECT_EQ(plain.removed, 1u);
  EXPECT_TRUE(plain.ct_zones.empty());
}
