// Unit tests for ControllerState and the stores: validation across objects, atomicity when the
// store fails, persistence across a reopen (SQLite), and per-host slicing.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "controller_state.hpp"
#include "json_codec.hpp"
#include "sqlite_store.hpp"

using namespace cutover;
using namespace cutover::controller;

namespace {
Host host(const char* id, const char* ip) {
  Host h;
  h.id = HostId::parse(id);
  h.underlay_ip = IpAddress::parse(ip);
  return h;
}
Network net(const char* id, int64_t vni) {
  Network n;
  n.id = NetworkId::parse(id);
  n.name = id;
  n.vni = Vni::from(vni);
  return n;
}
Port port(const char* id, const char* mac, const char* network, const char* on = nullptr) {
  Port p;
  p.id = PortId::parse(id);
  p.mac = MacAddress::parse(mac);
  p.network = NetworkId::parse(network);
  p.iface_id = id;
  if (on) p.host = HostId::parse(on);
  return p;
}
int status_of(const std::function<void()>& fn, std::string* field = nullptr) {
  try {
    fn();
  } catch (const ApiError& e) {
    if (field) *field = e.field();
    return e.status();
  }
  return 0;
}
}  // namespace

TEST(ControllerState, ValidatesAcrossObjects) {
  MemoryStore store;
  ControllerState s(store);
  s.put_host(host("h1", "192.168.0.1"));
  s.create_network(net("blue", 100));
  std::string field;
  EXPECT_EQ(status_of([&] { s.create_network(net("red", 100)); }, &field), 409);
  EXPECT_EQ(field, "vni");
  EXPECT_EQ(status_of([&] { s.create_network(net("blue", 7)); }, &field), 409);
  EXPECT_EQ(field, "id");
  EXPECT_EQ(status_of([&] { s.put_host(host("h2", "192.168.0.1")); }, &field), 409);
  EXPECT_EQ(field, "underlay_ip");
  s.create_port(port("p1", "52:54:00:00:00:01", "blue", "h1"));
  EXPECT_EQ(status_of([&] { s.create_port(port("p2", "52:54:00:00:00:01", "blue")); }, &field),
            409);
  EXPECT_EQ(field, "mac");
  EXPECT_EQ(status_of([&] { s.create_port(port("p3", "52:54:00:00:00:03", "green")); }, &field),
            422);
  EXPECT_EQ(field, "network");
  EXPECT_EQ(
      status_of([&] { s.create_port(port("p4", "52:54:00:00:00:04", "blue", "h9")); }, &field),
      422);
  EXPECT_EQ(field, "host");
  auto dup_iface = port("p5", "52:54:00:00:00:05", "blue");
  dup_iface.iface_id = "p1";
  EXPECT_EQ(status_of([&] { s.create_port(dup_iface); }, &field), 409);
  EXPECT_EQ(field, "iface_id");
  EXPECT_EQ(status_of([&] { s.delete_network(NetworkId::parse("blue")); }), 409);
  EXPECT_EQ(status_of([&] { s.delete_host(HostId::parse("h1")); }), 409);
  EXPECT_EQ(status_of([&] { s.delete_port(PortId::parse("nope")); }), 404);
  EXPECT_EQ(s.generation(), 3u);  // host, network, port: refusals never bump it
}

TEST(ControllerState, AStatefulPortRunsOnEitherBackend) {
  MemoryStore store;
  ControllerState s(store);
  s.put_host(host("ovs1", "192.168.0.1"));
  auto lin = host("lin", "192.168.0.2");
  lin.backend = Backend::linux;
  s.put_host(lin);
  s.create_network(net("blue", 100));
  // Both dataplanes enforce ingress_allow (OVS: conntrack flows; Linux: nftables).
  auto stateful = port("p1", "52:54:00:00:00:01", "blue", "lin");
  stateful.ingress_allow = std::vector<IngressRule>{{"tcp", 22}};
  EXPECT_EQ(status_of([&] { s.create_port(stateful); }), 0);
  stateful.host = HostId::parse("ovs1");
  EXPECT_EQ(status_of([&] { s.replace_port(stateful); }), 0);
  stateful.host = HostId::parse("lin");
  EXPECT_EQ(status_of([&] { s.replace_port(stateful); }), 0);
}

