// libFuzzer target: the agent's control-socket request decoder (lines from local processes: the
// libvirt hook, hypervisor integrations). Any input must decode or throw ParseError - never crash
// - and what it accepts must be within the protocol's limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "control_request.hpp"
#include "parse_error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto r = cutover::agent::decode_control_request(
        std::string(reinterpret_cast<const char*>(data), size));
    if (r.op != "incoming" && r.op != "vm_state") std::abort();
    if (r.op == "vm_state" && r.state.empty()) std::abort();
    if (r.iface_ids.size() > 64 || r.timeout_ms < 1 || r.timeout_ms > 60000) std::abort();
    for (const auto& id : r.iface_ids) {
      if (id.empty() || id.size() > 128) std::abort();
    }
  } catch (const cutover::ParseError&) {
  }
  return 0;
}
