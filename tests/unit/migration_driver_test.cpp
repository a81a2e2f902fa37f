// Unit tests for the migration state machine on a ManualScheduler with in-process fake agents:
// the happy path with its timeline, every rollback cause, policy rejections, approval, recovery.
#include <gtest/gtest.h>

#include "fake_agents.hpp"
#include "migration_driver.hpp"
#include "retrying_scheduler.hpp"
#include "version.hpp"

using namespace cutover;
using namespace cutover::controller;
using cutover::testing::FakeAgent;
using cutover::testing::settle;

namespace {

struct Rig {
  MemoryStore store;
  ControllerState state{store};
  AgentHub hub{state};
  ManualScheduler clock;
  Metrics metrics;
  MigrationPolicy policy;
  std::unique_ptr<MigrationDriver> driver;
  FakeAgent s{hub, "s"}, d{hub, "d"}, r{hub, "r"};

  explicit Rig(MigrationPolicy p = {}) : policy(p) {
    driver = std::make_unique<MigrationDriver>(state, hub, clock, metrics, policy);
    state.on_change = [this](uint64_t, const ChangeSet& c) { hub.publish(c); };
    for (auto [id, ip, labels] : {std::tuple{"s", "10.0.0.1", Labels{}},
                                  std::tuple{"d", "10.0.0.2", Labels{{"public", "1"}}},
                                  std::tuple{"r", "10.0.0.3", Labels{}}}) {
      Host h;
      h.id = HostId::parse(id);
      h.underlay_ip = IpAddress::parse(ip);
      h.labels = labels;
      state.put_host(h);
    }
    Network n;
    n.id = NetworkId::parse("blue");
    n.vni = Vni::from(100);
    state.create_network(n);
    add_port("vm", "52:54:00:00:00:01", "s");
    add_port("peer", "52:54:00:00:00:02", "r");
    s.connect();
    d.connect();
    r.connect();
    s.bound.insert("vm");
    r.bound.insert("peer");
    pump();
  }
  void add_port(const char* id, const char* mac, const char* host, Labels labels = {}) {
    Port p;
    p.id = PortId::parse(id);
    p.mac = MacAddress::parse(mac);
    p.network = NetworkId::parse("blue");
    p.iface_id = id;
    p.host = HostId::parse(host);
    p.labels = labels;
    state.create_port(p);
  }
  void pump() { settle(s, d, r); }
  const Migration& mig(const std::string& id) {
    return state.migrations().at(MigrationId::parse(id));
  }
  const Port& vm() { return state.ports().at(PortId::parse("vm")); }
  // vm migrates s -> d until its VM paused on s for the final copy (state migrating).
  void migrate_until_paused() {
    driver->create(PortId::parse("vm"), HostId::parse("d"));
    pump();
    s.paused.insert("vm");
    s.ack();
  }
  // vm gets an address and a stateful firewall (so conntrack is carried when it moves).
  void make_vm_stateful() {
    Port p = vm();
    p.ips = {IpAddress::parse("10.0.1.1")};
    p.ingress_allow = std::vector<IngressRule>{};
    state.replace_port(p);
  }
};

}  // namespace

TEST(MigrationDriver, HappyPathWithTimelineAndForwardingAfterCutover) {
  Rig rig;
  auto m = rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  EXPECT_EQ(m.state, MigrationState::preparing);
  EXPECT_EQ(rig.vm().migrating_to, HostId::parse("d"));
  // The remote VTEP learns of the migration (d joins the VNI there) with the same generation.
  bool seen = false;
  for (const auto& p : rig.r.last.ports) seen |= p.id.str() == "vm" && p.migrating_to.has_value();
  EXPECT_TRUE(seen);
  EXPECT_EQ(rig.mig("m1").state, MigrationState::preparing);  // no ACK yet
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::ready);
  rig.clock.advance(std::chrono::milliseconds(40));
  rig.d.bind("vm");  // the VM came up on d
  EXPECT_EQ(rig.mig("m1").state, MigrationState::cutting_over);
  EXPECT_EQ(rig.vm().host, HostId::parse("d"));
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
  EXPECT_EQ(rig.vm().previous_host, HostId::parse("s")) << "s forwards what still reaches it";
  rig.pump();
  const auto& done = rig.mig("m1");
  EXPECT_EQ(done.state, MigrationState::completed);
  // Every VTEP has the new location: s stops forwarding forward_grace later.
  EXPECT_EQ(rig.clock.pending(), 1u);
  rig.clock.advance(rig.policy.forward_grace - std::chrono::milliseconds(1));
  EXPECT_TRUE(rig.vm().previous_host.has_value());
  rig.clock.advance(std::chrono::milliseconds(1));
  EXPECT_FALSE(rig.vm().previous_host.has_value());
  rig.pump();
  for (const char* phase :
       {"requested", "admitted", "preparing", "prepared", "all_vteps_ready", "ready",
        "destination_bound", "cutting_over", "converged", "source_cleaned", "completed"}) {
    EXPECT_TRUE(done.timeline.count(phase)) << phase;
  }
  EXPECT_EQ(done.timeline.at("destination_bound") - done.timeline.at("ready"), 40000);
  EXPECT_EQ(rig.clock.pending(), 0u) << "timers must be disarmed";
  EXPECT_NE(rig.metrics.render({}).find("cutover_migrations_total{outcome=\"completed\"} 1"),
            std::string::npos);
  EXPECT_GE(rig.state.audit().size(), 5u);
}

TEST(MigrationDriver, AMeasurementIsRecordedOnceTheMigrationEnded) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  Measurement x;
  x.pps = 1000;
  x.sent = 15000;
  x.lost = 2;
  x.tcp_sessions = 8;
  x.tcp_survived = 8;
  x.by = "scripts/lab";
  try {
    rig.driver->record_measurement(MigrationId::parse("m1"), x);
    ADD_FAILURE() << "recorded on a migration still preparing";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 409);
  }
  EXPECT_FALSE(rig.mig("m1").measured);
  rig.pump();
  rig.d.bind("vm");
  rig.pump();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::completed);
  EXPECT_EQ(rig.driver->record_measurement(MigrationId::parse("m1"), x).measured, x);
  EXPECT_EQ(rig.mig("m1").measured, x);
  EXPECT_EQ(rig.state.audit().back().value("event", ""), "measured");
  EXPECT_NE(rig.state.audit().back().value("detail", "").find("2 of 15000 lost at 1000 pps"),
            std::string::npos);
  EXPECT_THROW(rig.driver->record_measurement(MigrationId::parse("m7"), x), ApiError);
}

