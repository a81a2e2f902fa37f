// Unit tests for the Agent core (agent/agent.hpp): what it does with each input, against a fake
// dataplane and a recording controller link - states for another host refused, reports turned into
// ACKs and the status file, a pause reaching the dataplane and the controller, libvirt migrations
// and aborts on workers (and refused without libvirt), the libvirt hook's hold answered when the
// controller prepares, and the desired-state file re-read with a bad one kept out.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "agent.hpp"
#include "json_codec.hpp"

using namespace cutover;
using namespace cutover::agent;

namespace {

class FakeDataplane : public Dataplane {
 public:
  void start(ReportFn) override {}
  void set_desired(overlay::DesiredChange change) override { changes.push_back(std::move(change)); }
  void set_departed(std::set<std::string> ids) override { departed = std::move(ids); }
  void stop() override {}
  std::vector<overlay::DesiredChange> changes;
  std::set<std::string> departed;
};

class FakeLink : public ControllerLink {
 public:
  void report(const ApplyReport& r) override { reports.push_back(r); }
  void migration_failed(const std::string& m, const std::string& e) override {
    failed.emplace_back(m, e);
  }
  void aborted(const wire::Aborted& a) override { aborts.push_back(a); }
  void announced(const wire::Announced& a) override { announced_rounds.push_back(a); }
  void conntrack(const wire::Conntrack& ct) override { carried.push_back(ct); }
  void incoming(const std::vector<std::string>& ids) override { asked.push_back(ids); }
  std::vector<ApplyReport> reports;
  std::vector<std::pair<std::string, std::string>> failed;
  std::vector<wire::Aborted> aborts;
  std::vector<wire::Announced> announced_rounds;
  std::vector<wire::Conntrack> carried;
  std::vector<std::vector<std::string>> asked;
};

DesiredState state_for(const std::string& host, uint64_t generation) {
  DesiredState s;
  s.generation = generation;
  s.host = HostId::parse(host);
  Host h;
  h.id = s.host;
  h.underlay_ip = IpAddress::parse("192.0.2.1");
  s.hosts.push_back(h);
  Network n;
  n.id = NetworkId::parse("net");
  n.vni = Vni::from(100);
  s.networks.push_back(n);
  Port p;
  p.id = PortId::parse("p1");
  p.network = n.id;
  p.mac = MacAddress::parse("52:54:00:00:00:01");
  p.iface_id = "if-1";
  p.host = s.host;
  s.ports.push_back(p);
  return s;
}

struct Rig {
  explicit Rig(AgentSettings settings = with_self(), LibvirtCalls libvirt = {})
      : agent(
            io, std::move(settings), dataplane, [](int64_t) { return overlay::ConntrackDump(); },
            std::move(libvirt)) {
    agent.set_controller(&link);
  }
  static AgentSettings with_self() {
    AgentSettings s;
    s.self = HostId::parse("h1");
    s.relay.port = 0;
    return s;
  }
  // Runs what the workers posted until `done` holds (or 5 s).
  template <typename Done>
  bool run_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(std::chrono::milliseconds(10));
    }
    return done();
  }
  boost::asio::io_context io;
  FakeDataplane dataplane;
  FakeLink link;
  Agent agent;
};

ApplyReport applied(uint64_t generation) {
  ApplyReport r;
  r.ok = true;
  r.generation = generation;
  r.bound_ports = {"p1"};
  r.added = 3;
  return r;
}

}  // namespace

TEST(Agent, AStateForAnotherHostIsRefusedWithWhatFollowsUntilOneForThisHost) {
  Rig rig;
  rig.agent.on_desired(state_for("h2", 1));
  wire::Delta d;
  d.generation = 2;
  rig.agent.on_desired(d);
  EXPECT_TRUE(rig.dataplane.changes.empty()) << "neither the foreign state nor its delta";
  rig.agent.on_desired(state_for("h1", 3));
  rig.agent.on_desired(wire::Delta{4, {}, {}, {}});
  ASSERT_EQ(rig.dataplane.changes.size(), 2u);
  EXPECT_EQ(std::get<DesiredState>(rig.dataplane.changes[0]).generation, 3u);
  EXPECT_EQ(std::get<wire::Delta>(rig.dataplane.changes[1]).generation, 4u);
}

