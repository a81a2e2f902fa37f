// WsReader: decoding the client-to-server frames of RFC 6455, and refusing what the RFC forbids.
#include "ws_reader.hpp"

#include <algorithm>

namespace cutover::controller {

namespace {

constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kTooBig = 1009;

uint8_t byte_at(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }

// Close codes a peer may send (RFC 6455 7.4.1 and 7.4.2, and IANA's 1012-1014 such as 1013 "try
// again later", which the controller itself sends): the defined ones it may put on the wire, and
// the ranges for libraries and applications.
bool valid_close_code(uint16_t c) {
  if (c >= 3000 && c <= 4999) return true;
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014);
}

}  // namespace

void WsReader::feed(std::string_view bytes, std::vector<WsEvent>& out) {
  if (closed_) return;  // the peer said it sends nothing more: whatever follows is ignored
  // Whole frames are decoded straight from `bytes`; only an incomplete tail is kept.
  std::string_view buf = bytes;
  if (!pending_.empty()) {
    pending_.append(bytes);
    buf = pending_;
  }
  size_t used = 0;
  while (!closed_ && used < buf.size()) {
    const size_t n = one_frame(buf.substr(used), out);
    if (n == 0) break;
    used += n;
  }
  if (buf.data() == pending_.data()) {
    pending_.erase(0, used);
  } else {
    pending_.assign(buf.substr(used));
  }
}

size_t WsReader::one_frame(std::string_view buf, std::vector<WsEvent>& out) {
  if (buf.size() < 2) return 0;
  const uint8_t b0 = byte_at(buf, 0), b1 = byte_at(buf, 1);
  const bool fin = b0 & 0x80;
  const uint8_t opcode = b0 & 0x0f;
  if (b0 & 0x70) throw WsProtocolError(kProtocolError, "reserved bits set (no extension agreed)");
  if (!(b1 & 0x80)) throw WsProtocolError(kProtocolError, "a client frame must be masked");
  const bool control = opcode & 0x08;
  if (opcode != 0x0 && opcode != 0x1 && opcode != 0x2 && opcode != 0x8 && opcode != 0x9 &&
      opcode != 0xa) {
    throw WsProtocolError(kProtocolError, "reserved opcode " + std::to_string(opcode));
  }
  uint64_t length = b1 & 0x7f;
  size_t header = 2;
  if (length == 126) {
    if (buf.size() < 4) return 0;
    length = (uint64_t{byte_at(buf, 2)} << 8) | byte_at(buf, 3);
    if (length < 126) throw WsProtocolError(kProtocolError, "length not in its shortest form");
    header = 4;
  } else if (length == 127) {
    if (buf.size() < 10) return 0;
    length = 0;
    for (size_t i = 2; i < 10; ++i) length = (length << 8) | byte_at(buf, i);
    if (length >> 63) throw WsProtocolError(kProtocolError, "length has its top bit set");
    if (length <= 0xffff) throw WsProtocolError(kProtocolError, "length not in its shortest form");
    header = 10;
  }
  if (control && (!fin || length > 125)) {
    throw WsProtocolError(kProtocolError, "a control frame must be whole and at most 125 bytes");
  }
  if (!control && length > max_message_ - std::min(max_message_, message_.size())) {
    throw WsProtocolError(kTooBig,
                          "message larger than " + std::to_string(max_message_) + " bytes");
  }
  if (opcode == 0x0 && !in_message_) {
    throw WsProtocolError(kProtocolError, "a continuation frame with no message to continue");
  }
  if ((opcode == 0x1 || opcode == 0x2) && in_message_) {
    throw WsProtocolError(kProtocolError, "a new message before the last one's final frame");
  }
  if (buf.size() < header + 4 || buf.size() - header - 4 < length) return 0;
  const uint8_t* key = reinterpret_cast<const uint8_t*>(buf.data() + header);
  std::string_view masked = buf.substr(header + 4, static_cast<size_t>(length));
  auto unmask_into = [&](std::string& to) {
    const size_t start = to.size();
    to.resize(start + masked.size());
    for (size_t i = 0; i < masked.size(); ++i) {
      to[start + i] = static_cast<char>(static_cast<uint8_t>(masked[i]) ^ key[i & 3]);
    }
  };
  if (!control) {
    unmask_into(message_);
    in_message_ = !fin;
    if (fin) {
      out.push_back({WsEvent::Kind::message, std::move(message_), 0});
      message_.clear();
    }
  } else {
    std::string payload;
    unmask_into(payload);
    if (opcode == 0x9) {
      out.push_back({WsEvent::Kind::ping, std::move(payload), 0});
    } else if (opcode == 0xa) {
      out.push_back({WsEvent::Kind::pong, std::move(payload), 0});
    } else {
      uint16_t code = 1005;
      if (payload.size() == 1) throw WsProtocolError(kProtocolError, "a close frame of one byte");
      if (payload.size() >= 2) {
        code = static_cast<uint16_t>((byte_at(payload, 0) << 8) | byte_at(payload, 1));
        if (!valid_close_code(code)) {
          throw WsProtocolError(kProtocolError, "close code " + std::to_string(code));
        }
        payload.erase(0, 2);
      }
      closed_ = true;
      out.push_back({WsEvent::Kind::close, std::move(payload), code});
    }
  }
  return header + 4 + static_cast<size_t>(length);
}

}  // namespace cutover::controller