TEST(MigrationDriver, ThePreviousHostForwardsUntilEveryVtepHasTheNewLocation) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.r.disconnect();  // r's agent dies: its switch still sends the VM's frames to s
  rig.d.bind("vm");
  rig.pump();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::completed);
  rig.clock.advance(rig.policy.forward_grace * 3);
  EXPECT_EQ(rig.vm().previous_host, HostId::parse("s")) << "r has not switched yet";
  rig.r.connect();
  rig.pump();  // r applies the new location
  rig.clock.advance(rig.policy.forward_grace);
  EXPECT_FALSE(rig.vm().previous_host.has_value());
}

TEST(MigrationDriver, NotReadyWhileAVtepHasAppliedThePrepareOnlyPartially) {
  Rig rig;
  rig.r.waiting_for = {"tunnel to 10.0.0.2"};  // r has no tunnel to the new VTEP d yet
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::preparing);
  EXPECT_FALSE(rig.mig("m1").timeline.count("all_vteps_ready"));
  rig.clock.advance(std::chrono::milliseconds(25));
  rig.r.waiting_for.clear();
  rig.r.ack();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::ready);
  EXPECT_EQ(rig.mig("m1").timeline.at("all_vteps_ready") - rig.mig("m1").timeline.at("preparing"),
            25000);
}

TEST(MigrationDriver, CountsTheDestinationsAnnouncementsOnTheMigration) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.d.bind("vm");
  rig.pump();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::completed);
  rig.clock.advance(std::chrono::milliseconds(1));
  for (int round = 0; round < 4; ++round) rig.d.announced("vm", round, 4, 2);
  rig.r.announced("vm", 0, 4, 2);  // not the destination: ignored
  const auto& m = rig.mig("m1");
  EXPECT_EQ(m.announcements, 8);
  EXPECT_TRUE(m.timeline.count("garps_sent"));
  EXPECT_TRUE(m.timeline.count("garps_done"));
  EXPECT_GT(m.timeline.at("garps_sent"), m.timeline.at("cutting_over"));
  bool audited = false;
  for (const auto& a : rig.state.audit()) audited |= a["event"] == "announced";
  EXPECT_TRUE(audited);
}

namespace {
CarriedConn conn(const char* local_ip, int local_port) {
  return {"tcp", IpAddress::parse(local_ip), local_port, IpAddress::parse("10.0.9.9"), 6000};
}
}  // namespace

TEST(MigrationDriver, CarriesTheSourcesConntrackToTheDestinationOnlyForItsOwnAddresses) {
  Rig rig;
  rig.make_vm_stateful();
  rig.pump();
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.d.conntrack("vm", {conn("10.0.1.1", 40000)});  // not the source: ignored
  EXPECT_TRUE(rig.vm().carried_conns.empty());
  EXPECT_NE(
      rig.metrics.render({}).find(R"(cutover_auth_refusals_total{reason="not_its_migration"} 1)"),
      std::string::npos);
  rig.s.conntrack("vm", {conn("10.0.1.1", 40000), conn("10.0.1.2", 40001)});
  rig.pump();
  ASSERT_EQ(rig.vm().carried_conns.size(), 1u) << "another address is not the port's to carry";
  EXPECT_EQ(rig.vm().carried_conns[0].local_port, 40000);
  EXPECT_EQ(rig.mig("m1").conntrack_carried, 1);
  EXPECT_TRUE(rig.mig("m1").timeline.count("conntrack_carried"));
  bool at_destination = false;
  for (const auto& p : rig.d.last.ports)
    at_destination |= p.id.str() == "vm" && !p.carried_conns.empty();
  EXPECT_TRUE(at_destination);
  rig.d.bind("vm");
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::completed);
  EXPECT_EQ(rig.vm().carried_conns.size(), 1u) << "kept until the next migration";
  rig.driver->create(PortId::parse("vm"), HostId::parse("s"));
  EXPECT_TRUE(rig.vm().carried_conns.empty());
}

TEST(MigrationDriver, CarriedConnectionsExpireAfterTheirTtlUnlessAMigrationIsUnderWay) {
  MigrationPolicy policy;
  policy.carried_conns_ttl = std::chrono::seconds(60);
  policy.forbid = {PlacementRule{"pci", "public"}};
  Rig rig(policy);
  rig.make_vm_stateful();
  rig.pump();
  auto carry = [&](FakeAgent& source, int local_port) {
    source.conntrack("vm", {conn("10.0.1.1", local_port)});
    rig.pump();
    ASSERT_EQ(rig.vm().carried_conns.size(), 1u);
  };
  // A whole migration from `from` to `to` that carries one connection.
  auto hop = [&](FakeAgent& from, FakeAgent& to, const char* to_host, const char* id,
                 int local_port) {
    rig.driver->create(PortId::parse("vm"), HostId::parse(to_host));
    rig.pump();
    carry(from, local_port);
    to.bind("vm");
    from.bound.erase("vm");
    rig.pump();
    ASSERT_EQ(rig.mig(id).state, MigrationState::completed);
  };
  // m1: s -> d; its admits go 60 s after it completes.
  hop(rig.s, rig.d, "d", "m1", 40000);
  rig.clock.advance(std::chrono::seconds(59));
  EXPECT_EQ(rig.vm().carried_conns.size(), 1u) << "expired early";
  rig.clock.advance(std::chrono::seconds(1));
  rig.pump();
  EXPECT_TRUE(rig.vm().carried_conns.empty());
  bool admitted_at_d = false;
  for (const auto& p : rig.d.last.ports) admitted_at_d |= !p.carried_conns.empty();
  EXPECT_FALSE(admitted_at_d) << "the destination still has the admits";

  // m2: d -> s carries again. m3 starts 30 s after m2 ended; when m2's expiry comes, m3 is under
  // way with connections of its own, which stay.
  hop(rig.d, rig.s, "s", "m2", 40001);
  rig.clock.advance(std::chrono::seconds(30));
  rig.driver->create(PortId::parse("vm"), HostId::parse("r"));
  rig.pump();
  carry(rig.s, 40002);
  rig.clock.advance(std::chrono::seconds(40));
  ASSERT_FALSE(is_terminal(rig.mig("m3").state));
  EXPECT_EQ(rig.vm().carried_conns.size(), 1u) << "an older expiry dropped m3's connections";
  rig.r.bind("vm");
  rig.s.bound.erase("vm");
  rig.pump();
  ASSERT_EQ(rig.mig("m3").state, MigrationState::completed);

  // A refused request does not restart the countdown.
  rig.clock.advance(std::chrono::seconds(30));
  Port labelled = rig.vm();
  labelled.labels["pci"] = "1";
  rig.state.replace_port(labelled);
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  EXPECT_EQ(rig.mig("m4").state, MigrationState::rejected);
  rig.clock.advance(std::chrono::seconds(30));
  EXPECT_TRUE(rig.vm().carried_conns.empty()) << "a refused request restarted the countdown";
}

