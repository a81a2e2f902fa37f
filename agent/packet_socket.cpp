// Packet sockets: opening a filtered capture, writing frames out of an interface.
#include "packet_socket.hpp"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace cutover::agent {

int open_capture(const std::string& dev, const std::vector<sock_filter>& filter) {
  const unsigned ifindex = if_nametoindex(dev.c_str());
  if (ifindex == 0) throw std::runtime_error(dev + ": " + std::strerror(errno));
  // Protocol 0 until bound: nothing is received before the filter and the bind are in place.
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error("AF_PACKET socket for " + dev + ": " + std::strerror(errno));
  }
  sock_fprog prog{static_cast<unsigned short>(filter.size()),
                  const_cast<sock_filter*>(filter.data())};
  const int buf = 32 << 20;
  sockaddr_ll at{};
  at.sll_family = AF_PACKET;
  at.sll_protocol = htons(ETH_P_ALL);
  at.sll_ifindex = static_cast<int>(ifindex);
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0 ||
      !raise_receive_buffer(fd, buf) || bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) < 0) {
    const std::string why = std::strerror(errno);
    close(fd);
    throw std::runtime_error("capture on " + dev + ": " + why);
  }
  return fd;
}

bool raise_receive_buffer(int fd, int bytes) {
  return setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0 ||
         setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) == 0;
}

FrameWriter::~FrameWriter() {
  if (fd_ >= 0) close(fd_);
}

void FrameWriter::send(const std::string& ifname, const uint8_t* frame, size_t size, int flags) {
  if (fd_ < 0) fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("AF_PACKET socket: ") + std::strerror(errno));
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  to.sll_halen = ETH_ALEN;
  if (to.sll_ifindex == 0) throw std::runtime_error(ifname + ": no such device");
  if (sendto(fd_, frame, size, flags, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    throw std::runtime_error("send on " + ifname + ": " + std::strerror(errno));
  }
}

}  // namespace cutover::agent
