// TunnelCapture: an AF_PACKET socket on a VXLAN device, filtered to one destination MAC.
#include "tunnel_capture.hpp"

#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include "packet_socket.hpp"

namespace cutover::agent {

TunnelCapture::TunnelCapture(const std::string& dev, const MacAddress& mac) : dev_(dev) {
  const auto& m = mac.bytes();
  const uint32_t hi = static_cast<uint32_t>(m[0]) << 24 | static_cast<uint32_t>(m[1]) << 16 |
                      static_cast<uint32_t>(m[2]) << 8 | m[3];
  const uint32_t lo = static_cast<uint32_t>(m[4]) << 8 | m[5];
  // Received (not sent) frames whose destination is the MAC.
  fd_ = open_capture(
      dev, {
               {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)},
               {BPF_JMP | BPF_JEQ | BPF_K, 4, 0, PACKET_OUTGOING},
               {BPF_LD | BPF_W | BPF_ABS, 0, 0, 0},
               {BPF_JMP | BPF_JEQ | BPF_K, 0, 2, hi},
               {BPF_LD | BPF_H | BPF_ABS, 0, 0, 4},
               {BPF_JMP | BPF_JEQ | BPF_K, 1, 0, lo},
               {BPF_RET | BPF_K, 0, 0, 0},
               {BPF_RET | BPF_K, 0, 0, 0x40000},
           });
}

TunnelCapture::~TunnelCapture() {
  if (fd_ >= 0) close(fd_);
}

std::vector<TunnelCapture::Frame> TunnelCapture::drain() {
  std::vector<Frame> out;
  uint8_t buf[65536];
  for (;;) {
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0) break;
    out.emplace_back(buf, buf + n);
  }
  return out;
}

}  // namespace cutover::agent
