// NVMe/TCP path probe: proves from this host, in userspace and independent of the kernel's
// nvme-tcp, that a volume is reachable: TCP connect, ICReq/ICResp, admin-queue Fabrics Connect
// with this host's NQN, controller enable, Identify controller, the active namespaces and each
// namespace's identity, and the ANA log page where the controller reports ANA. Each way it can
// fail is a distinct error (refused / unreachable / timeout / Connect rejected with its status /
// namespace missing / protocol). Boost.Asio with one deadline for the whole probe.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nvme_tcp.hpp"

namespace cutover::nvme {

struct ProbeTarget {
  std::string traddr;  // IPv4 or IPv6 address
  uint16_t trsvcid = 4420;
  std::string subsystem_nqn;
};

struct ProbeConfig {
  std::string host_nqn;
  std::array<uint8_t, 16> host_id{};
  std::chrono::milliseconds timeout{3000};
  uint32_t kato_ms = 30000;
  std::optional<std::array<uint8_t, 16>> expect_nguid;  // the volume must be among them
};

enum class ProbeError {
  none,
  refused,            // nothing listens at traddr:trsvcid
  unreachable,        // no route / host unreachable
  timeout,            // no answer within the deadline (dead address, stalled target)
  connect_rejected,   // Fabrics Connect failed: status in sct/sc (wrong NQN: sct 1, sc 0x82)
  command_failed,     // a later admin command failed (status in sct/sc)
  namespace_missing,  // connected, but no namespace / not the expected NGUID
  protocol,           // the target broke the protocol (or sent a termination request)
};
const char* to_string(ProbeError e);

struct ProbeResult {
  ProbeError error = ProbeError::none;
  std::string message;
  uint8_t sct = 0, sc = 0;
  ControllerInfo controller;
  std::vector<std::pair<uint32_t, NamespaceInfo>> namespaces;
  std::vector<AnaGroup> ana;
  double elapsed_ms = 0;
  bool ok() const { return error == ProbeError::none; }
};

ProbeResult probe_path(const ProbeTarget& target, const ProbeConfig& config);

}  // namespace cutover::nvme