TEST(MigrationDriver, CarryOverCanBeTurnedOffPerMigration) {
  Rig rig;
  rig.make_vm_stateful();
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"), "", false);
  rig.pump();
  rig.s.conntrack("vm", {conn("10.0.1.1", 40000)});
  EXPECT_TRUE(rig.vm().carried_conns.empty());
  EXPECT_EQ(rig.mig("m1").conntrack_carried, -1);
  EXPECT_FALSE(rig.mig("m1").carry_conntrack);
}

TEST(MigrationDriver, StatefulPortMovesToALinuxHost) {
  Rig rig;
  Host lin;
  lin.id = HostId::parse("lin");
  lin.underlay_ip = IpAddress::parse("10.0.0.9");
  lin.backend = Backend::linux;
  rig.state.put_host(lin);
  Port vm = rig.vm();
  vm.ingress_allow = std::vector<IngressRule>{{"tcp", 22}};
  rig.state.replace_port(vm);
  auto m = rig.driver->create(PortId::parse("vm"), HostId::parse("lin"));
  EXPECT_NE(m.state, MigrationState::rejected) << m.reason;
  EXPECT_TRUE(m.carry_conntrack);
}

namespace {
// Gives the rig's port a volume and the hosts a storage attacher (as their agents would report).
void with_volume(Rig& rig, const char* storage_on_d = "probe") {
  for (const char* id : {"s", "d"}) {
    auto h = rig.state.hosts().at(HostId::parse(id));
    h.storage = std::string(id) == "d" ? storage_on_d : "kernel";
    rig.state.put_host(h);
  }
  Port vm = rig.vm();
  Volume v;
  v.id = "data";
  v.nqn = "nqn.2026-11.dev.cutover:vol";
  v.paths = {VolumePath{IpAddress::parse("10.0.5.1"), 4420}};
  vm.volumes = {v};
  rig.state.replace_port(vm);
  rig.s.storage_ready.insert("vm/data");
  rig.pump();
}
}  // namespace

TEST(MigrationDriver, PrepareIsReadyOnlyOnceTheDestinationHasTheVolumes) {
  Rig rig;
  with_volume(rig);
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::preparing) << "VTEPs ready, storage not yet";
  EXPECT_TRUE(rig.mig("m1").timeline.count("all_vteps_ready"));
  rig.clock.advance(std::chrono::milliseconds(25));
  rig.d.storage_ready.insert("vm/data");
  rig.d.ack();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::ready);
  const auto& t = rig.mig("m1").timeline;
  EXPECT_EQ(t.at("storage_ready") - t.at("all_vteps_ready"), 25000);
  rig.d.bind("vm");
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::completed);
  EXPECT_FALSE(rig.mig("m1").timeline.count("storage_released")) << "the source still has it";
  rig.s.storage_ready.clear();  // the source detached once the VM left
  rig.s.ack();
  EXPECT_TRUE(rig.mig("m1").timeline.count("storage_released"));
}

TEST(MigrationDriver, StorageFailureOnTheDestinationRollsBackAndReleases) {
  Rig rig;
  with_volume(rig);
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.d.storage_failed["vm/data"] = "10.0.5.1:4420: connect rejected (sct 1, sc 0x82)";
  rig.d.ack();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("sc 0x82"), std::string::npos) << rig.mig("m1").reason;
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
  rig.d.storage_failed.clear();
  rig.d.ack();
  EXPECT_TRUE(rig.mig("m1").timeline.count("storage_released"));
}

TEST(MigrationDriver, PrepareTimesOutWhileStorageNeverBecomesReady) {
  Rig rig;
  with_volume(rig);
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.clock.advance(std::chrono::milliseconds(30001));
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("timed out"), std::string::npos);
}

TEST(MigrationDriver, VolumesNeedAStorageCapableDestination) {
  Rig rig;
  with_volume(rig, "");
  auto m = rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  EXPECT_EQ(m.state, MigrationState::rejected);
  EXPECT_NE(m.reason.find("nvme-tcp"), std::string::npos) << m.reason;
}

TEST(MigrationDriver, RollsBackWhenDestinationNeverAcks) {
  Rig rig;
  rig.d.set_auto_ack(false);
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::preparing);
  rig.clock.advance(std::chrono::milliseconds(30001));
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("timed out"), std::string::npos);
  EXPECT_EQ(rig.vm().host, HostId::parse("s"));
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
}

TEST(MigrationDriver, AStoreErrorInATimeoutIsRetriedNotFatal) {
  Rig rig;
  // As the daemon runs it: the driver's timers go through a RetryingScheduler.
  RetryingScheduler retrying(rig.clock);
  rig.driver =
      std::make_unique<MigrationDriver>(rig.state, rig.hub, retrying, rig.metrics, rig.policy);
  rig.d.set_auto_ack(false);
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.store.fail_next_commit = true;  // the rollback's first write fails
  EXPECT_NO_THROW(rig.clock.advance(std::chrono::milliseconds(30001)));
  EXPECT_EQ(retrying.failures(), 1u);
  EXPECT_EQ(rig.mig("m1").state, MigrationState::preparing) << "a failed write changes nothing";
  rig.clock.advance(std::chrono::milliseconds(1000));  // the retry
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("timed out"), std::string::npos);
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
}

TEST(MigrationDriver, RollsBackOnNack) {
  Rig rig;
  rig.d.set_auto_ack(false);
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.d.nack("bridge br-int missing");
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("bridge br-int missing"), std::string::npos);
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
}

TEST(MigrationDriver, RollsBackWhenDestinationAgentDies) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::ready);
  rig.d.disconnect();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("disconnected"), std::string::npos);
  EXPECT_EQ(rig.vm().host, HostId::parse("s"));
}

TEST(MigrationDriver, RollsBackWhenPortNeverComesUp) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.clock.advance(std::chrono::milliseconds(300001));
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("never came up"), std::string::npos);
}

TEST(MigrationDriver, CancelRollsBackAndIsRefusedAfterCutover) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.driver->cancel(MigrationId::parse("m1"));
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_EQ(rig.mig("m1").reason, "cancelled by request");
  EXPECT_THROW(rig.driver->cancel(MigrationId::parse("m1")), ApiError);
  // A second migration runs to completion, then cannot be cancelled.
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.d.bind("vm");
  rig.pump();
  EXPECT_EQ(rig.mig("m2").state, MigrationState::completed);
  EXPECT_THROW(rig.driver->cancel(MigrationId::parse("m2")), ApiError);
}

TEST(MigrationDriver, BadRequestsAreApiErrorsNamingTheField) {
  Rig rig;
  auto field = [&](const char* port, const char* to) {
    try {
      rig.driver->create(PortId::parse(port), HostId::parse(to));
    } catch (const ApiError& e) {
      return e.field();
    }
    return std::string("<accepted>");
  };
  EXPECT_EQ(field("nope", "d"), "port");
  EXPECT_EQ(field("vm", "nowhere"), "to_host");
  EXPECT_EQ(field("vm", "s"), "to_host");
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  EXPECT_EQ(field("vm", "r"), "port");  // already migrating
}

