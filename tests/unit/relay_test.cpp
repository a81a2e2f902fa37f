// Unit tests for the migration relay's pure parts: BacklogLedger (which frames a tap's reader did
// not consume, from captures and its read counter, with the queue that existed before the watch
// unknown) and the relay datagram codec.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <random>
#include <set>

#include "backlog_ledger.hpp"
#include "parse_error.hpp"
#include "relay_wire.hpp"

using namespace cutover;
using namespace cutover::agent;

namespace {
BacklogLedger::Frame frame(uint8_t n) { return BacklogLedger::Frame(60, n); }

// A tap between the switch (enqueue) and QEMU (read), with the watch's view of it: what the
// capture saw and what tx_packets says. `queued` frames were there before the watch began.
struct Tap {
  explicit Tap(uint64_t queued) : ledger(1000), pending(queued), tx(1000) {}
  void enqueue(uint8_t n) {
    ledger.captured(frame(n));
    ++pending;
  }
  void read(int k = 1) {
    for (int i = 0; i < k && pending > 0; ++i, --pending) ++tx;
  }
  void sample() { ledger.sample(tx); }  // the capture is drained as frames arrive here
  BacklogLedger ledger;
  uint64_t pending;
  uint64_t tx;
};

std::vector<uint8_t> ids(const std::vector<BacklogLedger::Frame>& frames) {
  std::vector<uint8_t> out;
  for (const auto& f : frames) out.push_back(f[0]);
  return out;
}
}  // namespace

TEST(BacklogLedger, AtThePauseTheFramesQemuDidNotReadAreTheUnread) {
  Tap tap(0);
  for (uint8_t n = 1; n <= 10; ++n) {
    tap.enqueue(n);
    tap.read();
    tap.sample();
  }
  tap.enqueue(11);  // the VM stops: 11 and 12 stay in the queue
  tap.enqueue(12);
  EXPECT_EQ(ids(tap.ledger.unread(tap.tx)), (std::vector<uint8_t>{11, 12}));
}

TEST(BacklogLedger, AQueueFromBeforeTheWatchIsLearnedWhenItEmpties) {
  Tap tap(3);  // three frames nobody captured were already queued
  tap.enqueue(1);
  tap.sample();  // nothing read yet: no information
  EXPECT_EQ(tap.ledger.q0_estimate(), 0u);
  tap.read(4);  // the three old ones and frame 1
  tap.sample();
  EXPECT_EQ(tap.ledger.q0_estimate(), 3u);
  tap.enqueue(2);
  tap.enqueue(3);
  tap.read();
  EXPECT_EQ(ids(tap.ledger.unread(tap.tx)), std::vector<uint8_t>{3});
}

TEST(BacklogLedger, AnUnlearnedOldQueueCostsFramesNeverADuplicate) {
  Tap tap(2);
  for (uint8_t n = 1; n <= 5; ++n) tap.enqueue(n);  // the queue never empties before the pause
  tap.read(4);                                      // old 1, old 2, frames 1 and 2
  tap.sample();
  // 3, 4, 5 are unread; with q0 unknown (0) the ledger believes 4 of its frames were read and
  // offers only 5: two frames short, but nothing the VM already had.
  const auto unread = ids(tap.ledger.unread(tap.tx));
  EXPECT_EQ(unread, std::vector<uint8_t>{5});
}

// The whole path as the kernel has it: the capture sees a frame before the tap queues it, but
// its own buffer can overflow (missed); the tap's queue is bounded (dropped, counted in
// tx_dropped); QEMU reads in order and tx_packets counts it. The ledger sees only the capture
// and the two counters.
struct LossyTap {
  LossyTap(size_t queued, size_t capacity) : ledger(0), capacity(capacity), q0(queued) {
    for (size_t i = 0; i < queued; ++i) queue.push_back(0);  // 0: an old, uncaptured frame
  }
  void enqueue(uint32_t id, bool capture_misses) {
    if (capture_misses) {
      ++missed;
    } else {
      captured.push_back(id);
    }
    if (queue.size() >= capacity) {
      ++dropped;  // captured (or missed) on the way, refused by the tap
      return;
    }
    queue.push_back(id);
  }
  void read() {
    if (queue.empty()) return;
    if (queue.front() != 0) was_read.insert(queue.front());
    queue.pop_front();
    ++tx;
  }
  void sample() {  // tx first, then the capture drained, then its drop counter
    for (auto id : captured) ledger.captured(frame_of(id));
    captured.clear();
    ledger.sample(tx);
  }
  std::vector<uint32_t> depart() {
    for (auto id : captured) ledger.captured(frame_of(id));
    captured.clear();
    std::vector<uint32_t> out;
    for (const auto& f : ledger.unread(tx, dropped)) out.push_back(id_of(f));
    return out;
  }
  static BacklogLedger::Frame frame_of(uint32_t id) {
    BacklogLedger::Frame f(60, 0);
    std::memcpy(f.data(), &id, sizeof id);
    return f;
  }
  static uint32_t id_of(const BacklogLedger::Frame& f) {
    uint32_t id;
    std::memcpy(&id, f.data(), sizeof id);
    return id;
  }
  BacklogLedger ledger;
  size_t capacity;
  uint64_t q0;
  std::deque<uint32_t> queue;
  std::vector<uint32_t> captured;  // captured, not yet drained into the ledger
  std::set<uint32_t> was_read;
  uint64_t tx = 0, missed = 0, dropped = 0;
};

