// ReconcileSchedule: when a dataplane thread runs a reconcile pass - the rules both backends
// (OvsDataplane, LinuxDataplane) share. A pass is due after a change (desired state, departed
// VMs, the switch's own objects) and when the timer runs out: the resync interval after a pass
// that was applied or rejected (bad input waits for new input), the retry interval after one
// that failed. A pass after a reconnect or on the resync timer reads the switch back (verify).
// Pure: the caller passes the time.
#pragma once

#include <chrono>

#include "apply_report.hpp"

namespace cutover::agent {

class ReconcileSchedule {
 public:
  using Clock = std::chrono::steady_clock;
  ReconcileSchedule(std::chrono::milliseconds resync, std::chrono::milliseconds retry)
      : resync_(resync), retry_(retry) {}

  void changed() { dirty_ = true; }
  // The switch (re)connected: what it holds is unknown.
  void reconnected() { dirty_ = verify_ = true; }
  // Whether a pass is due at `now` (a change, or the timer ran out).
  bool due(Clock::time_point now) {
    if (now >= next_) dirty_ = verify_ = true;
    return dirty_;
  }
  // Whether the due pass should read the switch back and compare everything.
  bool verify() const { return verify_; }
  // After a pass at `now`.
  void done(const ApplyReport& r, Clock::time_point now) {
    dirty_ = verify_ = false;
    next_ = now + (r.ok || r.rejected ? resync_ : retry_);
  }
  // Milliseconds until the timer runs out (for poll), -1 before the first pass.
  int timeout_ms(Clock::time_point now) const {
    if (next_ == Clock::time_point::max()) return -1;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next_ - now).count() + 1;
    return static_cast<int>(ms < 0 ? 0 : ms);
  }

 private:
  std::chrono::milliseconds resync_, retry_;
  bool dirty_ = false;
  bool verify_ = true;  // the first pass reads the switch
  Clock::time_point next_ = Clock::time_point::max();
};

}  // namespace cutover::agent
