// TunnelCapture: an AF_PACKET socket on a VXLAN device, filtered to one destination MAC.
#include "tunnel_capture.hpp"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace cutover::agent {

TunnelCapture::TunnelCapture(const std::string& dev, const MacAddress& mac) : dev_(dev) {
  const unsigned ifindex = if_nametoindex(dev.c_str());
  if (ifindex == 0) throw std::runtime_error(dev + ": " + std::strerror(errno));
  fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0)
    throw std::runtime_error("AF_PACKET socket for " + dev + ": " + std::strerror(errno));
  const auto& m = mac.bytes();
  const uint32_t hi = static_cast<uint32_t>(m[0]) << 24 | static_cast<uint32_t>(m[1]) << 16 |
                      static_cast<uint32_t>(m[2]) << 8 | m[3];
  const uint32_t lo = static_cast<uint32_t>(m[4]) << 8 | m[5];
  // Received (not sent) frames whose destination is the MAC.
  sock_filter code[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)},
      {BPF_JMP | BPF_JEQ | BPF_K, 4, 0, PACKET_OUTGOING},
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, 0},
      {BPF_JMP | BPF_JEQ | BPF_K, 0, 2, hi},
      {BPF_LD | BPF_H | BPF_ABS, 0, 0, 4},
      {BPF_JMP | BPF_JEQ | BPF_K, 1, 0, lo},
      {BPF_RET | BPF_K, 0, 0, 0},
      {BPF_RET | BPF_K, 0, 0, 0x40000},
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  const int buf = 32 << 20;
  sockaddr_ll at{};
  at.sll_family = AF_PACKET;
  at.sll_protocol = htons(ETH_P_ALL);
  at.sll_ifindex = static_cast<int>(ifindex);
  if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0 ||
      (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0 &&
       setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf) < 0) ||
      bind(fd_, reinterpret_cast<sockaddr*>(&at), sizeof at) < 0) {
    const std::string why = std::strerror(errno);
    close(fd_);
    throw std::runtime_error("capture on " + dev + ": " + why);
  }
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