TEST(MigrationDriver, PolicyRejectsLabelsAndConcurrency) {
  MigrationPolicy p;
  p.forbid.push_back({"pci", "public"});
  p.max_concurrent_per_host = 1;
  Rig rig(p);
  rig.add_port("card", "52:54:00:00:00:09", "s", {{"pci", "yes"}});
  auto m = rig.driver->create(PortId::parse("card"), HostId::parse("d"));
  EXPECT_EQ(m.state, MigrationState::rejected);
  EXPECT_NE(m.reason.find("'pci'"), std::string::npos);
  rig.driver->create(PortId::parse("vm"), HostId::parse("r"));  // s and r now busy
  rig.add_port("third", "52:54:00:00:00:0a", "s");
  auto busy = rig.driver->create(PortId::parse("third"), HostId::parse("d"));
  EXPECT_EQ(busy.state, MigrationState::rejected);
  EXPECT_NE(busy.reason.find("limit 1"), std::string::npos);
}

TEST(MigrationDriver, ApprovalGate) {
  MigrationPolicy p;
  p.require_approval = true;
  Rig rig(p);
  auto m = rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  EXPECT_EQ(m.state, MigrationState::pending_approval);
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
  rig.driver->approve(m.id);
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::ready);
  EXPECT_THROW(rig.driver->approve(m.id), ApiError);
}

// A new controller process over the same store, its agents not reconnected yet.
struct Restarted {
  ControllerState state;
  AgentHub hub{state};
  Metrics metrics;
  MigrationDriver driver;
  FakeAgent s{hub, "s"}, d{hub, "d"}, r{hub, "r"};
  Restarted(Rig& rig, MigrationPolicy policy = {})
      : state(rig.store), driver(state, hub, rig.clock, metrics, policy) {
    state.on_change = [this](uint64_t, const ChangeSet& c) { hub.publish(c); };
    driver.recover();
  }
  const Migration& mig(const std::string& id) {
    return state.migrations().at(MigrationId::parse(id));
  }
  const Port& vm() { return state.ports().at(PortId::parse("vm")); }
  void pump() { settle(s, d, r); }
};

TEST(MigrationDriver, ARestartRollsNothingBackTheVmThatLandedIsCompleted) {
  Rig rig;
  rig.migrate_until_paused();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::migrating);
  // The controller dies; the VM resumes on d meanwhile. The new one keeps the port arriving on d
  // (d delivers what s forwards) until d says where the VM runs.
  Restarted again(rig);
  EXPECT_EQ(again.mig("m1").state, MigrationState::migrating);
  EXPECT_EQ(again.vm().migrating_to, HostId::parse("d"));
  again.s.paused.insert("vm");  // s reconnects first, its VM still paused there
  again.s.bound.insert("vm");
  again.s.connect();
  again.pump();
  EXPECT_EQ(again.mig("m1").state, MigrationState::migrating) << "nothing known yet";
  again.d.bound.insert("vm");
  again.d.connect();
  again.r.connect();
  again.pump();
  EXPECT_EQ(again.mig("m1").state, MigrationState::completed);
  EXPECT_EQ(again.vm().host, HostId::parse("d"));
  for (const auto& e : again.state.audit()) {
    EXPECT_NE(e["event"], "rolled_back") << nlohmann::json(again.state.audit()).dump();
  }
}

TEST(MigrationDriver, ARestartBeforeThePauseWaitsForTheVmAndAPrepareForItsAcks) {
  Rig rig;
  rig.d.set_auto_ack(false);
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::preparing);
  Restarted again(rig);
  again.s.connect();
  again.d.connect();
  again.r.connect();
  again.pump();
  EXPECT_EQ(again.mig("m1").state, MigrationState::ready) << "prepared from the new ACKs";
  again.d.bind("vm");
  again.pump();
  EXPECT_EQ(again.mig("m1").state, MigrationState::completed);
}

TEST(MigrationDriver, AfterARestartTheSourceTapGoneAfterThePauseMeansTheVmMoved) {
  Rig rig;
  rig.migrate_until_paused();
  Restarted again(rig);
  again.s.connect();  // d's agent stays away; s: paused no more, its tap gone (QEMU exited)
  again.r.connect();
  again.pump();
  EXPECT_EQ(again.mig("m1").state, MigrationState::cutting_over);
  EXPECT_EQ(again.vm().host, HostId::parse("d")) << "the record follows the VM";
}

TEST(MigrationDriver, TheDestinationAgentLostAfterThePauseIsCarriedForward) {
  Rig rig;
  rig.migrate_until_paused();
  rig.d.disconnect();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::migrating) << "not rolled back";
  EXPECT_EQ(rig.vm().migrating_to, HostId::parse("d"));
  rig.clock.advance(rig.policy.activation_timeout + std::chrono::milliseconds(1));
  EXPECT_EQ(rig.mig("m1").state, MigrationState::migrating) << "a timeout decides nothing";
  rig.s.paused.clear();
  rig.s.bound.clear();  // the VM left s
  rig.s.ack();
  EXPECT_EQ(rig.vm().host, HostId::parse("d")) << "the record follows the VM";
  EXPECT_EQ(rig.mig("m1").state, MigrationState::completed);
  EXPECT_NE(rig.mig("m1").reason.find("convergence incomplete"), std::string::npos)
      << "d's agent has not applied it: said, not hidden";
  EXPECT_THROW(rig.driver->cancel(MigrationId::parse("m1")), ApiError);
}

TEST(MigrationDriver, AMigrationThatFailsAfterThePauseRollsBackWhenTheSourceRunsItAgain) {
  Rig rig;
  rig.s.vms = {{"vm-domain", {"vm"}}};
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.s.vms.clear();
  rig.s.paused.insert("vm");
  rig.s.ack();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::migrating);
  try {
    rig.driver->cancel(MigrationId::parse("m1"));
    ADD_FAILURE() << "cancel after the pause must be refused";
  } catch (const ApiError& e) {
    EXPECT_NE(std::string(e.what()).find("carried forward"), std::string::npos) << e.what();
  }
  rig.s.paused.clear();
  rig.s.vms = {{"vm-domain", {"vm"}}};  // libvirt resumed it on s
  rig.s.ack();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("again after its pause"), std::string::npos);
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
}

namespace {
// A migration cutover drives (d publishes a migration URI), ready: s runs libvirt's job.
void driven_and_ready(Rig& rig) {
  auto d = rig.state.hosts().at(HostId::parse("d"));
  d.migration_uri = "qemu+tcp://d/system";
  rig.state.put_host(d);
  rig.pump();
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::ready);
  ASSERT_EQ(rig.s.migrate_commands.size(), 1u);
}
}  // namespace

