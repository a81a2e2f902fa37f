// AsioScheduler: Scheduler on the controller's io_context (steady timers, system clock for
// timestamps). Timers run on the same thread as everything else in the controller.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>

#include "scheduler.hpp"

namespace cutover::controller {

class AsioScheduler : public Scheduler {
 public:
  explicit AsioScheduler(boost::asio::io_context& io) : io_(io) {}
  int64_t now_us() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  uint64_t after(std::chrono::milliseconds delay, std::function<void()> fn) override {
    const uint64_t id = next_++;
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
    timers_[id] = timer;
    timer->async_wait([this, id, fn = std::move(fn)](const boost::system::error_code& ec) {
      if (ec) return;
      timers_.erase(id);
      fn();
    });
    return id;
  }
  void cancel(uint64_t id) override {
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    it->second->cancel();
    timers_.erase(it);
  }

 private:
  boost::asio::io_context& io_;
  uint64_t next_ = 1;
  std::map<uint64_t, std::shared_ptr<boost::asio::steady_timer>> timers_;
};

}  // namespace cutover::controller
