// The relay datagram between agents (MigrationRelay): one Ethernet frame for one port, sent by a
// migration's source to its destination over UDP on the underlay. Layout: "CVR1", the port's
// iface-id (one length byte, 1-128 bytes), then the frame (14-9216 bytes). Pure codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cutover::agent {

struct RelayFrame {
  std::string iface_id;
  std::vector<uint8_t> frame;
};

constexpr size_t kRelayMaxFrame = 9216;

std::vector<uint8_t> encode_relay(const std::string& iface_id, const std::vector<uint8_t>& frame);
// Throws ParseError naming what is wrong (magic, iface_id, frame).
RelayFrame decode_relay(const uint8_t* data, size_t size);

}  // namespace cutover::agent
