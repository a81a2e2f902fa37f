// TunnelCapture: on the Linux dataplane, the frames for one MAC that arrive on a VXLAN device
// (from the tunnel). A host that forwards a MAC - its VM stopped here for the final copy, or left
// at cutover - cannot send them back out of the VXLAN port through the bridge (a Linux bridge
// never does), so MigrationRelay takes them here and relays them to where the VM is now. OVS
// does the same with a flow; this is the kernel dataplane's equivalent, in the agent. Linux
// only; not thread-safe (the agent's io thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "mac_address.hpp"

namespace cutover::agent {

class TunnelCapture {
 public:
  using Frame = std::vector<uint8_t>;
  // Throws std::runtime_error naming the device when it cannot be watched.
  TunnelCapture(const std::string& dev, const MacAddress& mac);
  ~TunnelCapture();
  TunnelCapture(const TunnelCapture&) = delete;
  TunnelCapture& operator=(const TunnelCapture&) = delete;

  int fd() const { return fd_; }
  const std::string& dev() const { return dev_; }
  // Every frame captured since the last call, oldest first.
  std::vector<Frame> drain();

 private:
  std::string dev_;
  int fd_ = -1;
};

}  // namespace cutover::agent
