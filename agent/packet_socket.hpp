// Packet sockets (AF_PACKET) on interfaces named at run time: a capture of one interface through
// a classic BPF filter (TapBacklog, TunnelCapture), and a writer of whole Ethernet frames out of
// a named interface (the Linux dataplane's announcements, MigrationRelay's injection); and the
// large receive buffer these and the relay's UDP socket take. Linux only.
#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cutover::agent {

// A non-blocking capture of `dev` through `filter`, with a 32 MiB receive buffer (a pause's worth
// of frames at any rate a VM tap takes). The filter is attached before the socket is bound, so
// no frame of another interface slips in. Returns the descriptor (the caller closes it); throws
// std::runtime_error naming the device.
int open_capture(const std::string& dev, const std::vector<sock_filter>& filter);

// Sets fd's receive buffer to `bytes`: SO_RCVBUFFORCE (root may exceed net.core.rmem_max), else
// SO_RCVBUF (capped there). False when both fail.
bool raise_receive_buffer(int fd, int bytes);

// Writes frames out of interfaces by name, through one socket opened on first use. Not
// thread-safe.
class FrameWriter {
 public:
  FrameWriter() = default;
  ~FrameWriter();
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  // flags: sendto(2)'s (MSG_DONTWAIT). Throws std::runtime_error naming the interface when it
  // does not exist or the kernel refuses the frame.
  void send(const std::string& ifname, const uint8_t* frame, size_t size, int flags = 0);

 private:
  int fd_ = -1;
};

}  // namespace cutover::agent