TEST(BacklogLedger, AFrameTheTapDroppedShiftsTheReadsAndIsNotRelayedTwice) {
  LossyTap tap(0, 2);
  tap.enqueue(1, false);
  tap.enqueue(2, false);
  tap.enqueue(3, false);  // the queue is full: the tap drops 3
  tap.read();
  tap.read();  // 1 and 2
  tap.sample();
  tap.enqueue(4, false);
  tap.read();  // 4
  tap.enqueue(5, false);
  // Two reads after the drop would say "1..3 read" without tx_dropped, and offer 4 again.
  EXPECT_EQ(tap.depart(), std::vector<uint32_t>{5});
}

TEST(BacklogLedger, AFrameTheCaptureMissedAndTheVmReadCountsAsAnOldOne) {
  LossyTap tap(0, 100);
  tap.enqueue(1, true);  // queued, never captured
  tap.enqueue(2, false);
  tap.read();
  tap.read();
  tap.sample();  // two reads, one capture: taken as one old frame, which keeps 3 and 4 in place
  EXPECT_EQ(tap.ledger.q0_estimate(), 1u);
  tap.enqueue(3, false);
  tap.enqueue(4, false);
  tap.read();
  EXPECT_EQ(tap.depart(), std::vector<uint32_t>{4});
}

// Random runs of arrivals, reads, samples, capture misses and tap drops: the ledger never offers
// a frame the VM read, and, when nothing was missed or dropped and the old queue was learned,
// offers exactly the frames still queued.
TEST(BacklogLedger, NeverOffersAFrameTheVmReadWhateverTheCountersSaw) {
  std::mt19937 rng(20261207);
  size_t exact = 0, lossless_runs = 0;
  for (int run = 0; run < 2000; ++run) {
    const bool lossy = run % 2 == 1;
    LossyTap tap(rng() % 4, lossy ? 2 + rng() % 6 : 1000);
    uint32_t next = 1;
    const int steps = 20 + static_cast<int>(rng() % 200);
    for (int i = 0; i < steps; ++i) {
      switch (rng() % 4) {
        case 0:
        case 1:
          tap.enqueue(next++, lossy && rng() % 8 == 0);
          break;
        case 2:
          tap.read();
          break;
        default:
          tap.sample();
          break;
      }
    }
    for (int i = 0; i < 4; ++i) tap.enqueue(next++, lossy && rng() % 8 == 0);  // the pause
    const auto offered = tap.depart();
    std::set<uint32_t> still_queued(tap.queue.begin(), tap.queue.end());
    for (auto id : offered) {
      ASSERT_FALSE(tap.was_read.count(id)) << "run " << run << ": frame " << id << " read twice";
    }
    if (!lossy && tap.ledger.q0_estimate() == tap.q0) {
      ++lossless_runs;
      still_queued.erase(0);
      exact += std::set<uint32_t>(offered.begin(), offered.end()) == still_queued;
    }
  }
  EXPECT_GT(lossless_runs, 0u);
  EXPECT_EQ(exact, lossless_runs);
}

TEST(BacklogLedger, ForgetsWhatWasReadAndBoundsWhatItKeeps) {
  BacklogLedger ledger(0, 4);
  for (uint8_t n = 1; n <= 6; ++n) ledger.captured(frame(n));  // a backlog longer than kept
  EXPECT_EQ(ledger.captured_total(), 6u);
  EXPECT_EQ(ids(ledger.unread(0)), (std::vector<uint8_t>{3, 4, 5, 6}));
  EXPECT_TRUE(ledger.unread(0).empty()) << "unread() hands frames over once";
  ledger.captured(frame(7));
  ledger.sample(7);  // all seven read
  EXPECT_TRUE(ledger.unread(7).empty());
}

