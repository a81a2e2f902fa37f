// WsReader: the frames an agent sends on its channel (RFC 6455 5.2-5.5, client to server), decoded
// from the bytes as they arrive in whatever pieces: unmasked, fragments joined, whole messages and
// control frames handed out in order. Pure; the session in http_server.cpp reads the socket and
// acts on what this returns. A violation is a WsProtocolError with the close code to answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cutover::controller {

// A peer broke the protocol: `code` is the close code to send it (RFC 6455 7.4.1: 1002 protocol
// error, 1009 message too big).
struct WsProtocolError : std::runtime_error {
  WsProtocolError(uint16_t code, const std::string& what) : std::runtime_error(what), code(code) {}
  uint16_t code;
};

struct WsEvent {
  enum class Kind { message, ping, pong, close };
  Kind kind;
  std::string payload;      // message: all of it; ping, pong: theirs; close: the reason
  uint16_t close_code = 0;  // close only: the peer's code, 1005 when it gave none
};

class WsReader {
 public:
  explicit WsReader(size_t max_message) : max_message_(max_message) {}

  // Consumes `bytes`, the next piece of the stream; appends each complete message and control
  // frame to `out`. Throws WsProtocolError at the first violation (what came before it is in
  // `out`); the reader must not be fed after that. After a close frame everything is ignored.
  void feed(std::string_view bytes, std::vector<WsEvent>& out);

 private:
  // Decodes one frame from the front of pending_ if it is all there: its size, else 0.
  size_t one_frame(std::string_view buf, std::vector<WsEvent>& out);

  size_t max_message_;
  std::string pending_;  // the start of a frame not yet complete
  std::string message_;  // the data frames of the current message so far
  bool in_message_ = false;
  bool closed_ = false;
};

}  // namespace cutover::controller
