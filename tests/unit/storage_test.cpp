// Unit tests for storage coordination on the agent: the kernel attacher's logic behind a fake
// fabric (connect with the chosen timeouts, wait for the namespace, fall back to the next path,
// disconnect what it connected on failure, idempotent after a restart), the coordinator's
// attach-on-arrival / release-on-departure / rollback / retry behaviour behind a fake attacher,
// and the volume codec.
#include <gtest/gtest.h>

#include "json_codec.hpp"
#include "storage_attacher.hpp"
#include "storage_coordinator.hpp"

using namespace cutover;
using namespace cutover::agent;

namespace {

const std::array<uint8_t, 16> kNguid{0xc0, 0x7e, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1};

Volume volume() {
  Volume v;
  v.id = "data";
  v.nqn = "nqn.2026-11.dev.cutover:vol";
  v.paths = {{IpAddress::parse("10.0.5.1"), 4420}, {IpAddress::parse("10.0.6.1"), 4420}};
  v.nguid = kNguid;
  return v;
}

struct FakeFabric : NvmeFabric {
  std::map<std::string, std::string> refuse;  // traddr -> error
  int namespace_after_scans = 0;              // the namespace shows up after this many scans
  bool wrong_namespace = false;
  std::map<std::string, std::string> connected;  // ctrl -> nqn
  std::vector<std::string> log;
  Options last_options;
  int scans = 0;

  std::string connect(const std::string& nqn, const VolumePath& p, const std::string& host_nqn,
                      const Options& o) override {
    log.push_back("connect " + p.traddr.to_string() + " as " + host_nqn);
    last_options = o;
    if (refuse.count(p.traddr.to_string())) throw StorageError(refuse[p.traddr.to_string()]);
    const std::string name = "nvme" + std::to_string(connected.size());
    connected[name] = nqn;
    return name;
  }
  std::vector<std::array<uint8_t, 16>> namespaces(const std::string& ctrl) override {
    if (!connected.count(ctrl)) return {};
    if (scans++ < namespace_after_scans) return {};
    auto g = kNguid;
    if (wrong_namespace) g[15] = 9;
    return {g};
  }
  std::vector<std::string> controllers(const std::string& nqn) override {
    std::vector<std::string> out;
    for (const auto& [c, n] : connected) {
      if (n == nqn) out.push_back(c);
    }
    return out;
  }
  void disconnect(const std::string& ctrl) override {
    log.push_back("disconnect " + ctrl);
    connected.erase(ctrl);
  }
};

struct Rig {
  FakeFabric fabric;
  int pauses = 0;
  KernelAttacher attacher{fabric, std::chrono::milliseconds(500),
                          [this](std::chrono::milliseconds) { ++pauses; }};
};

struct FakeAttacher : StorageAttacher {
  const char* kind() const override { return "probe"; }
  std::set<std::string> down;  // NQNs whose target is unreachable
  std::vector<std::string> log;
  void attach(const Volume& v, const std::string&) override {
    log.push_back("attach " + v.id);
    if (down.count(v.nqn)) throw StorageError("refused");
  }
  void detach(const Volume& v, const std::string&) override { log.push_back("detach " + v.id); }
};

DesiredState state_on(const char* self, std::optional<const char*> host,
                      std::optional<const char*> migrating_to) {
  DesiredState s;
  s.host = HostId::parse(self);
  Port p;
  p.id = PortId::parse("vm");
  p.mac = MacAddress::parse("52:54:00:00:00:01");
  p.network = NetworkId::parse("blue");
  p.iface_id = "vm";
  if (host) p.host = HostId::parse(*host);
  if (migrating_to) p.migrating_to = HostId::parse(*migrating_to);
  p.volumes = {volume()};
  s.ports = {p};
  return s;
}

}  // namespace

TEST(KernelAttacher, ConnectsWithTimeoutsThatSurviveAMigrationAndWaitsForTheNamespace) {
  Rig rig;
  rig.fabric.namespace_after_scans = 3;
  rig.attacher.attach(volume(), "nqn.2014-08.dev.cutover:host:d");
  EXPECT_EQ(rig.fabric.log,
            std::vector<std::string>{"connect 10.0.5.1 as nqn.2014-08.dev.cutover:host:d"});
  EXPECT_EQ(rig.fabric.last_options.keep_alive_tmo_s, 30);
  EXPECT_EQ(rig.fabric.last_options.reconnect_delay_s, 1);
  EXPECT_EQ(rig.pauses, 3);
  // Attached already (a second prepare, an agent restart): nothing new is connected.
  rig.attacher.attach(volume(), "nqn.2014-08.dev.cutover:host:d");
  EXPECT_EQ(rig.fabric.log.size(), 1u);
}

