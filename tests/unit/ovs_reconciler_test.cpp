// Unit tests for OvsReconciler over the fakes: converge, no-op when converged (no flush on
// restart), foreign flows untouched, bad state rejected whole, failed bundles leave nothing half
// applied, late VM ports bound, tunnels added/removed only when ours.
#include <gtest/gtest.h>

#include "fake_flow_switch.hpp"
#include "fake_ovsdb_switch.hpp"
#include "ovs_reconciler.hpp"

using namespace cutover;
using namespace cutover::agent;
using cutover::testing::FakeFlowSwitch;
using cutover::testing::FakeOvsdbSwitch;

namespace {

DesiredState state(uint64_t gen, bool with_h2_port = true) {
  nlohmann::json j = {
      {"generation", gen},
      {"host", "h1"},
      {"hosts",
       {{{"id", "h1"}, {"underlay_ip", "192.168.100.1"}},
        {{"id", "h2"}, {"underlay_ip", "192.168.100.2"}}}},
      {"networks", {{{"id", "blue"}, {"vni", 100}}}},
      {"ports",
       {{{"id", "vm1"}, {"mac", "52:54:00:00:00:01"}, {"network", "blue"}, {"host", "h1"}}}}};
  if (with_h2_port) {
    j["ports"].push_back(
        {{"id", "vm2"}, {"mac", "52:54:00:00:00:02"}, {"network", "blue"}, {"host", "h2"}});
  }
  return desired_state_from_json(j);
}

struct Rig {
  FakeFlowSwitch flows;
  FakeOvsdbSwitch db;
  OvsReconciler reconciler{OvsReconcilerConfig{}, flows, db};

  // Reconciles until nothing changes (a new tunnel needs a second pass for its ofport).
  ApplyReport converge(const DesiredState& s) {
    ApplyReport r;
    for (int i = 0; i < 3; ++i) r = reconciler.reconcile(s);
    return r;
  }
};

}  // namespace

TEST(OvsReconciler, ConvergesThenSendsNothing) {
  Rig rig;
  rig.db.add_vm("tap1", "vm1", 1);
  auto r = rig.converge(state(1));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.waiting_for.empty());
  EXPECT_EQ(rig.db.port_adds, 1);  // one tunnel to h2
  EXPECT_TRUE(rig.flows.table.count("table=10,priority=100,reg0=0x64,dl_dst=52:54:00:00:00:01"));
  const int bundles = rig.flows.bundles;
  auto again = rig.reconciler.reconcile(state(2));
  EXPECT_TRUE(again.ok);
  EXPECT_EQ(again.added + again.modified + again.removed, 0u);
  EXPECT_EQ(rig.flows.bundles, bundles) << "a converged state must send no bundle";
}

TEST(OvsReconciler, RestartAdoptsInstalledStateWithoutFlushing) {
  Rig rig;
  rig.db.add_vm("tap1", "vm1", 1);
  ASSERT_TRUE(rig.converge(state(1)).ok);
  const auto before = rig.flows.table;
  const int mods = rig.flows.flow_mods;
  // A new agent process: fresh reconciler, same switch.
  OvsReconciler restarted(OvsReconcilerConfig{}, rig.flows, rig.db);
  auto r = restarted.reconcile(state(1));
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.added + r.modified + r.removed, 0u);
  EXPECT_EQ(rig.flows.flow_mods, mods);
  EXPECT_EQ(rig.db.port_adds, 1);
  EXPECT_EQ(rig.db.port_dels, 0);
  ASSERT_EQ(rig.flows.table.size(), before.size());
}

TEST(OvsReconciler, ForeignFlowsAndPortsAreLeftAlone) {
  Rig rig;
  rig.flows.table["table=0,priority=999,ip"] = {"drop", 0x1234};
  rig.db.ensure_bridge("br-int", "netdev");
  rig.db.add_vm("foreign", "", 50);
  rig.db.add_vm("tap1", "vm1", 1);
  ASSERT_TRUE(rig.converge(state(1)).ok);
  ASSERT_TRUE(rig.converge(state(2, false)).ok);  // h2's port gone: tunnel and its flows go
  EXPECT_EQ(rig.flows.table.at("table=0,priority=999,ip").cookie, 0x1234u);
  EXPECT_EQ(rig.db.port_dels, 1);
  EXPECT_EQ(rig.db.ifaces.size(), 2u);  // foreign + tap1
}

