// Scheduler: time for the controller's logic — the current time and one-shot timers — behind an
// interface so the migration state machine runs on a ManualScheduler in tests (no sleeps) and on
// Asio timers in the daemon.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>

namespace cutover::controller {

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual int64_t now_us() = 0;  // wall clock, microseconds since the epoch
  virtual uint64_t after(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  virtual void cancel(uint64_t timer) = 0;
};

// Time stands still until advance() is called; due timers then fire in order.
class ManualScheduler : public Scheduler {
 public:
  int64_t now_us() override { return now_us_; }
  uint64_t after(std::chrono::milliseconds delay, std::function<void()> fn) override {
    timers_.emplace(std::make_pair(now_us_ + delay.count() * 1000, next_), std::move(fn));
    return next_++;
  }
  void cancel(uint64_t timer) override {
    std::erase_if(timers_, [&](const auto& t) { return t.first.second == timer; });
  }
  void advance(std::chrono::milliseconds d) {
    const int64_t until = now_us_ + d.count() * 1000;
    while (!timers_.empty() && timers_.begin()->first.first <= until) {
      auto it = timers_.begin();
      now_us_ = it->first.first;
      auto fn = std::move(it->second);
      timers_.erase(it);
      fn();
    }
    now_us_ = until;
  }
  size_t pending() const { return timers_.size(); }

 private:
  int64_t now_us_ = 1'700'000'000'000'000;
  uint64_t next_ = 1;
  std::map<std::pair<int64_t, uint64_t>, std::function<void()>> timers_;
};

}  // namespace cutover::controller
