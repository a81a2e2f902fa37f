// LeaderElection implementation: one loop on its own thread, a round every `poll`.
#include "leader_election.hpp"

#include <utility>

#include "logging.hpp"

namespace cutover::controller {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

LeaderElection::LeaderElection(std::unique_ptr<EtcdClient> client, ElectionOptions options)
    : client_(std::move(client)), options_(std::move(options)) {}

LeaderElection::~LeaderElection() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (lease_ != 0) {
    try {
      client_->revoke(lease_);  // the key goes with it: a follower takes over at once
      if (leading_.load()) logger("election")->info("resigned leadership");
    } catch (const std::exception& e) {
      logger("election")->warn("could not revoke the lease on the way out: {}", e.what());
    }
  }
}

void LeaderElection::start() {
  thread_ = std::thread([this] { run(); });
}

std::string LeaderElection::leader() const {
  std::lock_guard lock(mu_);
  return leader_;
}

void LeaderElection::step_down(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    step_down_ = why;
  }
  wake_.notify_all();
}

void LeaderElection::run() {
  auto log = logger("election");
  Clock::time_point last_log{};
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (stop_) return;
    }
    try {
      round();
    } catch (const std::exception& e) {
      const auto now = Clock::now();
      if (now - last_answer_ > options_.ttl) reachable_ = false;
      if (leading_.load() && now >= lease_valid_until_) {
        lose(std::string("etcd did not answer within the lease's TTL: ") + e.what());
        lease_ = 0;  // it expired, as far as anyone may assume
      }
      if (now - last_log >= std::chrono::seconds(5)) {
        log->warn("etcd: {}", e.what());
        last_log = now;
      }
    }
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, options_.poll, [&] { return stop_ || !step_down_.empty(); });
  }
}

void LeaderElection::lose(const std::string& why) {
  leading_ = 0;
  ++lost_;
  {
    std::lock_guard lock(mu_);
    leader_.clear();
  }
  logger("election")->warn("stepping down: {}", why);
}

void LeaderElection::round() {
  std::string asked;
  {
    std::lock_guard lock(mu_);
    asked.swap(step_down_);
  }
  if (!asked.empty()) {
    if (leading_.load()) lose(asked);
    // Our key goes with the lease, and someone else may take it. Forgotten even if etcd does not
    // answer: then the lease (and the key) expire a TTL after the last keepalive.
    const int64_t lease = std::exchange(lease_, 0);
    if (lease != 0) client_->revoke(lease);
  }
  const auto ttl = options_.ttl;
  if (lease_ == 0) {
    const auto sent = Clock::now();
    const auto [id, granted] = client_->grant(ttl.count());
    lease_ = id;
    lease_valid_until_ = sent + std::chrono::seconds(granted);
    next_keepalive_ = sent + ttl / 3;
  } else if (Clock::now() >= next_keepalive_) {
    const auto sent = Clock::now();
    const int64_t left = client_->keepalive(lease_);
    if (left <= 0) {
      lease_ = 0;
      if (leading_.load()) lose("the lease expired (this controller was paused or cut off)");
      return;
    }
    lease_valid_until_ = sent + std::chrono::seconds(left);
    next_keepalive_ = sent + ttl / 3;
  }
  const auto key = EtcdClient::b64(options_.key);
  if (const int64_t mine = leading_.load()) {
    const auto kvs = client_->range(options_.key, "");
    if (kvs.empty() || kvs[0].create_revision != mine) {
      lose(kvs.empty() ? "the leadership key is gone" : "the leadership key is another's");
    }
  } else {
    const json res = client_->call(
        "kv/txn", {{"compare", json::array({{{"target", "CREATE"},
                                             {"key", key},
                                             {"result", "EQUAL"},
                                             {"create_revision", "0"}}})},
                   {"success", json::array({{{"request_put",
                                              {{"key", key},
                                               {"value", EtcdClient::b64(options_.identity)},
                                               {"lease", std::to_string(lease_)}}}}})},
                   {"failure", json::array({{{"request_range", {{"key", key}}}}})}});
    std::string leader;
    int64_t won_at = 0;
    const auto ok = res.find("succeeded");
    if (ok != res.end() && ok->is_boolean() && ok->get<bool>()) {
      // The key was created in this transaction: its create_revision is the header's revision.
      won_at = EtcdClient::num(EtcdClient::header(res), "revision");
    } else if (const auto rs = res.find("responses"); rs != res.end() && rs->is_array()) {
      for (const auto& r : *rs) {
        const auto range = r.find("response_range");
        if (!r.is_object() || range == r.end()) continue;
        const auto kvs = EtcdClient::range_answer(*range, nullptr);
        if (!kvs.empty()) {
          const auto& kv = kvs[0];
          leader = kv.value;
          // Ours already, on our live lease (we stepped down while etcd could not revoke it, and
          // it survived): we lead; nobody else can take a key that is not free.
          if (kv.lease == lease_) won_at = kv.create_revision;
        }
      }
    }
    if (won_at != 0) {
      leading_ = won_at;
      ++won_;
      leader = options_.identity;
      logger("election")
          ->info("elected leader (leadership key {} created at revision {})", options_.key, won_at);
    }
    std::lock_guard lock(mu_);
    if (leader != leader_ && !leader.empty() && leader != options_.identity) {
      logger("election")->info("the leader is {}", leader);
    }
    leader_ = leader;
  }
  reachable_ = true;
  last_answer_ = Clock::now();
}

}  // namespace cutover::controller
