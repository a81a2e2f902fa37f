// Unit tests for WsReader: client frames decoded whatever the pieces they arrive in, fragments
// joined, control frames between fragments, and each violation RFC 6455 names refused with its
// close code.
#include "ws_reader.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using cutover::controller::WsEvent;
using cutover::controller::WsProtocolError;
using cutover::controller::WsReader;

namespace {

// A client frame as RFC 6455 5.2 writes it: masked with `key`, the shortest length form unless
// `length_bytes` asks for a longer one (0 = shortest, 2 or 8).
std::string client_frame(uint8_t first_byte, const std::string& payload, uint32_t key = 0x1a2b3c4d,
                         int length_bytes = 0) {
  std::string f(1, static_cast<char>(first_byte));
  const uint64_t n = payload.size();
  if (length_bytes == 0) length_bytes = n < 126 ? 0 : (n <= 0xffff ? 2 : 8);
  if (length_bytes == 0) {
    f.push_back(static_cast<char>(0x80 | n));
  } else {
    f.push_back(static_cast<char>(0x80 | (length_bytes == 2 ? 126 : 127)));
    for (int i = length_bytes - 1; i >= 0; --i)
      f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  const char k[4] = {static_cast<char>(key >> 24), static_cast<char>(key >> 16),
                     static_cast<char>(key >> 8), static_cast<char>(key)};
  f.append(k, 4);
  for (size_t i = 0; i < payload.size(); ++i) f.push_back(static_cast<char>(payload[i] ^ k[i & 3]));
  return f;
}

std::vector<WsEvent> read_all(const std::string& stream, size_t max = 1 << 20) {
  WsReader r(max);
  std::vector<WsEvent> out;
  r.feed(stream, out);
  return out;
}

uint16_t refusal(const std::string& stream, size_t max = 1 << 20) {
  try {
    read_all(stream, max);
  } catch (const WsProtocolError& e) {
    return e.code;
  }
  return 0;
}

}  // namespace

TEST(WsReader, WholeMessagesInAnySplitOfTheStream) {
  const std::string big(70000, 'x');  // the 8-byte length form
  const std::string mid(300, 'y');    // the 2-byte form
  const std::string stream = client_frame(0x81, R"({"type":"ack","generation":7})") +
                             client_frame(0x81, mid) + client_frame(0x82, big) +
                             client_frame(0x81, "");
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    WsReader r(1 << 20);
    std::vector<WsEvent> out;
    for (size_t at = 0; at < stream.size();) {
      const size_t n = std::min<size_t>(stream.size() - at, 1 + rng() % (trial < 100 ? 7 : 5000));
      r.feed(std::string_view(stream).substr(at, n), out);
      at += n;
    }
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(out[0].payload, R"({"type":"ack","generation":7})");
    EXPECT_EQ(out[1].payload, mid);
    EXPECT_EQ(out[2].payload, big);
    EXPECT_EQ(out[3].payload, "");
    for (const auto& e : out) EXPECT_EQ(e.kind, WsEvent::Kind::message);
  }
}

TEST(WsReader, FragmentsJoinAndControlFramesComeBetweenThem) {
  const auto out =
      read_all(client_frame(0x01, "hel") + client_frame(0x89, "are you there") +
               client_frame(0x00, "lo ") + client_frame(0x8a, "") + client_frame(0x80, "world"));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].kind, WsEvent::Kind::ping);
  EXPECT_EQ(out[0].payload, "are you there");
  EXPECT_EQ(out[1].kind, WsEvent::Kind::pong);
  EXPECT_EQ(out[2].kind, WsEvent::Kind::message);
  EXPECT_EQ(out[2].payload, "hello world");
}

TEST(WsReader, CloseCarriesItsCodeAndReasonAndEndsTheStream) {
  auto out = read_all(client_frame(0x88, std::string("\x03\xe8", 2) + "bye") +
                      client_frame(0x81, "ignored after the close"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, WsEvent::Kind::close);
  EXPECT_EQ(out[0].close_code, 1000);
  EXPECT_EQ(out[0].payload, "bye");
  out = read_all(client_frame(0x88, ""));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].close_code, 1005) << "no code given";
  out = read_all(client_frame(0x88, std::string("\x03\xf5", 2)));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].close_code, 1013) << "try again later: what the controller sends on overflow";
}

TEST(WsReader, RefusesWhatTheRfcForbidsWithItsCloseCode) {
  std::string unmasked = client_frame(0x81, "hi");
  unmasked[1] = static_cast<char>(unmasked[1] & 0x7f);
  EXPECT_EQ(refusal(unmasked), 1002) << "unmasked";
  EXPECT_EQ(refusal(client_frame(0xc1, "hi")), 1002) << "RSV1 without an extension";
  EXPECT_EQ(refusal(client_frame(0x83, "hi")), 1002) << "reserved data opcode";
  EXPECT_EQ(refusal(client_frame(0x8b, "hi")), 1002) << "reserved control opcode";
  EXPECT_EQ(refusal(client_frame(0x09, "hi")), 1002) << "fragmented ping";
  EXPECT_EQ(refusal(client_frame(0x89, std::string(126, 'p'))), 1002) << "ping over 125 bytes";
  EXPECT_EQ(refusal(client_frame(0x80, "orphan")), 1002) << "continuation of nothing";
  EXPECT_EQ(refusal(client_frame(0x01, "a") + client_frame(0x81, "b")), 1002)
      << "a new message inside a fragmented one";
  EXPECT_EQ(refusal(client_frame(0x81, "short", 0x1a2b3c4d, 2)), 1002) << "non-minimal length";
  EXPECT_EQ(refusal(client_frame(0x81, std::string(300, 'z'), 0x1a2b3c4d, 8)), 1002)
      << "non-minimal 8-byte length";
  std::string top_bit = client_frame(0x82, std::string(70000, 'q'));
  top_bit[2] = static_cast<char>(0x80);
  EXPECT_EQ(refusal(top_bit), 1002) << "64-bit length with its top bit set";
  EXPECT_EQ(refusal(client_frame(0x88, "\x03")), 1002) << "close of one byte";
  EXPECT_EQ(refusal(client_frame(0x88, std::string("\x03\xed", 2))), 1002) << "close code 1005";
  EXPECT_EQ(refusal(client_frame(0x88, std::string("\x03\xf7", 2))), 1002) << "close code 1015";
  EXPECT_EQ(refusal(client_frame(0x81, std::string(101, 'm')), 100), 1009) << "over the limit";
  EXPECT_EQ(
      refusal(client_frame(0x01, std::string(60, 'm')) + client_frame(0x80, std::string(60, 'n')),
              100),
      1009)
      << "fragments adding up past the limit";
  EXPECT_EQ(refusal(client_frame(0x81, std::string(100, 'm')), 100), 0) << "exactly the limit";
}

TEST(WsReader, AnIncompleteFrameWaitsForTheRest) {
  const std::string f = client_frame(0x81, "generation");
  WsReader r(1024);
  std::vector<WsEvent> out;
  r.feed(std::string_view(f).substr(0, f.size() - 1), out);
  EXPECT_TRUE(out.empty());
  r.feed(std::string_view(f).substr(f.size() - 1), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].payload, "generation");
}