TEST(Agent, EachDataplaneReportIsSentAndWrittenToTheStatusFile) {
  const auto status = std::filesystem::temp_directory_path() /
                      ("cutover-agent-test-" + std::to_string(getpid()) + ".json");
  auto settings = Rig::with_self();
  settings.status_file = status.string();
  Rig rig(settings);
  rig.agent.on_desired(state_for("h1", 1));
  rig.agent.on_applied(applied(1));
  ASSERT_EQ(rig.link.reports.size(), 1u);
  EXPECT_EQ(rig.link.reports[0].generation, 1u);
  EXPECT_EQ(rig.link.reports[0].bound_ports, std::vector<std::string>{"p1"});
  std::ifstream in(status);
  ASSERT_TRUE(in) << "status file written";
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("applied_generation"), 1);
  std::filesystem::remove(status);
}

TEST(Agent, APauseReachesTheDataplaneAndTheControllerAndARunEndsIt) {
  Rig rig;
  rig.agent.on_desired(state_for("h1", 1));
  rig.agent.on_applied(applied(1));
  bool answered = false;
  ControlRequest paused{"vm_state", "", {"if-1"}, 5000, "paused_for_migration"};
  rig.agent.on_control(paused, [&](const nlohmann::json& a) { answered = a.at("ok") == true; });
  EXPECT_TRUE(answered);
  EXPECT_EQ(rig.dataplane.departed, std::set<std::string>{"if-1"});
  ASSERT_FALSE(rig.link.reports.empty());
  EXPECT_EQ(rig.link.reports.back().paused_ports, std::vector<std::string>{"p1"});
  EXPECT_TRUE(rig.link.reports.back().bound_ports.empty()) << "a paused VM's port is not up";
  rig.agent.on_control({"vm_state", "", {"if-1"}, 5000, "gone"}, [](const nlohmann::json&) {});
  EXPECT_TRUE(rig.dataplane.departed.empty());
  EXPECT_EQ(rig.link.reports.back().bound_ports, std::vector<std::string>{"p1"});
}

TEST(Agent, WithoutLibvirtMigrationsAndAbortsAreAnsweredWithWhyNot) {
  Rig rig;
  rig.agent.on_migrate({"m1", "if-1", "qemu+tcp://h2/system", {}});
  ASSERT_EQ(rig.link.failed.size(), 1u);
  EXPECT_EQ(rig.link.failed[0].first, "m1");
  EXPECT_NE(rig.link.failed[0].second.find("--libvirt-uri"), std::string::npos);
  rig.agent.on_abort({"m1", "if-1"});
  ASSERT_EQ(rig.link.aborts.size(), 1u);
  EXPECT_EQ(rig.link.aborts[0].where, wire::Aborted::Where::unknown);
}

TEST(Agent, ALibvirtMigrationIsReportedWhileItRunsAndItsFailureAfter) {
  std::atomic<bool> release{false};
  LibvirtMigrationSettings seen;
  LibvirtCalls libvirt;
  libvirt.migrate = [&](const std::string& iface, const std::string& dest,
                        const LibvirtMigrationSettings& settings) -> std::string {
    seen = settings;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return "domain with " + iface + " refused by " + dest;
  };
  libvirt.abort = [](const std::string& m, const std::string&) {
    return wire::Aborted{m, wire::Aborted::Where::here, "job aborted"};
  };
  Rig rig(Rig::with_self(), libvirt);
  rig.agent.on_desired(state_for("h1", 1));
  const LibvirtMigrationSettings asked{false, std::nullopt, std::nullopt, 100, std::nullopt};
  rig.agent.on_migrate({"m1", "if-1", "qemu+tcp://h2/system", asked});
  EXPECT_EQ(rig.agent.for_controller().live_migrations, std::vector<std::string>{"m1"})
      << "the controller can tell a running call from one lost to a restart";
  release = true;
  ASSERT_TRUE(rig.run_until([&] { return !rig.link.failed.empty(); }));
  EXPECT_EQ(rig.link.failed[0].second, "domain with if-1 refused by qemu+tcp://h2/system");
  EXPECT_EQ(seen, asked) << "the request's libvirt settings reach the libvirt call";
  EXPECT_TRUE(rig.agent.for_controller().live_migrations.empty());
  rig.agent.on_abort({"m1", "if-1"});
  ASSERT_TRUE(rig.run_until([&] { return !rig.link.aborts.empty(); }));
  EXPECT_EQ(rig.link.aborts[0].where, wire::Aborted::Where::here);
}

TEST(Agent, TheLibvirtHookIsHeldUntilTheControllerPrepares) {
  Rig rig;
  nlohmann::json answer;
  rig.agent.on_control({"incoming", "web", {"if-1"}, 5000, ""},
                       [&](const nlohmann::json& a) { answer = a; });
  ASSERT_EQ(rig.link.asked.size(), 1u);
  EXPECT_EQ(rig.link.asked[0], std::vector<std::string>{"if-1"});
  EXPECT_TRUE(answer.is_null()) << "held until the controller says";
  rig.agent.on_prepared({"if-1", "m1", true, ""});
  ASSERT_FALSE(answer.is_null());
  EXPECT_EQ(answer.at("ok"), true);
  EXPECT_EQ(answer.at("prepared"), nlohmann::json::array({"if-1"}));
}

