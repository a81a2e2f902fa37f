// Relay datagram codec.
#include "relay_wire.hpp"

#include <cstring>

#include "parse_error.hpp"

namespace cutover::agent {

namespace {
constexpr char kMagic[4] = {'C', 'V', 'R', '1'};
}

std::vector<uint8_t> encode_relay(const std::string& iface_id, const std::vector<uint8_t>& frame) {
  std::vector<uint8_t> out(5 + iface_id.size() + frame.size());
  std::memcpy(out.data(), kMagic, 4);
  out[4] = static_cast<uint8_t>(iface_id.size());
  std::memcpy(out.data() + 5, iface_id.data(), iface_id.size());
  if (!frame.empty()) std::memcpy(out.data() + 5 + iface_id.size(), frame.data(), frame.size());
  return out;
}

RelayFrame decode_relay(const uint8_t* data, size_t size) {
  if (size < 5 || std::memcmp(data, kMagic, 4) != 0) {
    throw ParseError("magic", "not a cutover relay datagram");
  }
  const size_t id_len = data[4];
  if (id_len == 0 || id_len > 128 || 5 + id_len > size) {
    throw ParseError("iface_id", "length " + std::to_string(id_len) + " out of range");
  }
  RelayFrame out;
  out.iface_id.assign(reinterpret_cast<const char*>(data + 5), id_len);
  for (unsigned char c : out.iface_id) {
    if (c < 0x21 || c > 0x7e) throw ParseError("iface_id", "not printable");
  }
  const size_t frame_len = size - 5 - id_len;
  if (frame_len < 14 || frame_len > kRelayMaxFrame) {
    throw ParseError("frame", "length " + std::to_string(frame_len) + " is not 14-" +
                                  std::to_string(kRelayMaxFrame));
  }
  out.frame.assign(data + 5 + id_len, data + size);
  return out;
}

}  // namespace cutover::agent
