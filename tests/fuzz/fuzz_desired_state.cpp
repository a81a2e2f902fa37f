// libFuzzer target: a desired-state document (agent file / controller message) through the
// strict decoder, the topology validation and both dataplane translations. Bad input must end
// in ParseError; valid input must translate without crashing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "json_reader.hpp"
#include "linux_plan.hpp"
#include "ovs_pipeline.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto state = cutover::desired_state_from_json(cutover::parse_json_text(text));
    auto topo = cutover::overlay::build_topology(state);
    cutover::overlay::OvsPortMap ports;
    std::map<std::string, std::string> taps;
    int64_t ofport = 1;
    for (const auto& p : state.ports) {
      ports.vm_ofports[p.iface_id] = ofport++;
      taps[p.iface_id] = "tap" + std::to_string(ofport);
    }
    for (const auto& vtep : topo.remote_vteps) ports.tunnel_ofports[vtep] = ofport++;
    (void)cutover::overlay::translate_ovs(topo, ports);
    (void)cutover::overlay::plan_linux(topo, taps);
  } catch (const cutover::ParseError&) {
  }
  return 0;
}