TEST(OvsReconciler, InvalidStateRejectedWholeNothingTouched) {
  Rig rig;
  rig.db.add_vm("tap1", "vm1", 1);
  ASSERT_TRUE(rig.converge(state(1)).ok);
  const auto before = rig.flows.table;
  const int bundles = rig.flows.bundles;
  auto bad = state(2);
  bad.ports[1].mac = bad.ports[0].mac;  // duplicate MAC in the VNI
  auto r = rig.reconciler.reconcile(bad);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.rejected);
  EXPECT_EQ(r.error_field, "ports[1].mac");
  EXPECT_EQ(rig.flows.bundles, bundles);
  EXPECT_EQ(rig.flows.table.size(), before.size());
}

TEST(OvsReconciler, FailedBundleAppliesNothingAndRetrySucceeds) {
  Rig rig;
  rig.db.add_vm("tap1", "vm1", 1);
  rig.flows.fail_next_bundle = true;
  auto r = rig.reconciler.reconcile(state(1));
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.rejected);
  EXPECT_NE(r.error.find("OFPBFC_TIMEOUT"), std::string::npos);
  EXPECT_TRUE(rig.flows.table.empty());
  EXPECT_TRUE(rig.converge(state(1)).ok);
  EXPECT_FALSE(rig.flows.table.empty());

  rig.flows.fail_next_dump = true;
  auto d = rig.reconciler.reconcile(state(2));
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.error.find("connection refused"), std::string::npos);
}

TEST(OvsReconciler, LatePortIsBoundOnNextPass) {
  Rig rig;
  auto r = rig.converge(state(1));
  ASSERT_TRUE(r.ok);
  // A VM tap that does not exist yet is the one thing an applied generation may lack.
  ASSERT_EQ(r.awaiting_taps, std::vector<std::string>{"vm1"});
  EXPECT_TRUE(r.waiting_for.empty());
  EXPECT_TRUE(r.applied());
  EXPECT_FALSE(rig.flows.table.count("table=10,priority=100,reg0=0x64,dl_dst=52:54:00:00:00:01"));
  rig.db.add_vm("tap1", "vm1", 7);  // libvirt/QEMU creates the tap during an incoming migration
  r = rig.reconciler.reconcile(state(1));
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.waiting_for.empty());
  EXPECT_TRUE(r.awaiting_taps.empty());
  EXPECT_EQ(rig.flows.table.at("table=10,priority=100,reg0=0x64,dl_dst=52:54:00:00:00:01").actions,
            "output:7");
}

TEST(OvsReconciler, ANewTunnelIsNotAppliedUntilTheFlowsThatNeedItAreCommitted) {
  Rig rig;
  rig.db.add_vm("tap1", "vm1", 1);
  rig.db.defer_ofports = true;  // OVSDB has the row at once, the ofport comes later
  auto r = rig.reconciler.reconcile(state(1));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_FALSE(r.applied()) << "the tunnel to h2 and its flows are missing";
  EXPECT_EQ(r.waiting_for, std::vector<std::string>{"tunnel to 192.168.100.2"});
  const std::string to_h2 = "table=10,priority=100,reg0=0x64,reg1=0,dl_dst=52:54:00:00:00:02";
  EXPECT_FALSE(rig.flows.table.count(to_h2));
  r = rig.reconciler.reconcile(state(1));  // the ofport is still not there: still waiting
  EXPECT_FALSE(r.applied());
  rig.db.assign_ofports();
  r = rig.reconciler.reconcile(state(1));
  ASSERT_TRUE(r.applied()) << r.error;
  EXPECT_TRUE(r.waiting_for.empty());
  EXPECT_EQ(rig.flows.table.at(to_h2).actions, "set_field:0x64->tun_id,output:100");
  EXPECT_TRUE(rig.flows.table.count("table=0,priority=100,in_port=100,tun_id=0x64"));
}

TEST(OvsReconciler, RefusesToTakeOverAForeignPortWithOurName) {
  Rig rig;
  rig.db.ensure_bridge("br-int", "netdev");
  rig.db.add_vm("cv-c0a86402", "", 9);  // someone else's port with our tunnel's name
  auto r = rig.reconciler.reconcile(state(1));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("not owned by cutover"), std::string::npos);
}

