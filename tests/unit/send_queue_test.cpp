// Unit tests for SendQueue: the byte bound an agent's backlog cannot pass, the whole slice that an
// empty queue always takes, and dropping the backlog without touching the message being written;
// and for server_frame, the bytes each queued message is written as.
#include "send_queue.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// The bytes a session writes for each message: RFC 6455's header, every length encoding at its
// edges, and nothing after the payload.
TEST(ServerFrame, HeaderAsRfc6455Section52WithTheShortestLength) {
  using cutover::controller::server_frame;
  using cutover::controller::WsOpcode;
  const auto header = [](const std::string& f, size_t payload) {
    return std::vector<unsigned char>(f.begin(), f.end() - static_cast<std::ptrdiff_t>(payload));
  };
  using Bytes = std::vector<unsigned char>;
  EXPECT_EQ(server_frame(WsOpcode::text, ""), std::string("\x81\x00", 2));
  EXPECT_EQ(server_frame(WsOpcode::ping, ""), std::string("\x89\x00", 2));
  EXPECT_EQ(server_frame(WsOpcode::text, "{}"), std::string("\x81\x02{}", 4));
  const std::string p125(125, 'a'), p126(126, 'b'), p65535(65535, 'c'), p65536(65536, 'd');
  EXPECT_EQ(header(server_frame(WsOpcode::text, p125), 125), (Bytes{0x81, 125}));
  EXPECT_EQ(header(server_frame(WsOpcode::text, p126), 126), (Bytes{0x81, 126, 0x00, 126}));
  EXPECT_EQ(header(server_frame(WsOpcode::text, p65535), 65535), (Bytes{0x81, 126, 0xff, 0xff}));
  EXPECT_EQ(header(server_frame(WsOpcode::text, p65536), 65536),
            (Bytes{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}));
  const std::string f = server_frame(WsOpcode::text, p65536);
  EXPECT_EQ(f.substr(10), p65536) << "the payload follows the header unchanged (no mask)";
}

TEST(ServerFrame, CloseFrameHoldsTheCodeAndAReasonCutAtAUtf8Boundary) {
  using cutover::controller::close_frame;
  EXPECT_EQ(close_frame(1000), std::string("\x88\x02\x03\xe8", 4));
  // 122 ASCII bytes, then a 2-byte character that would straddle the 123-byte limit.
  const std::string reason = std::string(122, 'a') + "\xc3\xa9" + "tail";
  const std::string f = close_frame(1013, reason);
  ASSERT_EQ(static_cast<uint8_t>(f[1]), 2u + 122u) << "the whole character goes, not half of it";
  EXPECT_EQ(f.substr(2, 2), std::string("\x03\xf5", 2));
  EXPECT_EQ(f.substr(4), std::string(122, 'a'));
}