TEST(KernelAttacher, FallsBackToTheNextPathAndDisconnectsWhatDidNotShowTheVolume) {
  Rig rig;
  rig.fabric.refuse["10.0.5.1"] = "connect failed: Connection refused";
  rig.attacher.attach(volume(), "nqn.h");
  EXPECT_EQ(rig.fabric.connected.size(), 1u);
  Rig wrong;
  wrong.fabric.wrong_namespace = true;
  try {
    wrong.attacher.attach(volume(), "nqn.h");
    FAIL() << "attached without the expected namespace";
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("no namespace with NGUID c07e0000000040008000000000000001"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("within 500 ms"), std::string::npos) << what;
  }
  EXPECT_TRUE(wrong.fabric.connected.empty()) << "timed-out controllers must be disconnected";
  EXPECT_EQ(wrong.pauses, 20);  // 2 paths x 500 ms / 50 ms
}

TEST(KernelAttacher, DetachDisconnectsEveryControllerOfTheSubsystem) {
  Rig rig;
  rig.attacher.attach(volume(), "nqn.h");
  rig.attacher.detach(volume(), "nqn.h");
  EXPECT_TRUE(rig.fabric.connected.empty());
}

TEST(StorageCoordinator, AttachesOnArrivalKeepsWhileHereReleasesAfterLeaving) {
  FakeAttacher a;
  StorageCoordinator c(a, "nqn.h");
  EXPECT_TRUE(c.reconcile(state_on("d", "s", std::nullopt)).ready.empty()) << "not ours";
  auto r = c.reconcile(state_on("d", "s", "d"));  // prepare: arriving here
  EXPECT_EQ(r.ready, std::vector<std::string>{"vm/data"});
  c.reconcile(state_on("d", "d", std::nullopt));  // cut over: still needed, not re-attached
  EXPECT_EQ(a.log, std::vector<std::string>{"attach data"});
  r = c.reconcile(state_on("d", "e", std::nullopt));  // moved on elsewhere
  EXPECT_TRUE(r.ready.empty());
  EXPECT_EQ(a.log.back(), "detach data");
}

TEST(StorageCoordinator, RollbackReleasesTheDestinationsAttachment) {
  FakeAttacher a;
  StorageCoordinator c(a, "nqn.h");
  c.reconcile(state_on("d", "s", "d"));
  auto r = c.reconcile(state_on("d", "s", std::nullopt));  // rolled back: stays on s
  EXPECT_TRUE(r.ready.empty());
  EXPECT_EQ(a.log, (std::vector<std::string>{"attach data", "detach data"}));
}

TEST(StorageCoordinator, FailuresAreReportedAndRetried) {
  FakeAttacher a;
  a.down.insert("nqn.2026-11.dev.cutover:vol");
  StorageCoordinator c(a, "nqn.h");
  auto r = c.reconcile(state_on("d", "s", "d"));
  EXPECT_TRUE(r.ready.empty());
  EXPECT_EQ(r.failed.at("vm/data"), "refused");
  a.down.clear();
  r = c.reconcile(state_on("d", "s", "d"));
  EXPECT_EQ(r.ready, std::vector<std::string>{"vm/data"});
  EXPECT_TRUE(r.failed.empty());
}

TEST(VolumeCodec, RoundTripAndRejectsNamingTheField) {
  auto j = to_json(volume());
  EXPECT_EQ(j["nguid"], "c07e0000000040008000000000000001");
  EXPECT_EQ(volume_from_json(j), volume());
  auto field = [](nlohmann::json v) {
    try {
      volume_from_json(v, "volumes[0]");
    } catch (const ParseError& e) {
      return e.field();
    }
    return std::string("<accepted>");
  };
  auto with = [&](const char* k, nlohmann::json value) {
    auto v = to_json(volume());
    v[k] = value;
    return field(v);
  };
  EXPECT_EQ(with("nqn", "iqn.2001-04.com.example"), "volumes[0].nqn");
  EXPECT_EQ(with("paths", nlohmann::json::array()), "volumes[0].paths");
  EXPECT_EQ(with("paths", nlohmann::json::array({{{"traddr", "10.0.0.1"}, {"trsvcid", 0}}})),
            "volumes[0].paths[0].trsvcid");
  EXPECT_EQ(with("nguid", "xyz"), "volumes[0].nguid");
  EXPECT_EQ(with("id", "a b"), "volumes[0].id");
  EXPECT_EQ(with("size", 1), "volumes[0].size");
}
