// Unit tests for SendQueue: the byte bound an agent's backlog cannot pass, the whole slice that an
// empty queue always takes, and dropping the backlog without touching the message being written.
#include "send_queue.hpp"

#include <gtest/gtest.h>

using cutover::controller::SendQueue;

TEST(SendQueue, RefusesWhatWouldPassTheBoundAndKeepsCount) {
  SendQueue q(100);
  EXPECT_TRUE(q.push(std::string(60, 'a')));
  EXPECT_TRUE(q.push(std::string(40, 'b')));  // exactly at the bound
  EXPECT_EQ(q.bytes(), 100u);
  EXPECT_FALSE(q.push("c"));
  EXPECT_EQ(q.size(), 2u) << "a refused message must not be queued";
  q.pop();
  EXPECT_EQ(q.bytes(), 40u);
  EXPECT_EQ(q.front(), std::string(40, 'b'));
  EXPECT_TRUE(q.push(std::string(60, 'c')));
  EXPECT_FALSE(q.push("d"));
}

TEST(SendQueue, AnEmptyQueueTakesAMessageLargerThanTheBound) {
  SendQueue q(100);
  EXPECT_TRUE(q.push(std::string(1000, 's'))) << "a whole slice must be able to go out";
  EXPECT_FALSE(q.push("delta")) << "but nothing may queue behind it past the bound";
  q.pop();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(SendQueue, DroppingTheBacklogKeepsTheMessageBeingWritten) {
  SendQueue q(100);
  q.push("front");
  q.push("one");
  q.push("two");
  const char* writing = q.front().data();  // what an async write holds a buffer to
  q.drop_all_but_front();
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.front(), "front");
  EXPECT_EQ(q.front().data(), writing);
  EXPECT_EQ(q.bytes(), 5u);
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}
