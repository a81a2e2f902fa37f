// libFuzzer target: the agent channel's frame reader (controller/ws_reader), which sees whatever
// bytes a peer that passed the upgrade sends. Any input, split anywhere, must decode or throw
// WsProtocolError - never crash - and give the same events whichever way it was split; no message
// may pass the size limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ws_reader.hpp"

namespace {

using cutover::controller::WsEvent;
using cutover::controller::WsProtocolError;
using cutover::controller::WsReader;

constexpr size_t kMax = 4096;

// The events and, if it threw, its close code (0 when it did not).
std::pair<std::vector<WsEvent>, uint16_t> decode(std::string_view in, size_t split) {
  WsReader r(kMax);
  std::vector<WsEvent> out;
  try {
    r.feed(in.substr(0, split), out);
    r.feed(in.substr(split), out);
  } catch (const WsProtocolError& e) {
    if (e.code != 1002 && e.code != 1009) std::abort();
    return {out, e.code};
  }
  return {out, 0};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t split = in.empty() ? 0 : data[0] % (in.size() + 1);
  const auto [whole, whole_code] = decode(in, in.size());
  const auto [pieces, pieces_code] = decode(in, split);
  if (whole_code != pieces_code || whole.size() != pieces.size()) std::abort();
  for (size_t i = 0; i < whole.size(); ++i) {
    if (whole[i].kind != pieces[i].kind || whole[i].payload != pieces[i].payload ||
        whole[i].close_code != pieces[i].close_code) {
      std::abort();
    }
    if (whole[i].payload.size() > kMax) std::abort();
  }
  return 0;
}
