// LeaderElection: exactly one controller leads, chosen through etcd with a lease-guarded key
// (PREFIX/leader = the leader's advertised URL, attached to its lease). Runs on its own thread
// with its own EtcdClient: campaigns (a transaction that creates the key only if it is absent),
// keeps the lease alive, and watches for the key to go (polling, a few times a second). The
// controller reads its state through thread-safe getters; a win hands it the key's creation
// revision, which EtcdStore compares in every write (the fence). Leadership is lost when the
// lease can no longer be kept alive within its TTL, or when the key is no longer ours.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "etcd_client.hpp"

namespace cutover::controller {

struct ElectionOptions {
  std::string key;       // PREFIX/leader
  std::string identity;  // this controller's advertised URL, the key's value while it leads
  std::chrono::seconds ttl{2};
  std::chrono::milliseconds poll{100};  // how often a follower looks at the key
};

class LeaderElection {
 public:
  LeaderElection(std::unique_ptr<EtcdClient> client, ElectionOptions options);
  // Resigns (revokes the lease, so that another controller takes over at once) and stops.
  ~LeaderElection();
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  void start();
  const std::string& key() const { return options_.key; }

  // The revision at which this controller's leadership key was created; 0 while it does not lead.
  int64_t leading() const { return leading_.load(); }
  // Who leads as far as this controller last saw ("" unknown: none, or etcd unreachable).
  std::string leader() const;
  // Whether etcd answered within the last TTL.
  bool etcd_reachable() const { return reachable_.load(); }
  uint64_t elections_won() const { return won_.load(); }
  uint64_t leaderships_lost() const { return lost_.load(); }
  // Gives up leadership now (e.g. a write was fenced): revokes the lease and campaigns again.
  void step_down(const std::string& why);

 private:
  void run();
  void round();
  void lose(const std::string& why);

  std::unique_ptr<EtcdClient> client_;
  ElectionOptions options_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::string leader_;     // guarded by mu_
  std::string step_down_;  // guarded by mu_: a reason asked for from outside
  std::atomic<int64_t> leading_{0};
  std::atomic<bool> reachable_{false};
  std::atomic<uint64_t> won_{0}, lost_{0};
  // Owned by the election thread.
  int64_t lease_ = 0;
  std::chrono::steady_clock::time_point lease_valid_until_{};
  std::chrono::steady_clock::time_point next_keepalive_{};
  std::chrono::steady_clock::time_point last_answer_{};
};

}  // namespace cutover::controller
