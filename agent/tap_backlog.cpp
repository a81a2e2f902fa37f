// TapBacklog: the capture socket and the tap's read counter.
#include "tap_backlog.hpp"

#include <fcntl.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "packet_socket.hpp"

namespace cutover::agent {

namespace {
std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

void open_counter(const std::string& tap, const char* name, int& fd) {
  const std::string path = "/sys/class/net/" + tap + "/statistics/" + name;
  fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw sys_error(path);
}
}  // namespace

TapBacklog::TapBacklog(const std::string& tap) : tap_(tap), ledger_(0) {
  open_counter(tap, "tx_packets", tx_fd_);
  try {
    open_counter(tap, "tx_dropped", dropped_fd_);
  } catch (...) {
    close(tx_fd_);
    throw;
  }
  // The counters first, the capture after: a frame queued in between and read is one of the
  // ledger's q0 (old, uncaptured). The other order let a frame be captured and read before tx0
  // was taken, so that no read accounted for it and the relay sent it again at the pause.
  auto tx = read_counter(tx_fd_);
  auto dropped = read_counter(dropped_fd_);
  if (!tx || !dropped) {
    close(tx_fd_);
    close(dropped_fd_);
    throw std::runtime_error("tap " + tap + ": cannot read tx_packets and tx_dropped");
  }
  ledger_ = BacklogLedger(*tx);
  dropped0_ = *dropped;  // drops until the bind count too: that errs towards relaying fewer
  // Only what the host sends to the VM: pkt_type == PACKET_OUTGOING.
  try {
    fd_ = open_capture(tap, {
                                {BPF_LD | BPF_W | BPF_ABS, 0, 0,
                                 static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)},
                                {BPF_JMP | BPF_JEQ | BPF_K, 0, 1, PACKET_OUTGOING},
                                {BPF_RET | BPF_K, 0, 0, 0x40000},
                                {BPF_RET | BPF_K, 0, 0, 0},
                            });
  } catch (...) {
    close(tx_fd_);
    close(dropped_fd_);
    throw;
  }
  capture_drops();  // reset the socket's counters
}

TapBacklog::~TapBacklog() {
  if (fd_ >= 0) close(fd_);
  if (tx_fd_ >= 0) close(tx_fd_);
  if (dropped_fd_ >= 0) close(dropped_fd_);
}

std::optional<uint64_t> TapBacklog::read_counter(int fd) {
  char buf[32];
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return std::nullopt;
  buf[n] = 0;
  char* end = nullptr;
  const uint64_t v = std::strtoull(buf, &end, 10);
  if (end == buf) return std::nullopt;
  return v;
}

template <typename Fn>
void TapBacklog::receive(Fn&& fn) {
  uint8_t buf[65536];
  for (;;) {
    sockaddr_ll from{};
    socklen_t len = sizeof from;
    const ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;  // EAGAIN: drained (or the tap is gone)
    if (from.sll_pkttype != PACKET_OUTGOING) continue;
    fn(Frame(buf, buf + n));
  }
}

void TapBacklog::sample() {
  auto tx = read_counter(tx_fd_);
  receive([&](Frame f) { ledger_.captured(std::move(f)); });
  if (tx) ledger_.sample(*tx);
}

std::string TapBacklog::describe() const {
  return "tx0 " + std::to_string(ledger_.tx0()) + ", tx " + std::to_string(last_tx) + ", q0 " +
         std::to_string(ledger_.q0_estimate()) + ", captured " +
         std::to_string(ledger_.captured_total()) + ", tap dropped " + std::to_string(last_dropped);
}

std::optional<std::vector<TapBacklog::Frame>> TapBacklog::depart() {
  auto tx = read_counter(tx_fd_);
  auto dropped = read_counter(dropped_fd_);  // after tx: every drop before the last read
  receive([&](Frame f) { ledger_.captured(std::move(f)); });
  if (!tx || !dropped) return std::nullopt;
  last_tx = *tx;
  last_dropped = *dropped >= dropped0_ ? *dropped - dropped0_ : 0;
  return ledger_.unread(*tx, last_dropped);
}

std::vector<TapBacklog::Frame> TapBacklog::drain() {
  std::vector<Frame> out;
  receive([&](Frame f) { out.push_back(std::move(f)); });
  return out;
}

uint64_t TapBacklog::capture_drops() {
  tpacket_stats st{};
  socklen_t len = sizeof st;
  if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) drops_ += st.tp_drops;
  return drops_;
}

}  // namespace cutover::agent
