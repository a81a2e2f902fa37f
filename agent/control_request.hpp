// The agent's local control protocol (a unix socket, one JSON object per line, one request per
// connection) for what happens on this hypervisor outside libvirt's events:
//   {"op":"incoming","domain":D,"iface_ids":[...],"timeout_ms":N}
//       libvirt's qemu hook (cutover-libvirt-hook): a VM is about to arrive here by a live
//       migration. Answered once the controller has prepared each interface's port (every VTEP
//       ready) or said why not, or after timeout_ms (1-60000, default 5000).
//   {"op":"vm_state","iface_ids":[...],"state":S}
//       a hypervisor integration without libvirt says where the VM with these interfaces is in
//       its life here, as libvirt's events would: "arriving" (an incoming migration's VM exists
//       here, not running yet: its port is not up here), "running", "paused_for_migration" (it
//       stopped here for an outgoing migration's final copy), "gone" (forget what was said).
// Pure codec; ControlServer does the I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cutover::agent {

struct ControlRequest {
  std::string op;  // "incoming" or "vm_state"
  std::string domain;
  std::vector<std::string> iface_ids;
  int64_t timeout_ms = 5000;
  std::string state;  // vm_state: arriving, running, paused_for_migration, gone
};

constexpr size_t kControlMaxLine = 65536;

// Throws ParseError naming the field.
ControlRequest decode_control_request(const std::string& line);

}  // namespace cutover::agent
