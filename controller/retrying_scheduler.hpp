// RetryingScheduler: a Scheduler whose callbacks cannot end the process. A timer's work that
// throws (a store write failing inside a migration timeout, say) is logged and run again later,
// backing off from `first` doubling to `max`, until it returns; cancel() with the id after()
// returned also stops its retries. It wraps the Scheduler that keeps the time: AsioScheduler in
// the daemon, ManualScheduler in tests.
#pragma once

#include <algorithm>
#include <map>
#include <memory>

#include "logging.hpp"
#include "scheduler.hpp"

namespace cutover::controller {

struct RetryBackoff {
  std::chrono::milliseconds first{1000};
  std::chrono::milliseconds max{60000};
};

class RetryingScheduler : public Scheduler {
 public:
  explicit RetryingScheduler(Scheduler& inner, RetryBackoff backoff = {})
      : inner_(inner), backoff_(backoff) {}
  ~RetryingScheduler() override {
    for (const auto& [id, inner_id] : inner_ids_) inner_.cancel(inner_id);
  }

  int64_t now_us() override { return inner_.now_us(); }
  uint64_t after(std::chrono::milliseconds delay, std::function<void()> fn) override {
    const uint64_t id = next_++;
    arm(id, delay, std::make_shared<std::function<void()>>(std::move(fn)), backoff_.first);
    return id;
  }
  void cancel(uint64_t id) override {
    auto it = inner_ids_.find(id);
    if (it == inner_ids_.end()) return;
    inner_.cancel(it->second);
    inner_ids_.erase(it);
  }

  uint64_t failures() const { return failures_; }  // callbacks that threw, retries included

 private:
  void arm(uint64_t id, std::chrono::milliseconds delay, std::shared_ptr<std::function<void()>> fn,
           std::chrono::milliseconds retry_in) {
    inner_ids_[id] = inner_.after(delay, [this, id, fn, retry_in] {
      inner_ids_.erase(id);
      std::string what;
      try {
        (*fn)();
        return;
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        what = "unknown exception";
      }
      ++failures_;
      logger("scheduler")
          ->error("timer {}: its work failed, retrying in {} ms: {}", id, retry_in.count(), what);
      arm(id, retry_in, fn, std::min(retry_in * 2, backoff_.max));
    });
  }

  Scheduler& inner_;
  RetryBackoff backoff_;
  uint64_t next_ = 1;
  uint64_t failures_ = 0;
  std::map<uint64_t, uint64_t> inner_ids_;  // our id -> the inner scheduler's current timer
};

}  // namespace cutover::controller