TEST(ControllerState, FailedStoreWriteChangesNothing) {
  MemoryStore store;
  ControllerState s(store);
  s.create_network(net("blue", 100));
  store.fail_next_commit = true;
  EXPECT_EQ(status_of([&] { s.create_port(port("p1", "52:54:00:00:00:01", "blue")); }), 500);
  EXPECT_EQ(s.generation(), 1u);
  EXPECT_TRUE(s.ports().empty());
  ControllerState reloaded(store);
  EXPECT_TRUE(reloaded.ports().empty());
  EXPECT_EQ(reloaded.generation(), 1u);
}

TEST(ControllerState, SqliteSurvivesReopen) {
  auto path = std::filesystem::temp_directory_path() /
              ("cutover-store-" + std::to_string(getpid()) + ".db");
  std::filesystem::remove(path);
  {
    SqliteStore store(path.string());
    ControllerState s(store);
    s.put_host(host("h1", "192.168.0.1"));
    s.create_network(net("blue", 100));
    s.create_port(port("p1", "52:54:00:00:00:01", "blue", "h1"));
    s.delete_port(PortId::parse("p1"));
    s.create_port(port("p2", "52:54:00:00:00:02", "blue", "h1"));
    s.append_audit({{"event", "x"}});
  }
  SqliteStore store(path.string());
  ControllerState s(store);
  EXPECT_EQ(s.generation(), 5u);
  EXPECT_EQ(s.ports().size(), 1u);
  EXPECT_TRUE(s.ports().count(PortId::parse("p2")));
  EXPECT_EQ(s.hosts().at(HostId::parse("h1")).underlay_ip.to_string(), "192.168.0.1");
  EXPECT_EQ(s.audit().size(), 1u);
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
}

TEST(ControllerState, SqliteNamesTheFileItCannotOpen) {
  try {
    SqliteStore store("/nonexistent-dir/x.db");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.db"), std::string::npos);
  }
}

TEST(ControllerState, SlicesPerHost) {
  MemoryStore store;
  ControllerState s(store);
  s.put_host(host("h1", "192.168.0.1"));
  s.put_host(host("h2", "192.168.0.2"));
  s.put_host(host("h3", "192.168.0.3"));
  s.create_network(net("blue", 100));
  s.create_network(net("red", 200));
  s.create_port(port("b1", "52:54:00:00:00:01", "blue", "h1"));
  s.create_port(port("b2", "52:54:00:00:00:02", "blue", "h2"));
  s.create_port(port("r3", "52:54:00:00:00:03", "red", "h3"));
  auto d1 = s.desired_for(HostId::parse("h1"));
  EXPECT_EQ(d1.networks.size(), 1u);
  EXPECT_EQ(d1.ports.size(), 2u);
  EXPECT_EQ(d1.hosts.size(), 2u);  // h1 and h2; h3 shares no network
  auto d3 = s.desired_for(HostId::parse("h3"));
  EXPECT_EQ(d3.ports.size(), 1u);
  auto idle = s.desired_for(HostId::parse("h9"));
  EXPECT_TRUE(idle.ports.empty());
  EXPECT_EQ(idle.generation, s.generation());
}

TEST(ControllerState, OpenMigrationsLeaveOutFinishedHistoryAlsoAfterAReopen) {
  auto path =
      std::filesystem::temp_directory_path() / ("cutover-open-" + std::to_string(getpid()) + ".db");
  std::filesystem::remove(path);
  auto migration = [](const char* id, const char* of, MigrationState state) {
    Migration m;
    m.id = MigrationId::parse(id);
    m.port = PortId::parse(of);
    m.source = HostId::parse("h1");
    m.destination = HostId::parse("h2");
    m.state = state;
    return m;
  };
  const auto ids = [](const ControllerState& s) {
    std::vector<std::string> out;
    for (const auto& id : s.open_migrations()) out.push_back(id.str());
    return out;
  };
  {
    SqliteStore store(path.string());
    ControllerState s(store);
    s.put_host(host("h1", "192.168.0.1"));
    s.put_host(host("h2", "192.168.0.2"));
    s.create_network(net("blue", 100));
    s.create_port(port("plain", "52:54:00:00:00:01", "blue", "h1"));
    auto disk = port("disk", "52:54:00:00:00:02", "blue", "h1");
    disk.volumes.push_back(Volume{"data",
                                  "nqn.2014-08.org.example:data",
                                  {{IpAddress::parse("10.0.0.9"), 4420}},
                                  std::nullopt});
    s.create_port(disk);
    s.put_migration(migration("m1", "plain", MigrationState::completed));
    s.put_migration(migration("m2", "plain", MigrationState::migrating));
    s.put_migration(migration("m3", "disk", MigrationState::completed));  // storage still held
    s.put_migration(migration("m4", "disk", MigrationState::rolled_back));
    s.put_migration(migration("m5", "disk", MigrationState::rejected));  // never held storage
    EXPECT_EQ(ids(s), (std::vector<std::string>{"m2", "m3", "m4"}));
    auto done = migration("m2", "plain", MigrationState::completed);
    s.put_migration(done);
    auto released = migration("m4", "disk", MigrationState::rolled_back);
    released.timeline["storage_released"] = 1;
    s.put_migration(released);
    EXPECT_EQ(ids(s), (std::vector<std::string>{"m3"}));
  }
  SqliteStore store(path.string());
  ControllerState s(store);  // migrations load before the ports they name: indexed after both
  EXPECT_EQ(s.migrations().size(), 5u);
  EXPECT_EQ(ids(s), (std::vector<std::string>{"m3"}));
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
}

