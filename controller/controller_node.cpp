// ControllerNode implementation: the stack of one phase (state, hub, driver, REST, server) on its
// own event loop, and the loop of phases.
#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include "controller_node.hpp"

#include <boost/asio.hpp>
#include <fstream>
#include <thread>

#include "agent_hub.hpp"
#include "asio_scheduler.hpp"
#include "http_server.hpp"
#include "leadership.hpp"
#include "logging.hpp"
#include "metrics.hpp"
#include "rest_api.hpp"
#include "retrying_scheduler.hpp"

namespace cutover::controller {

extern const char* const kOpenApiYaml;

namespace {

// Leadership as the REST API sees it: this phase's role (a follower phase that just won the
// election is still a follower until the leader phase has loaded the state), the election's view
// of who leads, and how the follower's last refresh went.
class ElectionView : public Leadership {
 public:
  ElectionView(const LeaderElection& e, bool phase_leading)
      : election_(e), phase_leading_(phase_leading) {}
  bool leading() const override { return phase_leading_ && election_.leading() != 0; }
  std::string leader() const override {
    // Won, but not yet serving as the leader: nobody to send a client to for a moment.
    if (!phase_leading_ && election_.leading() != 0) return "";
    return election_.leader();
  }
  bool stale() const override { return stale_; }
  uint64_t elections_won() const override { return election_.elections_won(); }
  uint64_t leaderships_lost() const override { return election_.leaderships_lost(); }
  bool stale_ = false;

 private:
  const LeaderElection& election_;
  const bool phase_leading_;
};

// The store as a phase sees it: loads and successful commits go through to the real store and
// are remembered, so that a follower that cannot reach etcd (or has just stepped down) still
// answers reads from the last copy it had, marked stale.
class RememberingStore : public Store {
 public:
  RememberingStore(Store& real, StateCopy& copy) : real_(real), copy_(copy) {}
  std::vector<StoredRecord> load(uint64_t& generation) override {
    if (from_copy && copy_.have) {
      // A follower phase starts from the copy at once (the leader phase it follows kept it
      // current) and catches up on its first refresh, rather than wait on etcd with its port shut.
      from_copy = false;
      fell_back = true;
      return served(generation);
    }
    try {
      uint64_t g = 0;
      auto records = real_.load(g);
      copy_.records.clear();
      for (auto& r : records) copy_.records[{r.kind, r.id}] = std::move(r.body);
      copy_.generation = g;
      copy_.have = true;
    } catch (const StoreUnavailable& e) {
      if (!copy_.have || !fallback) throw;
      logger("controller")->warn("store unreachable ({}); serving the last copy read", e.what());
      fell_back = true;
    }
    return served(generation);
  }
  void commit(uint64_t generation, const std::vector<StoredRecord>& upserts,
              const std::vector<std::pair<std::string, std::string>>& deletes) override {
    real_.commit(generation, upserts, deletes);
    for (const auto& d : deletes) copy_.records.erase(d);
    for (const auto& r : upserts) copy_.records[{r.kind, r.id}] = r.body;
    copy_.generation = generation;
  }
  bool fallback = false;   // a follower may serve the last copy
  bool from_copy = false;  // the next load serves the copy without asking
  bool fell_back = false;  // and did

