// ReadinessPoller: readers hear of bytes on their sockets (again while bytes are left unread),
// stop hearing once removed, and are let go on close() (the cycle with the server ends there).
// Socket pairs in this process; the io_context is run by hand.
#include "readiness_poller.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

using cutover::controller::ReadinessPoller;

namespace {

struct Pair {
  int a = -1, b = -1;
  Pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0) {
      a = fds[0];
      b = fds[1];
    }
  }
  ~Pair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
};

// Counts its wake-ups and reads at most `per_call` bytes each time.
struct Counter : ReadinessPoller::Reader {
  int fd;
  size_t per_call;
  int calls = 0;
  std::string got;
  Counter(int f, size_t n) : fd(f), per_call(n) {}
  void readable() override {
    ++calls;
    char buf[64];
    const ssize_t n = ::recv(fd, buf, std::min(per_call, sizeof buf), MSG_DONTWAIT);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  }
};

// Runs the io_context until `done()` holds, or 5 s pass (then the check that follows fails).
template <typename Done>
void run_until(boost::asio::io_context& io, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
}

// For what must not happen: a bounded run in which it had the chance to.
void run_a_while(boost::asio::io_context& io) {
  io.restart();
  io.run_for(std::chrono::milliseconds(50));
}

}  // namespace

TEST(ReadinessPoller, TellsEachReaderOfItsBytesUntilTheyAreAllRead) {
  boost::asio::io_context io;
  auto poller = std::make_shared<ReadinessPoller>(io);
  Pair p1, p2;
  auto r1 = std::make_shared<Counter>(p1.a, 2);  // reads 2 bytes per wake-up
  auto r2 = std::make_shared<Counter>(p2.a, 64);
  ASSERT_TRUE(poller->add(p1.a, r1));
  ASSERT_TRUE(poller->add(p2.a, r2));
  EXPECT_EQ(poller->size(), 2u);
  run_a_while(io);
  EXPECT_EQ(r1->calls, 0) << "woken with nothing to read";
  ASSERT_EQ(::write(p1.b, "abcdef", 6), 6);
  run_until(io, [&] { return r1->got.size() == 6; });
  EXPECT_EQ(r1->got, "abcdef") << "bytes left unread must be reported again";
  EXPECT_EQ(r1->calls, 3);
  EXPECT_EQ(r2->calls, 0);
  ASSERT_EQ(::write(p2.b, "xyz", 3), 3);
  run_until(io, [&] { return r2->got.size() == 3; });
  EXPECT_EQ(r2->got, "xyz");
}

TEST(ReadinessPoller, ARemovedReaderHearsNothingMoreAndIsLetGo) {
  boost::asio::io_context io;
  auto poller = std::make_shared<ReadinessPoller>(io);
  Pair p;
  auto r = std::make_shared<Counter>(p.a, 64);
  ASSERT_TRUE(poller->add(p.a, r));
  EXPECT_EQ(r.use_count(), 2);
  poller->remove(p.a);
  poller->remove(p.a);  // twice: a no-op
  EXPECT_EQ(r.use_count(), 1);
  EXPECT_EQ(poller->size(), 0u);
  ASSERT_EQ(::write(p.b, "x", 1), 1);
  run_a_while(io);
  EXPECT_EQ(r->calls, 0);
}

TEST(ReadinessPoller, APeerThatClosesIsReported) {
  boost::asio::io_context io;
  auto poller = std::make_shared<ReadinessPoller>(io);
  Pair p;
  auto r = std::make_shared<Counter>(p.a, 64);
  ASSERT_TRUE(poller->add(p.a, r));
  ::close(p.b);
  p.b = -1;
  run_until(io, [&] { return r->calls >= 1; });
  EXPECT_GE(r->calls, 1) << "the reader must be told, so that its read sees the end";
  poller->remove(p.a);
}

TEST(ReadinessPoller, CloseLetsEveryReaderGoAndRefusesNewOnes) {
  boost::asio::io_context io;
  auto poller = std::make_shared<ReadinessPoller>(io);
  Pair p1, p2;
  auto r = std::make_shared<Counter>(p1.a, 64);
  ASSERT_TRUE(poller->add(p1.a, r));
  poller->close();
  EXPECT_EQ(r.use_count(), 1);
  EXPECT_FALSE(poller->add(p2.a, std::make_shared<Counter>(p2.a, 64)));
  poller->remove(p1.a);  // after close: a no-op
  run_a_while(io);       // the pending wait ends, aborted
  EXPECT_EQ(r->calls, 0);
}

// More sockets ready at once than one batch of events holds, and a poller that had no reader
// left and gets one again.
TEST(ReadinessPoller, ServesMoreReadySocketsThanOneBatchAndWakesAgainAfterEmptying) {
  boost::asio::io_context io;
  auto poller = std::make_shared<ReadinessPoller>(io);
  std::vector<std::unique_ptr<Pair>> pairs;
  std::vector<std::shared_ptr<Counter>> readers;
  for (int i = 0; i < 300; ++i) {  // 600 descriptors: within a default limit of 1,024
    pairs.push_back(std::make_unique<Pair>());
    ASSERT_GE(pairs.back()->a, 0);
    readers.push_back(std::make_shared<Counter>(pairs.back()->a, 64));
    ASSERT_TRUE(poller->add(pairs.back()->a, readers.back()));
    ASSERT_EQ(::write(pairs.back()->b, "x", 1), 1);
  }
  auto all_read = [&] {
    for (const auto& r : readers) {
      if (r->got.empty()) return false;
    }
    return true;
  };
  run_until(io, all_read);
  EXPECT_TRUE(all_read()) << "a ready socket beyond the first batch was never served";
  for (const auto& p : pairs) poller->remove(p->a);
  EXPECT_EQ(poller->size(), 0u);
  run_a_while(io);  // the wait ends with nothing to watch
  auto again = std::make_shared<Counter>(pairs[0]->a, 64);
  ASSERT_TRUE(poller->add(pairs[0]->a, again));
  ASSERT_EQ(::write(pairs[0]->b, "y", 1), 1);
  run_until(io, [&] { return again->calls > 0; });
  EXPECT_EQ(again->got, "y");
}

// A reader whose turn removes another reader that is ready in the same batch: that one is not
// called (it may be gone).
struct Remover : Counter {
  ReadinessPoller* poller;
  int victim;
  Remover(int f, ReadinessPoller* p, int v) : Counter(f, 64), poller(p), victim(v) {}
  void readable() override {
    Counter::readable();
    poller->remove(victim);
  }
};

TEST(ReadinessPoller, AReaderRemovedByAnotherInTheSameBatchIsNotCalled) {
  boost::asio::io_context io;
  auto poller = std::make_shared<ReadinessPoller>(io);
  Pair p1, p2;
  auto r1 = std::make_shared<Remover>(p1.a, poller.get(), p2.a);
  auto r2 = std::make_shared<Remover>(p2.a, poller.get(), p1.a);
  ASSERT_TRUE(poller->add(p1.a, r1));
  ASSERT_TRUE(poller->add(p2.a, r2));
  ASSERT_EQ(::write(p1.b, "a", 1), 1);
  ASSERT_EQ(::write(p2.b, "b", 1), 1);
  run_until(io, [&] { return r1->calls + r2->calls > 0; });
  run_a_while(io);
  EXPECT_EQ(r1->calls + r2->calls, 1) << "the one removed first must not be called";
}