TEST(ControllerState, AuditKeepsAtMostMaxEntriesAndNeverReusesASeq) {
  MemoryStore store;
  {
    ControllerState s(store);
    s.set_retention({.max_entries = 3});
    for (int i = 1; i <= 5; ++i) s.append_audit({{"event", "e" + std::to_string(i)}});
    ASSERT_EQ(s.audit().size(), 3u);
    EXPECT_EQ(s.audit().front()["seq"], 3);
    EXPECT_EQ(s.audit().back()["seq"], 5);
  }
  uint64_t gen = 0;
  size_t stored = 0;
  for (const auto& r : store.load(gen)) stored += r.kind == "audit";
  EXPECT_EQ(stored, 3u) << "the dropped entries must leave the store too";
  ControllerState reopened(store);
  reopened.append_audit({{"event", "after restart"}});
  EXPECT_EQ(reopened.audit().back()["seq"], 6) << "seq continues after a reload";
}

TEST(ControllerState, PruneDropsEntriesOlderThanMaxAgeInOneCommit) {
  MemoryStore store;
  ControllerState s(store);
  const int64_t day = 86400LL * 1000000;
  const int64_t now = 100 * day;
  s.set_retention({.max_age_us = 30 * day, .max_entries = 1000});
  for (int64_t age : {40, 31, 29, 1}) s.append_audit({{"time_us", now - age * day}});
  store.fail_next_commit = true;
  EXPECT_THROW(s.prune(now), ApiError);
  EXPECT_EQ(s.audit().size(), 4u) << "a failed prune changes nothing";
  EXPECT_EQ(s.prune(now), 2u);
  ASSERT_EQ(s.audit().size(), 2u);
  EXPECT_EQ(s.audit().front()["seq"], 3);
  EXPECT_EQ(s.prune(now), 0u);
  ControllerState reopened(store);
  EXPECT_EQ(reopened.audit().size(), 2u);
  // A lower entry limit takes effect on the next prune, not only on the next append.
  reopened.set_retention({.max_age_us = 30 * day, .max_entries = 1});
  EXPECT_EQ(reopened.prune(now), 1u);
  EXPECT_EQ(reopened.audit().front()["seq"], 4);
}

TEST(ControllerState, RetentionDropsFinishedMigrationsButNeverAnOpenOneOrTheNewest) {
  MemoryStore store;
  const int64_t day = 86400LL * 1000000;
  const int64_t now = 100 * day;
  {
    ControllerState s(store);
    Host h;
    h.id = HostId::parse("h1");
    h.underlay_ip = IpAddress::parse("10.0.0.1");
    s.put_host(h);
    auto mig = [&](int n, MigrationState st, int64_t age_days) {
      Migration m;
      m.id = MigrationId::parse("m" + std::to_string(n));
      m.port = PortId::parse("p");
      m.source = m.destination = HostId::parse("h1");
      m.state = st;
      m.timeline["requested"] = now - age_days * day;
      s.put_migration(m);
    };
    mig(1, MigrationState::completed, 40);
    mig(2, MigrationState::ready, 40);  // open: kept whatever its age
    mig(3, MigrationState::rolled_back, 35);
    mig(4, MigrationState::completed, 1);
    mig(5, MigrationState::rejected, 31);  // the newest: kept so that m5 is never reused
    s.set_retention({.max_age_us = 30 * day, .max_entries = 1000});
    EXPECT_EQ(s.prune(now), 2u);
    std::vector<std::string> left;
    for (const auto& [id, m] : s.migrations()) left.push_back(id.str());
    EXPECT_EQ(left, (std::vector<std::string>{"m2", "m4", "m5"}));
    s.set_retention({.max_age_us = 30 * day, .max_entries = 2});
    EXPECT_EQ(s.prune(now), 1u) << "beyond max_entries the oldest finished one goes";
    EXPECT_EQ(s.migrations().count(MigrationId::parse("m4")), 0u);
  }
  ControllerState reopened(store);
  EXPECT_EQ(reopened.migrations().size(), 2u);
  EXPECT_EQ(reopened.next_migration_id().str(), "m6") << "ids are never reused";
}

