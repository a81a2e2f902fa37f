// Unit tests for RetryingScheduler on a ManualScheduler: a callback that throws is retried with
// back-off until it succeeds instead of ending the process, and cancel() stops its retries.
#include "retrying_scheduler.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

using namespace cutover::controller;
using std::chrono::milliseconds;

TEST(RetryingScheduler, RetriesAThrowingCallbackWithBackoffUntilItSucceeds) {
  ManualScheduler clock;
  RetryingScheduler sched(clock, {milliseconds(100), milliseconds(400)});
  std::vector<int64_t> attempts;
  const int64_t t0 = clock.now_us();
  sched.after(milliseconds(50), [&] {
    attempts.push_back((clock.now_us() - t0) / 1000);
    if (attempts.size() < 5) throw std::runtime_error("store write failed: disk I/O error");
  });
  EXPECT_NO_THROW(clock.advance(milliseconds(10000)));
  // 50, then +100, +200, +400, +400 (capped).
  EXPECT_EQ(attempts, (std::vector<int64_t>{50, 150, 350, 750, 1150}));
  EXPECT_EQ(sched.failures(), 4u);
  EXPECT_EQ(clock.pending(), 0u) << "nothing left once it succeeded";
}

TEST(RetryingScheduler, CancelStopsPendingRetries) {
  ManualScheduler clock;
  RetryingScheduler sched(clock, {milliseconds(100), milliseconds(100)});
  int runs = 0;
  const auto id = sched.after(milliseconds(10), [&] {
    ++runs;
    throw std::runtime_error("nope");
  });
  clock.advance(milliseconds(10));
  EXPECT_EQ(runs, 1);
  sched.cancel(id);
  clock.advance(milliseconds(1000));
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(clock.pending(), 0u);
}

TEST(RetryingScheduler, PassesTimeAndOrderThrough) {
  ManualScheduler clock;
  RetryingScheduler sched(clock);
  EXPECT_EQ(sched.now_us(), clock.now_us());
  std::vector<int> order;
  sched.after(milliseconds(20), [&] { order.push_back(2); });
  sched.after(milliseconds(10), [&] { order.push_back(1); });
  const auto never = sched.after(milliseconds(15), [&] { order.push_back(99); });
  sched.cancel(never);
  clock.advance(milliseconds(30));
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}
