// The agent's local control protocol (a unix socket, one JSON object per line, one request per
// connection) for what happens on this hypervisor outside libvirt's events:
//   {"op":"incoming","domain":D,"iface_ids":[...],"timeout_ms":N}
//       libvirt's qemu hook (cutover-libvirt-hook): a VM is about to arrive here by a live
//       migration. Answered once the controller has prepared each interface's port (every VTEP
//       ready) or said why not, or after timeout_ms (1-60000, default 5000).
//   {"op":"vm_paused","iface_ids":[...],"paused":true|false}
//       a hypervisor integration without libvirt: the VM with these interfaces stopped here for
//       an outgoing migration's final copy (true), or runs again (false).
// Pure codec; ControlServer does the I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cutover::agent {

struct ControlRequest {
  std::string op;  // "incoming" or "vm_paused"
  std::string domain;
  std::vector<std::string> iface_ids;
  int64_t timeout_ms = 5000;
  bool paused = true;
};

constexpr size_t kControlMaxLine = 65536;

// Throws ParseError naming the field.
ControlRequest decode_control_request(const std::string& line);

}  // namespace cutover::agent
