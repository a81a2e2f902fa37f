// cutover-nvme-probe: the storage path probe as a command - checks from this host (or network
// namespace) that an NVMe/TCP volume is reachable and healthy, without the kernel's nvme-tcp.
// Prints what it found (or why not) as text or JSON; exit 0 = reachable, 1 = not, 2 = bad usage.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "json_codec.hpp"
#include "options.hpp"
#include "parse_error.hpp"
#include "storage/nvme_path_probe.hpp"

using namespace cutover;

namespace {
std::array<uint8_t, 16> hex16_flag(const std::string& flag, const std::string& text) {
  auto bytes = parse_hex16(text);
  if (!bytes) throw ParseError(flag, "expected 32 hex digits (dashes allowed), got '" + text + "'");
  return *bytes;
}
}  // namespace

int main(int argc, char** argv) {
  std::string traddr, nqn,
      host_nqn = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000", host_id,
      nguid;
  int64_t trsvcid = 4420, timeout_ms = 3000;
  bool json_out = false;
  Options opts(
      "cutover-nvme-probe",
      "Usage: cutover-nvme-probe --traddr IP --nqn SUBSYSTEM_NQN [--trsvcid 4420]\n"
      "       [--host-nqn NQN] [--host-id UUID] [--expect-nguid HEX] [--timeout-ms N] [--json]\n\n"
      "Checks that an NVMe/TCP volume is reachable from here: ICReq, admin Connect with the\n"
      "host NQN, controller enable, Identify, ANA log. Exit 0 = reachable, 1 = not (the\n"
      "reason: refused, unreachable, timeout, connect rejected, namespace missing, protocol).\n");
  opts.add("traddr", &traddr, "target address");
  opts.add("trsvcid", &trsvcid, "target TCP port");
  opts.add("nqn", &nqn, "subsystem NQN");
  opts.add("host-nqn", &host_nqn, "this host's NQN");
  opts.add("host-id", &host_id, "this host's ID (UUID)");
  opts.add("expect-nguid", &nguid, "the volume's NGUID: fail unless a namespace has it");
  opts.add("timeout-ms", &timeout_ms, "deadline for the whole probe");
  opts.add("json", &json_out, "print JSON");
  nvme::ProbeTarget target;
  nvme::ProbeConfig config;
  try {
    if (!opts.parse(argc, argv)) return 0;
    if (traddr.empty()) throw ParseError("--traddr", "required");
    if (nqn.empty()) throw ParseError("--nqn", "required");
    if (trsvcid < 1 || trsvcid > 65535) throw ParseError("--trsvcid", "must be 1..65535");
    if (timeout_ms < 1) throw ParseError("--timeout-ms", "must be positive");
    target = {traddr, static_cast<uint16_t>(trsvcid), nqn};
    config.host_nqn = host_nqn;
    if (!host_id.empty()) config.host_id = hex16_flag("--host-id", host_id);
    if (!nguid.empty()) config.expect_nguid = hex16_flag("--expect-nguid", nguid);
    config.timeout = std::chrono::milliseconds(timeout_ms);
  } catch (const ParseError& e) {
    std::fprintf(stderr, "cutover-nvme-probe: %s\n", e.what());
    return 2;
  }
  const auto r = nvme::probe_path(target, config);
  if (json_out) {
    nlohmann::json j = {{"ok", r.ok()},
                        {"error", nvme::to_string(r.error)},
                        {"message", r.message},
                        {"elapsed_ms", r.elapsed_ms}};
    if (r.error == nvme::ProbeError::connect_rejected ||
        r.error == nvme::ProbeError::command_failed) {
      j["sct"] = r.sct;
      j["sc"] = r.sc;
    }
    if (r.ok()) {
      j["controller"] = {{"model", r.controller.model},
                         {"serial", r.controller.serial},
                         {"cntlid", r.controller.cntlid},
                         {"subsystem_nqn", r.controller.subsystem_nqn}};
      auto& ns = j["namespaces"] = nlohmann::json::array();
      for (const auto& [id, n] : r.namespaces) {
        ns.push_back({{"nsid", id},
                      {"blocks", n.size_blocks},
                      {"nguid", hex16(n.nguid)},
                      {"ana_group", n.ana_group}});
      }
      auto& ana = j["ana"] = nlohmann::json::array();
      for (const auto& g : r.ana) {
        ana.push_back({{"group", g.id}, {"state", nvme::to_string(g.state)}, {"nsids", g.nsids}});
      }
    }
    std::printf("%s\n", j.dump().c_str());
  } else if (r.ok()) {
    std::printf("reachable: %s (%s, cntlid %u) in %.1f ms\n", target.subsystem_nqn.c_str(),
                r.controller.model.c_str(), r.controller.cntlid, r.elapsed_ms);
    for (const auto& [id, n] : r.namespaces) {
      std::printf("  namespace %u: %llu blocks, nguid %s, ANA group %u\n", id,
                  static_cast<unsigned long long>(n.size_blocks), hex16(n.nguid).c_str(),
                  n.ana_group);
    }
    for (const auto& g : r.ana) std::printf("  ANA group %u: %s\n", g.id, nvme::to_string(g.state));
  } else {
    std::printf("not reachable (%s): %s\n", nvme::to_string(r.error), r.message.c_str());
  }
  return r.ok() ? 0 : 1;
}