TEST(MigrationDriver, CancelAbortsLibvirtsJobAndRollsBackOnceTheVmStayed) {
  Rig rig;
  driven_and_ready(rig);
  rig.driver->cancel(MigrationId::parse("m1"));
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolling_back);
  EXPECT_EQ(rig.vm().migrating_to, HostId::parse("d")) << "the network waits for libvirt";
  ASSERT_EQ(rig.s.aborts.size(), 1u);
  EXPECT_EQ(rig.s.aborts[0].migration, "m1");
  EXPECT_EQ(rig.s.aborts[0].iface_id, "vm");
  rig.d.answer_abort("m1", wire::Aborted::Where::here);  // not the source: not heard
  rig.r.report_migration_failed("m1", "forged");
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolling_back);
  EXPECT_NE(
      rig.metrics.render({}).find(R"(cutover_auth_refusals_total{reason="not_its_migration"} 2)"),
      std::string::npos)
      << "both refusals counted";
  rig.s.answer_abort("m1", wire::Aborted::Where::here);
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_EQ(rig.mig("m1").reason, "cancelled by request");
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
}

TEST(MigrationDriver, AnAbortTooLateCarriesTheMigrationForward) {
  Rig rig;
  driven_and_ready(rig);
  rig.clock.advance(rig.policy.activation_timeout + std::chrono::milliseconds(1));
  ASSERT_EQ(rig.mig("m1").state, MigrationState::rolling_back);
  rig.s.answer_abort("m1", wire::Aborted::Where::gone);  // it had switched over already
  EXPECT_EQ(rig.mig("m1").state, MigrationState::cutting_over);
  EXPECT_EQ(rig.vm().host, HostId::parse("d"));
}

TEST(MigrationDriver, LosingTheDestinationBeforeThePauseAbortsAndAskesAgainAfterAReconnect) {
  Rig rig;
  driven_and_ready(rig);
  rig.s.disconnect();
  rig.d.disconnect();  // before the pause: abort - but s is away too
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolling_back);
  EXPECT_TRUE(rig.s.aborts.empty());
  rig.s.connect();
  rig.pump();
  ASSERT_EQ(rig.s.aborts.size(), 1u) << "asked once s is back";
  // No answer; after abort_timeout s's report decides: the VM runs there.
  rig.s.vms = {{"vm-domain", {"vm"}}};
  rig.s.ack();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolling_back);
  rig.clock.advance(rig.policy.abort_timeout);
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("no answer to the abort"), std::string::npos);
}

TEST(MigrationDriver, ASourceAgentThatLostItsLibvirtCallHasItAbortedAndRolledBack) {
  Rig rig;
  driven_and_ready(rig);
  rig.s.vms = {{"vm-domain", {"vm"}}};  // pre-copy: the VM runs on s
  rig.s.ack();  // on the session the Migrate went out on: maybe sent before it arrived
  EXPECT_EQ(rig.mig("m1").state, MigrationState::ready);
  rig.s.disconnect();  // the controller's connection dropped, the agent still runs the call
  rig.s.live = {"m1"};
  rig.s.connect();
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::ready);
  rig.s.disconnect();  // the agent restarted: its call died with it
  rig.s.live.clear();
  rig.s.connect();
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolling_back);
  ASSERT_EQ(rig.s.aborts.size(), 1u) << "libvirtd may go on alone: abort, then believe the answer";
  rig.s.answer_abort("m1", wire::Aborted::Where::here);
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("restarted"), std::string::npos);
}

TEST(MigrationDriver, ARestartDuringAnAbortAsksTheSourceAgain) {
  Rig rig;
  driven_and_ready(rig);
  rig.driver->cancel(MigrationId::parse("m1"));
  ASSERT_EQ(rig.mig("m1").state, MigrationState::rolling_back);
  Restarted again(rig);
  again.s.connect();
  again.pump();
  ASSERT_EQ(again.s.aborts.size(), 1u);
  again.s.answer_abort("m1", wire::Aborted::Where::here);
  EXPECT_EQ(again.mig("m1").state, MigrationState::rolled_back);
}

TEST(MigrationDriver, TheSourcePauseGoesOnTheTimelineAndChangesNoPort) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::ready);
  const int sent = rig.s.received + rig.d.received + rig.r.received;
  const Port before = rig.vm();
  rig.clock.advance(std::chrono::milliseconds(500));
  rig.s.paused.insert("vm");  // libvirt on s: paused for the final copy
  rig.s.ack();
  // s forwards by itself from its pause on: the controller's report is not on that path.
  EXPECT_EQ(rig.mig("m1").state, MigrationState::migrating);
  EXPECT_EQ(rig.s.received + rig.d.received + rig.r.received, sent) << "nothing sent to agents";
  EXPECT_EQ(rig.vm(), before);
  rig.clock.advance(std::chrono::milliseconds(30));
  rig.d.bind("vm");  // resumed on d
  rig.pump();
  const auto& m = rig.mig("m1");
  EXPECT_EQ(m.state, MigrationState::completed);
  EXPECT_EQ(m.timeline.at("destination_bound") - m.timeline.at("source_paused"), 30000);
  const auto metrics = rig.metrics.render({});
  EXPECT_NE(metrics.find("cutover_blackout_seconds_count 1"), std::string::npos);
  EXPECT_EQ(metrics.find("cutover_cutover_"), std::string::npos) << "no stutter";
  EXPECT_NE(metrics.find(std::string("cutover_build_info{version=\"") + kVersion + "\"} 1"),
            std::string::npos);
}

TEST(MigrationDriver, MigratingBackToWhereItJustWasEndsThatHostsForwarding) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.d.bind("vm");
  rig.pump();
  ASSERT_EQ(rig.vm().previous_host, HostId::parse("s"));
  rig.s.bound.erase("vm");
  rig.driver->create(PortId::parse("vm"), HostId::parse("s"));
  EXPECT_EQ(rig.vm().migrating_to, HostId::parse("s"));
  EXPECT_FALSE(rig.vm().previous_host.has_value()) << "s receives it now: held, not forwarding";
  rig.pump();
  rig.s.bind("vm");
  rig.pump();
  EXPECT_EQ(rig.vm().host, HostId::parse("s"));
  EXPECT_EQ(rig.vm().previous_host, HostId::parse("d"));
}

