// libFuzzer target: the agent-channel wire protocol in both directions. Any input must either
// decode or throw ParseError - never crash, hang or throw anything else; what decodes must
// re-encode and decode to the same message.
#include <cstddef>
#include <cstdint>
#include <string>

#include "parse_error.hpp"
#include "wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto m = cutover::wire::decode_agent_message(text);
    auto again = cutover::wire::decode_agent_message(cutover::wire::encode(m));
    (void)again;
  } catch (const cutover::ParseError&) {
  }
  try {
    auto m = cutover::wire::decode_controller_message(text);
    cutover::DesiredState s;
    if (auto* d = std::get_if<cutover::wire::Delta>(&m)) cutover::wire::apply(s, *d);
    (void)cutover::wire::decode_controller_message(cutover::wire::encode(m));
  } catch (const cutover::ParseError&) {
  }
  return 0;
}