TEST(OvsReconciler, PortMapOnlyCountsBoundUpPortsOnOurBridge) {
  std::vector<OvsInterface> ifaces(4);
  ifaces[0] = {"a", "", "br-int", "vm-a", std::nullopt, 3, true, false};
  ifaces[1] = {"b", "", "br-int", "vm-b", std::nullopt, 4, false, false};  // link down
  ifaces[2] = {"c", "", "br-ex", "vm-c", std::nullopt, 5, true, false};    // other bridge
  ifaces[3] = {"t", "vxlan", "br-int", "", IpAddress::parse("10.0.0.9"), 6, true, true};
  auto m = OvsReconciler::port_map(ifaces, "br-int");
  EXPECT_EQ(m.vm_ofports, (std::map<std::string, int64_t>{{"vm-a", 3}}));
  EXPECT_EQ(m.tunnel_ofports.at(IpAddress::parse("10.0.0.9")), 6);
}

TEST(OvsReconciler, RateLimitsAreAMeterOnTheVmsFramesAndAQosRowOnItsPort) {
  Rig rig;
  rig.db.add_vm("tap1", "vm1", 7);
  auto s = state(1);
  s.ports[0].qos.from_vm = RateLimit{2000, 0};
  s.ports[0].qos.to_vm = RateLimit{8000, 900};
  auto r = rig.converge(s);
  ASSERT_TRUE(r.ok) << r.error;
  const uint32_t id = overlay::port_meter_id(7);
  ASSERT_TRUE(rig.flows.meter_table.count(id));
  EXPECT_EQ(rig.flows.meter_table[id], (Meter{id, 2000, 200}));  // default burst: 100 ms
  auto classify = rig.flows.table.find("table=0,priority=100,in_port=7,dl_src=52:54:00:00:00:01");
  ASSERT_NE(classify, rig.flows.table.end());
  EXPECT_EQ(classify->second.actions.rfind("meter:" + std::to_string(id) + ",", 0), 0u)
      << classify->second.actions;
  const auto& tap = rig.db.ifaces[0];
  EXPECT_EQ(tap.qos_max_rate, 8'000'000);
  EXPECT_EQ(tap.qos_burst, 900'000);

  // Converged: nothing more, not even after a restart that reads everything back.
  const int meter_mods = rig.flows.meter_mods, qos_sets = rig.db.qos_sets;
  OvsReconciler restarted{OvsReconcilerConfig{}, rig.flows, rig.db};
  auto again = restarted.reconcile(s);
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_EQ(again.added + again.modified + again.removed, 0u);
  EXPECT_EQ(rig.flows.meter_mods, meter_mods);
  EXPECT_EQ(rig.db.qos_sets, qos_sets);

  // A new rate modifies the meter in place; limits dropped: the flow loses its meter first,
  // then the meter goes (a meter deleted first would take the flow with it), and the QoS row.
  s.ports[0].qos.from_vm->kbit_s = 3000;
  ASSERT_TRUE(restarted.reconcile(s).ok);
  EXPECT_EQ(rig.flows.meter_table[id].kbit_s, 3000);
  s.ports[0].qos = {};
  auto cleared = restarted.reconcile(s);
  ASSERT_TRUE(cleared.ok) << cleared.error;
  EXPECT_TRUE(rig.flows.meter_table.empty());
  classify = rig.flows.table.find("table=0,priority=100,in_port=7,dl_src=52:54:00:00:00:01");
  ASSERT_NE(classify, rig.flows.table.end()) << "the port's flow must survive its meter";
  EXPECT_EQ(classify->second.actions.find("meter:"), std::string::npos);
  EXPECT_EQ(rig.db.ifaces[0].qos_max_rate, OvsInterface::kNoQos);
}

TEST(OvsReconciler, AForeignMeterOrQosIsLeftAlone) {
  Rig rig;
  rig.db.add_vm("tap1", "vm1", 7);
  rig.db.ifaces[0].qos_max_rate = OvsInterface::kForeignQos;
  rig.flows.meter_table[5] = Meter{5, 100, 10};  // someone else's meter id
  auto s = state(1);
  s.ports[0].qos.to_vm = RateLimit{8000, 0};
  auto r = rig.converge(s);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.waiting_for.empty()) << "a foreign QoS must not hold the generation back";
  EXPECT_EQ(rig.db.ifaces[0].qos_max_rate, OvsInterface::kForeignQos);
  EXPECT_TRUE(rig.flows.meter_table.count(5));
}