TEST(MigrationDriver, DrivesTheLiveMigrationWhenTheDestinationPublishesAUri) {
  Rig rig;
  auto d = rig.state.hosts().at(HostId::parse("d"));
  d.migration_uri = "qemu+tls://d/system";
  rig.state.put_host(d);
  rig.pump();
  const LibvirtMigrationSettings libvirt{std::nullopt, true, std::nullopt, 200, std::nullopt};
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"), "", true, "", libvirt);
  rig.pump();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::ready);
  ASSERT_EQ(rig.s.migrate_commands.size(), 1u);
  EXPECT_EQ(rig.s.migrate_commands[0].destination_uri, "qemu+tls://d/system");
  EXPECT_EQ(rig.s.migrate_commands[0].iface_id, "vm");
  EXPECT_EQ(rig.s.migrate_commands[0].libvirt, libvirt) << "the request's libvirt settings";
  EXPECT_EQ(rig.mig("m1").libvirt, libvirt) << "recorded on the migration";
  EXPECT_TRUE(rig.mig("m1").timeline.count("migration_started"));
  rig.s.report_migration_failed("m1", "operation failed: migration out of memory");
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m1").reason.find("out of memory"), std::string::npos);
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
}

TEST(MigrationDriver, DoesNotDriveWithoutADestinationUri) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  EXPECT_TRUE(rig.s.migrate_commands.empty());
  EXPECT_FALSE(rig.mig("m1").timeline.count("migration_started"));
}

TEST(MigrationDriver, FollowsAMigrationStartedOutsideCutover) {
  Rig rig;
  rig.d.foreign.insert("vm");  // virsh migrate: the VM now runs on d, cutover was not asked
  rig.d.ack();
  rig.pump();
  const auto& m = rig.mig("m1");
  EXPECT_EQ(m.state, MigrationState::completed);
  EXPECT_EQ(m.source, HostId::parse("s"));
  EXPECT_EQ(m.destination, HostId::parse("d"));
  EXPECT_TRUE(m.timeline.count("detected_external"));
  EXPECT_EQ(rig.vm().host, HostId::parse("d"));
  // Once the state places it on d, d no longer reports it as foreign: nothing more happens.
  rig.d.foreign.clear();
  rig.d.ack();
  EXPECT_EQ(rig.state.migrations().size(), 1u);
}

// Most ACKs repeat the last report word for word and skip the driver; a report that still lists
// something to follow must not. Here d reports a VM cutover has no port for yet; once the port
// exists (on s), d's next ACK only repeats that report, and the driver must still see it.
TEST(MigrationDriver, ARepeatedReportWithAForeignVmIsStillFollowed) {
  Rig rig;
  rig.d.foreign.insert("late");
  rig.d.ack();
  rig.pump();
  EXPECT_EQ(rig.state.migrations().size(), 0u);
  rig.add_port("late", "52:54:00:00:00:03", "s");
  rig.d.repeat_ack();
  ASSERT_EQ(rig.state.migrations().size(), 1u) << "the repeated report was skipped";
  const auto& m = rig.state.migrations().begin()->second;
  EXPECT_EQ(m.port, PortId::parse("late"));
  EXPECT_EQ(m.destination, HostId::parse("d"));
  EXPECT_TRUE(m.timeline.count("detected_external"));
}

TEST(MigrationDriver, AVmIsMigratedThroughItsOnePort) {
  Rig rig;
  // s reports libvirt domain "web" running with the port's interface (and one cutover ignores).
  rig.s.vms["web"] = {"vm", "not-a-port"};
  rig.s.ack();
  EXPECT_EQ(rig.driver->ports_of_vm("web"), std::vector<PortId>{PortId::parse("vm")});
  auto m = rig.driver->create_vm("web", HostId::parse("d"));
  EXPECT_EQ(m.vm, "web");
  EXPECT_EQ(m.group, "") << "one port: a migration on its own";
  EXPECT_EQ(m.state, MigrationState::preparing);
  rig.pump();
  EXPECT_EQ(rig.mig(m.id.str()).vm, "web") << "the stored migration keeps the domain name";

  auto refused = [&](const std::string& vm) {
    try {
      rig.driver->ports_of_vm(vm);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.field(), "vm");
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(refused("db").find("no connected agent"), std::string::npos) << refused("db");
  rig.r.vms["bare"] = {"unknown-iface"};
  rig.r.ack();
  EXPECT_NE(refused("bare").find("no interface that is a cutover port"), std::string::npos);
  rig.add_port("second", "52:54:00:00:00:03", "r");
  rig.r.vms["multi"] = {"peer", "second"};
  rig.r.ack();
  EXPECT_EQ(rig.driver->ports_of_vm("multi").size(), 2u) << "a multi-NIC VM: both its ports";
  rig.d.vms["multi"] = {"peer"};
  rig.d.ack();
  EXPECT_NE(refused("multi").find("more than one host"), std::string::npos) << refused("multi");
  rig.d.vms = {{"stale", {"vm"}}};  // d runs a domain with vm's interface; vm is placed on s
  rig.d.ack();
  EXPECT_NE(refused("stale").find("placed on s"), std::string::npos) << refused("stale");
  rig.r.disconnect();
  rig.d.vms.clear();
  rig.d.ack();
  EXPECT_NE(refused("multi").find("no connected agent"), std::string::npos)
      << "a disconnected host's report does not count";
}

TEST(MigrationDriver, PreCopyPassesReachTheTimeline) {
  Rig rig;
  rig.s.precopy["vm"] = 7;  // left over from an earlier migration: never stamped
  rig.s.ack();
  Host d = rig.state.hosts().at(HostId::parse("d"));
  d.migration_uri = "qemu+tcp://10.0.0.2/system";  // cutover drives the live migration
  rig.state.put_host(d);
  rig.pump();
  auto m = rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  ASSERT_EQ(rig.mig(m.id.str()).state, MigrationState::ready);
  for (int64_t pass : {1, 1, 2, 3}) {
    rig.s.precopy["vm"] = pass;
    rig.s.ack();
  }
  const auto& t = rig.mig(m.id.str()).timeline;
  for (const char* phase : {"precopy_pass_1", "precopy_pass_2", "precopy_pass_3"}) {
    EXPECT_TRUE(t.count(phase)) << phase;
  }
  EXPECT_FALSE(t.count("precopy_pass_4"));
  EXPECT_FALSE(t.count("precopy_pass_7"));
  EXPECT_LE(t.at("migration_started"), t.at("precopy_pass_1"));
  EXPECT_LE(t.at("precopy_pass_1"), t.at("precopy_pass_2"));
  rig.r.precopy["peer"] = 1;  // another host's VM leaving: not this migration's
  rig.r.ack();
  EXPECT_EQ(rig.mig(m.id.str()).timeline.size(), t.size());
}

TEST(MigrationDriver, FollowingAnExternalMigrationSaysWhatPolicyWouldHaveRefused) {
  MigrationPolicy policy;
  policy.forbid = {PlacementRule{"pci", "public"}};
  Rig rig(policy);
  Host d = rig.state.hosts().at(HostId::parse("d"));
  d.labels["public"] = "yes";
  rig.state.put_host(d);
  Port vm = rig.vm();
  vm.labels["pci"] = "yes";
  rig.state.replace_port(vm);
  rig.pump();
  rig.d.foreign.insert("vm");  // virsh migrate to d anyway
  rig.d.ack();
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::completed) << "the VM runs there: follow it";
  bool said = false;
  for (const auto& e : rig.state.audit()) {
    said |= e["event"] == "policy_violated" &&
            e["detail"].get<std::string>().find("must not run on a host labelled 'public'") !=
                std::string::npos;
  }
  EXPECT_TRUE(said) << nlohmann::json(rig.state.audit()).dump();
}

