// SendQueue: the messages waiting to go to one agent, bounded in bytes, each already framed as
// the WebSocket frame that carries it (server_frame). The front is the one being written. An agent
// that reads slower than its changes arrive would otherwise make the controller hold an
// ever-growing backlog; past the bound push() refuses, and the session closes so that the agent
// reconnects and gets one whole slice instead (AgentHub sends it on every hello). Pure: the socket
// plumbing is in http_server.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace cutover::controller {

// WebSocket opcodes a server sends (RFC 6455 5.2).
enum class WsOpcode : uint8_t { text = 0x1, close = 0x8, ping = 0x9, pong = 0xa };

// The longest header a server frame has: 2 bytes, then 8 of length at most (no mask key).
constexpr size_t kMaxServerFrameHeader = 10;

// The header of one whole, unfragmented server-to-client frame (RFC 6455 5.2) carrying
// `payload_size` bytes: FIN set, no extension bits, no mask (only clients mask), the shortest
// length encoding. Written to `out`; returns its length (2, 4 or 10).
inline size_t server_frame_header(WsOpcode opcode, uint64_t payload_size,
                                  char (&out)[kMaxServerFrameHeader]) {
  out[0] = static_cast<char>(0x80 | static_cast<uint8_t>(opcode));
  if (payload_size < 126) {
    out[1] = static_cast<char>(payload_size);
    return 2;
  }
  if (payload_size <= 0xffff) {
    out[1] = static_cast<char>(126);
    out[2] = static_cast<char>(payload_size >> 8);
    out[3] = static_cast<char>(payload_size & 0xff);
    return 4;
  }
  out[1] = static_cast<char>(127);
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<char>((payload_size >> (56 - 8 * i)) & 0xff);
  return 10;
}

// The whole frame: its header, then the payload. A message of the agent channel leaves as exactly
// these bytes (or as the header and the payload in one gathered send, which is the same on the
// wire).
inline std::string server_frame(WsOpcode opcode, std::string_view payload) {
  char header[kMaxServerFrameHeader];
  const size_t h = server_frame_header(opcode, payload.size(), header);
  std::string f;
  f.reserve(h + payload.size());
  f.append(header, h);
  f.append(payload);
  return f;
}

// A close frame (RFC 6455 5.5.1): the code, then as much of the reason as a control frame's 125
// bytes hold, cut at a UTF-8 boundary.
inline std::string close_frame(uint16_t code, std::string_view reason = {}) {
  std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xff)};
  size_t cut = std::min<size_t>(reason.size(), 123);
  while (cut < reason.size() && cut > 0 && (static_cast<uint8_t>(reason[cut]) & 0xc0) == 0x80) {
    --cut;
  }
  payload.append(reason.substr(0, cut));
  return server_frame(WsOpcode::close, payload);
}

class SendQueue {
 public:
  explicit SendQueue(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Queues `text`, or returns false and queues nothing when it would put more than max_bytes in
  // the queue. An empty queue takes any message, however large: a whole slice bigger than the
  // bound must still be able to go out, or the agent could never catch up.
  bool push(std::string text) {
    if (!queue_.empty() && bytes_ + text.size() > max_bytes_) return false;
    bytes_ += text.size();
    queue_.push_back(std::move(text));
    return true;
  }
  // A control frame (at most 127 bytes: a pong, the close frame) goes in whatever the bound: the
  // closing handshake must be able to start on a full queue.
  void push_control(std::string frame) {
    bytes_ += frame.size();
    queue_.push_back(std::move(frame));
  }
  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }
  size_t bytes() const { return bytes_; }
  const std::string& front() const { return queue_.front(); }
  void pop() {
    bytes_ -= queue_.front().size();
    queue_.pop_front();
  }
  // Drops everything but the front, which a write may still be reading from.
  void drop_all_but_front() {
    while (queue_.size() > 1) {
      bytes_ -= queue_.back().size();
      queue_.pop_back();
    }
  }
  void clear() {
    queue_.clear();
    bytes_ = 0;
  }

 private:
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::deque<std::string> queue_;
};

}  // namespace cutover::controller