 private:
  std::vector<StoredRecord> served(uint64_t& generation) const {
    generation = copy_.generation;
    std::vector<StoredRecord> out;
    out.reserve(copy_.records.size());
    for (const auto& [key, body] : copy_.records) out.push_back({key.first, key.second, body});
    return out;
  }
  Store& real_;
  StateCopy& copy_;
};

}  // namespace

ControllerNode::ControllerNode(NodeConfig config, Store& store, EtcdStore* etcd,
                               LeaderElection* election)
    : config_(std::move(config)), store_(store), etcd_(etcd), election_(election) {}

void ControllerNode::run() {
  auto log = logger("controller");
  bool leading = election_ == nullptr || election_->leading() != 0;
  auto last_warn = std::chrono::steady_clock::time_point{};
  for (;;) {
    End end;
    try {
      end = serve(leading);
    } catch (const StoreUnavailable& e) {
      // etcd not reachable before this controller ever read the state (it starts before etcd,
      // or with the cluster down): nothing to serve yet, so wait for it rather than exit.
      if (std::chrono::steady_clock::now() - last_warn > std::chrono::seconds(10)) {
        log->warn("the store cannot be reached yet ({}); retrying every second", e.what());
        last_warn = std::chrono::steady_clock::now();
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
      leading = election_ != nullptr && election_->leading() != 0;
      continue;
    }
    switch (end) {
      case End::stopped:
        return;
      case End::elected:
        leading = true;
        break;
      case End::stepped_down:
        leading = false;
        break;
    }
  }
}

ControllerNode::End ControllerNode::serve(bool leading) {
  auto log = logger("controller");
  End end = End::stopped;
  // Before the io_context: sessions still queued in it when it is destroyed count themselves
  // out of the connection gauges as they go.
  Metrics metrics;
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  if (etcd_) {
    // The leader's every write holds only while its leadership key is the one it created. A
    // follower's writes are redirected before they reach the state; should one slip through, its
    // fence (a revision no key has) refuses it.
    const int64_t mine = leading ? election_->leading() : 0;
    if (mine == 0) leading = false;
    etcd_->set_fence(election_->key(), leading ? mine : -1);
  }
  RememberingStore store(store_, copy_);
  store.fallback = !leading;
  store.from_copy = !leading;
  ControllerState state(store);
  int64_t loaded_revision = etcd_ ? etcd_->revision() : 0;
  AgentHub hub(state);
  AsioScheduler clock(io);
  // A timer's work that throws (a store write failing) is logged and retried, never fatal: it
  // would otherwise unwind through io.run() and end the process.
  RetryingScheduler scheduler(clock);
  MigrationDriver migrations(state, hub, scheduler, metrics, config_.policy);
  // After the driver: it hears each agent report first (a VM that moved is followed before the
  // inventory looks at it).
  Inventory inventory(state, hub, scheduler, config_.inventory);
  // The console's live events: after the driver and the inventory have reacted to a report.
  EventFeed feed(state, hub);
  hub.on_agent_update = [&feed, before = std::move(hub.on_agent_update)](
                            const HostId& h, AgentHub::AgentChange what) {
    if (before) before(h, what);
    feed.agent_changed(h);
  };
  hub.on_fanout_acked = [&](double seconds) { metrics.observe_fanout(seconds); };
  state.on_change = [&](uint64_t, const ChangeSet& c) {
    hub.publish(c);
    inventory.state_changed();
    feed.state_changed(c);
  };
  state.set_retention(config_.retention);
  std::function<void()> prune = [&] {
    if (size_t n = state.prune(scheduler.now_us())) {
      log->info("retention: dropped {} audit entries", n);
    }
    scheduler.after(std::chrono::hours(1), prune);
  };
  if (leading) {
    // Now and hourly; a store error is retried by the scheduler.
    scheduler.after(std::chrono::milliseconds(0), prune);
    migrations.recover();
  }
  RestApi api(state, hub, migrations, inventory, metrics, Access(config_.token, config_.read_token),
              kOpenApiYaml);
  std::unique_ptr<ElectionView> view;
  if (election_) {
    view = std::make_unique<ElectionView>(*election_, leading);
    api.set_leadership(view.get());
  }
  HttpServer server(io, config_.listen, api, hub, state, feed, metrics, config_.limits);
  if (config_.tls.any()) server.set_tls(make_server_tls(config_.tls));
  server.start();
  if (!config_.port_file.empty()) {
    std::ofstream(config_.port_file + ".tmp") << server.port() << "\n";
    std::rename((config_.port_file + ".tmp").c_str(), config_.port_file.c_str());
  }
  log->info(
      "cutover-controller {}listening on {}:{} ({}; store {}, generation {}, {} hosts, {} ports)",
      election_ ? (leading ? "leading, " : "following, ") : "",
      config_.listen.address().to_string(), server.port(),
      config_.tls.any() ? "HTTPS and wss://, agents by certificate" : "plain HTTP and ws://",
      config_.store_name, state.generation(), state.hosts().size(), state.ports().size());
  if (!config_.tls.any()) {
    log->warn(
        "no TLS (--tls-cert, --tls-key, --tls-ca): {}; tokens and desired state travel in "
        "clear text and agents are who their hello says",
        config_.listen.address().is_loopback() ? "listening on loopback only"
                                               : "--insecure-clear-text on a network address");
  }

  // Among HA controllers: watch for the phase to end (elected, or leadership lost or in doubt)
  // and, as a follower, keep the copy of the state up with etcd.
  boost::asio::steady_timer watch(io);
  auto last_refresh = std::chrono::steady_clock::now();
  auto last_contact = last_refresh;
  std::function<void()> check = [&] {
    if (leading && !etcd_->trouble().empty()) election_->step_down(etcd_->trouble());
    if (leading && election_->leading() == 0) {
      log->warn("no longer the leader: closing agents and serving as a follower");
      end = End::stepped_down;
      io.stop();
      return;
    }
    if (!leading && election_->leading() != 0) {
      log->info("elected: loading the state from etcd and taking over agents and migrations");
      end = End::elected;
      io.stop();
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!leading && now - last_refresh >= std::chrono::milliseconds(250)) {
      last_refresh = now;
      try {
        const int64_t head = etcd_->head_revision();
        last_contact = now;
        if (head != loaded_revision || store.fell_back) {
          store.fell_back = false;
          state.reload();
          loaded_revision = etcd_->revision();
        }
      } catch (const std::exception& e) {
        log->debug("follower refresh: {}", e.what());
      }
      // Behind, as far as anyone can tell, once etcd was silent for a lease's length.
      view->stale_ = store.fell_back || now - last_contact > std::chrono::seconds(2);
    }
    watch.expires_after(std::chrono::milliseconds(50));
    watch.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) check();
    });
  };
  if (election_) check();

  boost::asio::signal_set reload(io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hup =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        if (config_.tls.any()) {
          try {
            server.set_tls(make_server_tls(config_.tls));
            log->info("SIGHUP: TLS certificate, CA and revocation list re-read ({})",
                      config_.tls.crl.empty() ? "no --tls-crl" : config_.tls.crl);
          } catch (const std::exception& e) {
            log->error("SIGHUP: keeping the previous TLS settings: {}", e.what());
          }
        }
        reload.async_wait(on_hup);
      };
  reload.async_wait(on_hup);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log->info("signal {}: stopping", sig);
    end = End::stopped;
    io.stop();
  });
  io.run();
  return end;
}

}  // namespace cutover::controller