TEST(ControllerState, AStagedAuditEntryIsStoredWithTheStateItDescribesOrNotAtAll) {
  MemoryStore store;
  ControllerState s(store);
  Migration m;
  m.id = MigrationId::parse("m1");
  m.port = PortId::parse("p");
  m.source = m.destination = HostId::parse("h1");
  m.state = MigrationState::rejected;
  s.stage_audit({{"event", "rejected"}});
  store.fail_next_commit = true;
  EXPECT_THROW(s.put_migration(m), ApiError);
  EXPECT_TRUE(s.audit().empty()) << "the change it describes did not happen";
  s.stage_audit({{"event", "rejected"}});
  s.put_migration(m);
  ASSERT_EQ(s.audit().size(), 1u);
  EXPECT_EQ(s.audit().front()["seq"], 1);
  ControllerState reopened(store);
  EXPECT_EQ(reopened.audit().size(), 1u);
  EXPECT_EQ(reopened.migrations().size(), 1u);
}

// The slicing index against the rule it keeps (every port on a network a host has a port
// location on; every host of those ports): after each of many random port changes, and after a
// reopen from the store.
TEST(ControllerState, SlicesFromTheIndexEqualTheRuleAfterRandomChanges) {
  MemoryStore store;
  ControllerState s(store);
  const char* hosts[] = {"h1", "h2", "h3", "h4"};
  for (int i = 0; i < 4; ++i)
    s.put_host(host(hosts[i], ("192.168.0." + std::to_string(i + 1)).c_str()));
  const char* nets[] = {"n0", "n1", "n2"};
  for (int i = 0; i < 3; ++i) s.create_network(net(nets[i], 100 + i));
  auto brute = [&](const HostId& id) {
    DesiredState d;
    d.generation = s.generation();
    d.host = id;
    std::set<NetworkId> on;
    for (const auto& [pid, p] : s.ports()) {
      if (port_is_at(p, id)) on.insert(p.network);
    }
    std::set<HostId> host_ids{id};
    for (const auto& n : on) d.networks.push_back(s.networks().at(n));
    for (const auto& [pid, p] : s.ports()) {
      if (!on.count(p.network)) continue;
      d.ports.push_back(p);
      for (const auto& h : port_locations(p)) host_ids.insert(h);
    }
    for (const auto& h : host_ids) d.hosts.push_back(s.hosts().at(h));
    return d;
  };
  std::mt19937 rng(5);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  for (int step = 0; step < 400; ++step) {
    const std::string id = "p" + std::to_string(pick(12));
    char mac[32];
    std::snprintf(mac, sizeof mac, "52:54:00:00:00:%02x", std::stoi(id.substr(1)));
    auto p = port(id.c_str(), mac, nets[pick(3)], pick(5) ? hosts[pick(4)] : nullptr);
    if (p.host && pick(3) == 0) p.migrating_to = HostId::parse(hosts[pick(4)]);
    if (p.host && pick(4) == 0) p.previous_host = HostId::parse(hosts[pick(4)]);
    if (p.migrating_to == p.host) p.migrating_to.reset();
    if (p.previous_host == p.host) p.previous_host.reset();
    if (!s.ports().count(p.id)) {
      s.create_port(p);
    } else if (pick(4) == 0) {
      s.delete_port(p.id);
    } else {
      s.replace_port(p);
    }
    for (const auto* h : hosts) {
      ASSERT_EQ(s.desired_for(HostId::parse(h)), brute(HostId::parse(h))) << "step " << step;
      for (const auto& [pid, q] : s.ports()) ASSERT_EQ(s.port_json(pid), to_json(q).dump());
    }
  }
  ControllerState reopened(store);
  for (const auto* h : hosts) {
    EXPECT_EQ(reopened.desired_for(HostId::parse(h)), s.desired_for(HostId::parse(h)));
  }
}