TEST(MigrationDriver, CarriedConnectionsFromBeforeARestartExpireToo) {
  MigrationPolicy policy;
  policy.carried_conns_ttl = std::chrono::seconds(60);
  Rig rig(policy);
  Port vm = rig.vm();  // as a controller that stopped after a migration carried connections
  vm.ips = {IpAddress::parse("10.0.1.1")};
  vm.ingress_allow = std::vector<IngressRule>{};
  vm.carried_conns = {conn("10.0.1.1", 40000)};
  rig.state.replace_port(vm);
  rig.driver->recover();
  rig.clock.advance(std::chrono::seconds(59));
  EXPECT_EQ(rig.vm().carried_conns.size(), 1u);
  rig.clock.advance(std::chrono::seconds(1));
  EXPECT_TRUE(rig.vm().carried_conns.empty());
}

TEST(MigrationDriver, ARequestWaitingForApprovalNeitherHoldsNorRestartsTheCarriedExpiry) {
  MigrationPolicy policy;
  policy.carried_conns_ttl = std::chrono::seconds(60);
  policy.require_approval = true;
  Rig rig(policy);
  rig.make_vm_stateful();
  rig.pump();
  auto hop = [&](FakeAgent& from, FakeAgent& to, const char* to_host, const char* id) {
    rig.driver->create(PortId::parse("vm"), HostId::parse(to_host));
    rig.driver->approve(MigrationId::parse(id));
    rig.pump();
    from.conntrack("vm", {conn("10.0.1.1", 40000)});
    to.bind("vm");
    from.bound.erase("vm");
    rig.pump();
    ASSERT_EQ(rig.mig(id).state, MigrationState::completed);
    ASSERT_EQ(rig.vm().carried_conns.size(), 1u);
  };
  hop(rig.s, rig.d, "d", "m1");
  rig.clock.advance(std::chrono::seconds(30));
  rig.driver->create(PortId::parse("vm"), HostId::parse("s"));  // m2 waits for approval
  rig.clock.advance(std::chrono::seconds(10));
  rig.driver->cancel(MigrationId::parse("m2"));
  ASSERT_EQ(rig.mig("m2").state, MigrationState::rolled_back);
  rig.clock.advance(std::chrono::seconds(20));
  EXPECT_TRUE(rig.vm().carried_conns.empty()) << "cancelling a request restarted the countdown";

  hop(rig.d, rig.s, "s", "m3");
  rig.clock.advance(std::chrono::seconds(30));
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));  // m4 waits for approval
  rig.clock.advance(std::chrono::seconds(30));
  ASSERT_EQ(rig.mig("m4").state, MigrationState::pending_approval);
  EXPECT_TRUE(rig.vm().carried_conns.empty()) << "a request waiting for approval held them";
}

TEST(MigrationDriver, AMigrationSeenAtItsStartGetsThePrepareBeforeThePause) {
  Rig rig;
  auto d = rig.state.hosts().at(HostId::parse("d"));
  d.migration_uri = "qemu+tcp://d/system";  // cutover could drive it, but virsh already does
  rig.state.put_host(d);
  rig.pump();
  rig.d.incoming.insert("vm");  // virsh migrate: the VM's tap appeared on d
  rig.d.ack();
  const auto& m = rig.mig("m1");
  EXPECT_EQ(m.state, MigrationState::preparing);
  EXPECT_TRUE(m.timeline.count("detected_incoming"));
  EXPECT_EQ(rig.vm().migrating_to, HostId::parse("d"));
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::ready);
  EXPECT_TRUE(rig.s.migrate_commands.empty()) << "libvirt is already migrating it";
  rig.clock.advance(std::chrono::milliseconds(900));  // pre-copy
  ASSERT_EQ(rig.d.prepared.size(), 1u);
  EXPECT_TRUE(rig.d.prepared[0].ok);
  EXPECT_EQ(rig.d.prepared[0].migration, "m1");
  rig.s.paused.insert("vm");
  rig.s.ack();
  rig.d.incoming.clear();  // the state now places it arriving on d
  rig.d.bind("vm");
  rig.pump();
  const auto& done = rig.mig("m1");
  EXPECT_EQ(done.state, MigrationState::completed);
  EXPECT_LT(done.timeline.at("prepared"), done.timeline.at("source_paused"));
  EXPECT_EQ(rig.state.migrations().size(), 1u);
}

TEST(MigrationDriver, ArrivalsThatAreNotOursAreAnsweredAndRefusalsRecordedNotPrepared) {
  MigrationPolicy policy;
  policy.forbid = {{"pci", "public"}};
  Rig rig(policy);
  rig.d.ask_incoming({"stranger"});  // the hook, for a domain without a cutover port
  ASSERT_EQ(rig.d.prepared.size(), 1u);
  EXPECT_FALSE(rig.d.prepared[0].ok);
  EXPECT_NE(rig.d.prepared[0].error.find("no cutover port"), std::string::npos);
  EXPECT_TRUE(rig.state.migrations().empty());
  // A port cutover would refuse on d: recorded as rejected, nothing prepared, libvirt goes on.
  Port p = rig.vm();
  p.labels["pci"] = "1";
  rig.state.replace_port(p);
  rig.pump();
  rig.d.ask_incoming({"vm"});
  const auto& m = rig.mig("m1");
  EXPECT_EQ(m.state, MigrationState::rejected);
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
  ASSERT_EQ(rig.d.prepared.size(), 2u);
  EXPECT_NE(rig.d.prepared[1].error.find("policy"), std::string::npos);
  // The tap it leaves on d is reported on every ACK: acted on once.
  rig.d.incoming.insert("vm");
  rig.d.ack();
  rig.d.ack();
  EXPECT_EQ(rig.state.migrations().size(), 1u);
}

TEST(MigrationDriver, TheTapAVmLeavesBehindIsNoArrival) {
  Rig rig;
  rig.driver->create(PortId::parse("vm"), HostId::parse("d"));
  rig.pump();
  rig.d.bind("vm");
  rig.pump();
  ASSERT_EQ(rig.mig("m1").state, MigrationState::completed);
  rig.s.bound.erase("vm");
  rig.s.incoming.insert("vm");  // QEMU on s has not exited yet: its tap is still there
  rig.s.ack();
  EXPECT_EQ(rig.state.migrations().size(), 1u) << "no migration back to s";
}

