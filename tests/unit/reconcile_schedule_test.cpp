// Unit tests for ReconcileSchedule: when a dataplane pass is due and whether it verifies.
#include <gtest/gtest.h>

#include "reconcile_schedule.hpp"

using namespace cutover::agent;
using std::chrono::milliseconds;

TEST(ReconcileSchedule, ChangesRunAtOnceTheTimerVerifiesFailuresRetrySooner) {
  ReconcileSchedule s(milliseconds(30000), milliseconds(500));
  const auto t0 = ReconcileSchedule::Clock::time_point{} + std::chrono::hours(1);
  EXPECT_FALSE(s.due(t0)) << "nothing to do before a change";
  EXPECT_EQ(s.timeout_ms(t0), -1);
  s.changed();
  ASSERT_TRUE(s.due(t0));
  EXPECT_TRUE(s.verify()) << "the first pass reads the switch";
  ApplyReport ok;
  ok.ok = true;
  s.done(ok, t0);
  EXPECT_FALSE(s.due(t0 + milliseconds(10)));
  EXPECT_EQ(s.timeout_ms(t0 + milliseconds(10)), 29991);
  s.changed();
  ASSERT_TRUE(s.due(t0 + milliseconds(20)));
  EXPECT_FALSE(s.verify()) << "a change alone is applied incrementally";
  ApplyReport failed;
  s.done(failed, t0 + milliseconds(20));
  EXPECT_FALSE(s.due(t0 + milliseconds(519)));
  ASSERT_TRUE(s.due(t0 + milliseconds(520))) << "a failure is retried after the retry interval";
  EXPECT_TRUE(s.verify()) << "the timer's pass verifies";
  ApplyReport rejected;
  rejected.rejected = true;
  s.done(rejected, t0 + milliseconds(520));
  EXPECT_FALSE(s.due(t0 + milliseconds(29000))) << "bad input waits for new input";
  EXPECT_TRUE(s.due(t0 + milliseconds(30520)));
  s.done(ok, t0 + milliseconds(30520));
  s.reconnected();
  ASSERT_TRUE(s.due(t0 + milliseconds(30521)));
  EXPECT_TRUE(s.verify()) << "after a reconnect the switch is read back";
}
