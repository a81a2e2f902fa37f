// libFuzzer target: the relay datagram decoder (UDP from the underlay that the destination's
// agent writes into a VM's tap). Any input must decode or throw ParseError - never crash - and
// what it accepts must re-encode to the same bytes and stay within the frame limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "parse_error.hpp"
#include "relay_wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto r = cutover::agent::decode_relay(data, size);
    if (r.iface_id.empty() || r.iface_id.size() > 128) std::abort();
    if (r.frame.size() < 14 || r.frame.size() > cutover::agent::kRelayMaxFrame) std::abort();
    const auto again = cutover::agent::encode_relay(r.iface_id, r.frame);
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
  } catch (const cutover::ParseError&) {
  }
  return 0;
}