namespace {
// "web" runs on s with two NICs, ports vm and vm2 (both on s); d drives libvirt migrations.
struct TwoNicRig : Rig {
  explicit TwoNicRig(MigrationPolicy p = {}) : Rig(p) {
    add_port("vm2", "52:54:00:00:00:04", "s");
    s.bound.insert("vm2");
    s.vms["web"] = {"vm", "vm2"};
    Host dh = state.hosts().at(HostId::parse("d"));
    dh.migration_uri = "qemu+tcp://10.0.0.2/system";
    state.put_host(dh);
    pump();
  }
  size_t migrate_commands() const {
    size_t n = 0;
    for (const auto& m : s.migrate_commands) n += m.iface_id == "vm" || m.iface_id == "vm2";
    return n;
  }
};
}  // namespace

TEST(MigrationDriver, AMultiNicVmMigratesAsOneGroupDrivenOnceEveryPortIsReady) {
  TwoNicRig rig;
  // d has applied nothing yet: neither port is prepared, libvirt must not start.
  rig.d.set_auto_ack(false);
  auto lead = rig.driver->create_vm("web", HostId::parse("d"));
  EXPECT_EQ(lead.group, lead.id.str());
  const auto& other = rig.mig("m2");
  EXPECT_EQ(other.group, lead.id.str());
  EXPECT_EQ(other.port.str(), "vm2");
  EXPECT_EQ(rig.state.ports().at(PortId::parse("vm2")).migrating_to, HostId::parse("d"));
  rig.pump();
  EXPECT_EQ(rig.migrate_commands(), 0u);
  rig.d.set_auto_ack(true);
  rig.d.ack();
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::ready);
  EXPECT_EQ(rig.mig("m2").state, MigrationState::ready);
  ASSERT_EQ(rig.migrate_commands(), 1u) << "one libvirt migration moves every NIC";
  EXPECT_EQ(rig.s.migrate_commands.back().migration, "m1");
  EXPECT_TRUE(rig.mig("m1").timeline.count("migration_started"));
  EXPECT_FALSE(rig.mig("m2").timeline.count("migration_started"));
  // The VM pauses (both its ports; libvirt no longer lists it running), resumes on d: both cut
  // over.
  rig.s.vms.clear();
  rig.s.paused = {"vm", "vm2"};
  rig.s.ack();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::migrating);
  EXPECT_EQ(rig.mig("m2").state, MigrationState::migrating);
  rig.d.bind("vm");
  rig.d.bind("vm2");
  rig.pump();
  EXPECT_EQ(rig.mig("m1").state, MigrationState::completed);
  EXPECT_EQ(rig.mig("m2").state, MigrationState::completed) << rig.mig("m2").reason;
  EXPECT_EQ(rig.state.ports().at(PortId::parse("vm2")).host, HostId::parse("d"));
}

TEST(MigrationDriver, OnePortsFailureBeforeThePauseRollsTheWholeVmBack) {
  TwoNicRig rig;
  rig.driver->create_vm("web", HostId::parse("d"));
  rig.pump();
  ASSERT_EQ(rig.mig("m2").state, MigrationState::ready);
  // libvirt's migration (driven through m1) fails on s: both ports stay.
  rig.driver->on_migration_failed(HostId::parse("s"), "m1", "unable to connect");
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_EQ(rig.mig("m2").state, MigrationState::rolled_back);
  EXPECT_NE(rig.mig("m2").reason.find("with its VM: m1"), std::string::npos)
      << rig.mig("m2").reason;
  EXPECT_FALSE(rig.state.ports().at(PortId::parse("vm2")).migrating_to.has_value());
  EXPECT_FALSE(rig.vm().migrating_to.has_value());
  // Cancelling a member cancels the VM's group.
  rig.driver->create_vm("web", HostId::parse("d"));
  rig.driver->cancel(MigrationId::parse("m4"), "operator");
  EXPECT_EQ(rig.mig("m3").state, MigrationState::rolled_back);
  EXPECT_EQ(rig.mig("m4").state, MigrationState::rolled_back);
}

TEST(MigrationDriver, AVmGroupIsAdmittedApprovedAndRejectedAsOne) {
  MigrationPolicy p;
  p.require_approval = true;
  TwoNicRig rig(p);
  rig.driver->create_vm("web", HostId::parse("d"));
  EXPECT_EQ(rig.mig("m1").state, MigrationState::pending_approval);
  EXPECT_EQ(rig.mig("m2").state, MigrationState::pending_approval);
  rig.driver->approve(MigrationId::parse("m1"));
  EXPECT_EQ(rig.mig("m1").state, MigrationState::preparing);
  EXPECT_EQ(rig.mig("m2").state, MigrationState::preparing);

  // One port forbidden on d: the VM is rejected whole, the other port named why.
  MigrationPolicy q;
  q.forbid.push_back({"pci", "public"});
  TwoNicRig strict(q);
  Port p2 = strict.state.ports().at(PortId::parse("vm2"));
  p2.labels["pci"] = "1";
  strict.state.replace_port(p2);
  auto lead = strict.driver->create_vm("web", HostId::parse("d"));
  EXPECT_EQ(lead.state, MigrationState::rejected);
  EXPECT_NE(lead.reason.find("port 'vm2'"), std::string::npos) << lead.reason;
  EXPECT_EQ(strict.mig("m2").state, MigrationState::rejected);
  EXPECT_FALSE(strict.vm().migrating_to.has_value());
}

TEST(MigrationDriver, CancellingAMemberAfterLibvirtStartedAbortsOnceForTheWholeVm) {
  TwoNicRig rig;
  rig.driver->create_vm("web", HostId::parse("d"));
  rig.pump();
  ASSERT_TRUE(rig.mig("m1").timeline.count("migration_started"));
  // Cancel the second port: libvirt is moving the VM (through m1), so both wait for the abort.
  rig.driver->cancel(MigrationId::parse("m2"), "operator");
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolling_back);
  EXPECT_EQ(rig.mig("m2").state, MigrationState::rolling_back);
  ASSERT_FALSE(rig.s.aborts.empty());
  // s answers that the VM is still here: the whole VM is rolled back.
  rig.s.answer_abort("m1", wire::Aborted::Where::here);
  EXPECT_EQ(rig.mig("m1").state, MigrationState::rolled_back);
  EXPECT_EQ(rig.mig("m2").state, MigrationState::rolled_back);
  EXPECT_FALSE(rig.state.ports().at(PortId::parse("vm2")).migrating_to.has_value());
  rig.pump();
  EXPECT_EQ(rig.clock.pending(), 0u) << "no member's timer may outlive the group";
}
