// libFuzzer target: the agent-channel wire protocol in both directions. Any input must either
// decode or throw ParseError - never crash, hang or throw anything else; what decodes must
// re-encode and decode to the same message. The input's first line, when it decodes to an ACK,
// is also remembered by AckRepeat and the rest matched against it: whatever matches must decode
// to that ACK's report with the matched numbers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ack_repeat.hpp"
#include "parse_error.hpp"
#include "wire.hpp"

namespace {
void check_repeat(const std::string& input) {
  const auto nl = input.find('\n');
  if (nl == std::string::npos) return;
  const std::string first = input.substr(0, nl), second = input.substr(nl + 1);
  cutover::wire::Ack remembered;
  try {
    auto m = cutover::wire::decode_agent_message(first);
    auto* ack = std::get_if<cutover::wire::Ack>(&m);
    if (!ack) return;
    remembered = *ack;
  } catch (const cutover::ParseError&) {
    return;
  }
  cutover::wire::AckRepeat repeat;
  repeat.remember(first, remembered);
  const auto numbers = repeat.match(second);
  if (!numbers) return;
  // A match must be exactly what the full decode says.
  auto m = cutover::wire::decode_agent_message(second);  // a ParseError here is a finding
  auto* ack = std::get_if<cutover::wire::Ack>(&m);
  if (!ack || ack->generation != numbers->generation || ack->apply_ms != numbers->apply_ms ||
      !(static_cast<const cutover::AgentReport&>(*ack) ==
        static_cast<const cutover::AgentReport&>(remembered)) ||
      !ack->waiting_for.empty()) {
    std::abort();
  }
}
}  // namespace

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
  check_repeat(text);
  return 0;
}