TEST(RelayWire, RoundTripsAndRefusesWhatIsNotARelayDatagram) {
  const std::vector<uint8_t> f(64, 0xab);
  const auto d = encode_relay("6f1c2a9e-0000-4000-8000-00000000000a", f);
  const auto back = decode_relay(d.data(), d.size());
  EXPECT_EQ(back.iface_id, "6f1c2a9e-0000-4000-8000-00000000000a");
  EXPECT_EQ(back.frame, f);
  auto field = [](std::vector<uint8_t> bytes) {
    try {
      decode_relay(bytes.data(), bytes.size());
    } catch (const ParseError& e) {
      return e.field();
    }
    return std::string("<accepted>");
  };
  EXPECT_EQ(field({'X', 'V', 'R', '1', 1, 'a'}), "magic");
  auto bad = d;
  bad[4] = 0;
  EXPECT_EQ(field(bad), "iface_id");
  bad = d;
  bad[4] = 200;
  EXPECT_EQ(field(bad), "iface_id");
  bad = encode_relay("a b", f);
  EXPECT_EQ(field(bad), "iface_id");
  EXPECT_EQ(field(encode_relay("vm", std::vector<uint8_t>(13))), "frame");
  EXPECT_EQ(field(encode_relay("vm", std::vector<uint8_t>(kRelayMaxFrame + 1))), "frame");
}

#include "control_request.hpp"
#include "incoming_waits.hpp"

TEST(ControlRequest, DecodesBothOpsAndNamesWhatIsWrong) {
  auto in = decode_control_request(
      R"({"op":"incoming","domain":"vm1","iface_ids":["a","b"],"timeout_ms":2500})");
  EXPECT_EQ(in.op, "incoming");
  EXPECT_EQ(in.domain, "vm1");
  EXPECT_EQ(in.iface_ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(in.timeout_ms, 2500);
  EXPECT_EQ(decode_control_request(R"({"op":"incoming","iface_ids":["a"]})").timeout_ms, 5000);
  auto p = decode_control_request(R"({"op":"vm_state","iface_ids":["a"],"state":"arriving"})");
  EXPECT_EQ(p.state, "arriving");
  auto field = [](const std::string& line) {
    try {
      decode_control_request(line);
    } catch (const ParseError& e) {
      return e.field();
    }
    return std::string("<accepted>");
  };
  EXPECT_EQ(field(R"({"op":"reboot"})"), "op");
  EXPECT_EQ(field(R"({"op":"incoming","iface_ids":[1]})"), "iface_ids[0]");
  EXPECT_EQ(field(R"({"op":"incoming","iface_ids":["a"],"timeout_ms":0})"), "timeout_ms");
  EXPECT_EQ(field(R"({"op":"incoming","iface_ids":["a"],"timeout_ms":600000})"), "timeout_ms");
  EXPECT_EQ(field(R"({"op":"vm_state","state":"running"})"), "iface_ids");
  EXPECT_EQ(field(R"({"op":"vm_state","iface_ids":["a"],"state":"asleep"})"), "state");
  EXPECT_EQ(field(R"({"op":"vm_state","iface_ids":["a"]})"), "state");
  EXPECT_EQ(field(R"({"op":"incoming","iface_ids":[],"extra":1})"), "extra");
  EXPECT_EQ(field("{not json"), "");
}

TEST(IncomingWaits, AnsweredWhenEveryInterfaceHasTheControllersWordOrAtTheDeadline) {
  using Clock = IncomingWaits::Clock;
  IncomingWaits w;
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  std::vector<IncomingWaits::Result> answers;
  auto record = [&](const IncomingWaits::Result& r) { answers.push_back(r); };
  w.add({"a", "b"}, t0 + std::chrono::seconds(5), record);
  w.add({}, t0 + std::chrono::seconds(5), record);  // nothing to wait for: answered at once
  ASSERT_EQ(answers.size(), 1u);
  w.resolved(wire::Prepared{"a", "m1", true, ""});
  EXPECT_EQ(answers.size(), 1u) << "b has no word yet";
  w.resolved(wire::Prepared{"b", "", false, "no cutover port"});
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[1].prepared, std::vector<std::string>{"a"});
  EXPECT_EQ(answers[1].refused.at("b"), "no cutover port");
  EXPECT_TRUE(answers[1].unanswered.empty());
  w.add({"c"}, t0 + std::chrono::seconds(2), record);
  EXPECT_EQ(w.next_deadline(), t0 + std::chrono::seconds(2));
  w.expire(t0 + std::chrono::seconds(1));
  EXPECT_EQ(answers.size(), 2u);
  w.expire(t0 + std::chrono::seconds(2));
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[2].unanswered, std::vector<std::string>{"c"});
  EXPECT_FALSE(w.next_deadline());
}