TEST(Agent, TheHookIsAnsweredAtItsDeadlineWhenNoWordComes) {
  Rig rig;
  nlohmann::json answer;
  rig.agent.on_control({"incoming", "web", {"if-1"}, 20, ""},
                       [&](const nlohmann::json& a) { answer = a; });
  ASSERT_TRUE(rig.run_until([&] { return !answer.is_null(); }));
  EXPECT_EQ(answer.at("ok"), false);
  EXPECT_EQ(answer.at("unanswered"), nlohmann::json::array({"if-1"}));
}

TEST(Agent, WithoutAControllerTheHookIsToldSo) {
  Rig rig;
  rig.agent.set_controller(nullptr);
  nlohmann::json answer;
  rig.agent.on_control({"incoming", "web", {"if-1"}, 5000, ""},
                       [&](const nlohmann::json& a) { answer = a; });
  EXPECT_EQ(answer.at("ok"), false);
}

TEST(Agent, TheDesiredStateFileIsReadAgainAndABadOneKeepsThePrevious) {
  const auto file = std::filesystem::temp_directory_path() /
                    ("cutover-agent-test-state-" + std::to_string(getpid()) + ".json");
  AgentSettings settings;
  settings.desired_state_file = file.string();
  Rig rig(settings);
  rig.agent.set_controller(nullptr);
  std::ofstream(file) << to_json(state_for("h1", 7)).dump();
  rig.agent.reload();
  ASSERT_EQ(rig.dataplane.changes.size(), 1u);
  EXPECT_EQ(std::get<DesiredState>(rig.dataplane.changes[0]).generation, 7u);
  std::ofstream(file) << R"({"generation": "eight"})";
  rig.agent.reload();
  EXPECT_EQ(rig.dataplane.changes.size(), 1u) << "a bad file changes nothing";
  std::filesystem::remove(file);
}

#include "metrics_server.hpp"

TEST(AgentMetrics, PassesAreCountedByOutcomeAndNacksOnlyWhenTheControllerWasTold) {
  AgentMetrics m("ovs");
  ApplyReport ok;
  ok.ok = true;
  ok.generation = 7;
  ok.apply_ms = 3;
  ok.added = 4;
  ok.installed = {{"flows", 12}};
  ok.bound_ports = {"a", "b"};
  m.applied(ok, false);
  ApplyReport partial = ok;
  partial.waiting_for = {"tunnel to 192.168.100.2"};
  m.applied(partial, false);
  ApplyReport bad;
  bad.rejected = true;
  m.applied(bad, true);
  m.watch(AgentMetrics::Peer::controller);
  m.set_connected(AgentMetrics::Peer::ovsdb, true);
  const auto text = m.render();
  for (const char* want :
       {"cutover_agent_reconcile_passes_total{outcome=\"applied\"} 1\n",
        "cutover_agent_reconcile_passes_total{outcome=\"partial\"} 1\n",
        "cutover_agent_reconcile_passes_total{outcome=\"rejected\"} 1\n",
        "cutover_agent_nacks_total 1\n", "cutover_agent_objects_changed_total{op=\"added\"} 8\n",
        "cutover_agent_installed_objects{kind=\"flows\"} 12\n",
        "cutover_agent_applied_generation 7\n", "cutover_agent_ports_bound 2\n",
        "cutover_agent_apply_seconds_bucket{le=\"0.005\"} 2\n",
        "cutover_agent_connected{peer=\"controller\"} 0\n",
        "cutover_agent_connected{peer=\"ovsdb\"} 1\n"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << "\n" << text;
  }
  EXPECT_EQ(text.find("peer=\"libvirt\""), std::string::npos) << "not used: not reported";
}

TEST(AgentMetrics, ListenAddressesAreParsedOrRefusedByName) {
  EXPECT_EQ(parse_listen("127.0.0.1:9478", "--metrics-listen").port(), 9478);
  EXPECT_TRUE(parse_listen("[::1]:0", "--metrics-listen").address().is_v6());
  for (const char* bad : {"", "9478", ":9478", "127.0.0.1:", "127.0.0.1:65536", "localhost:80",
                          "127.0.0.1:80x", "[::1]"}) {
    try {
      parse_listen(bad, "--metrics-listen");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ParseError& e) {
      EXPECT_EQ(e.field(), "--metrics-listen") << bad;
    }
  }
}
