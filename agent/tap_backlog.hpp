// TapBacklog: watches one VM tap on the source of a migration - an AF_PACKET socket that sees
// every frame the host hands to the tap (PACKET_OUTGOING, before the tap queues it), the tap's
// tx_packets, which counts the frames its reader (QEMU, vhost) took, and its tx_dropped (frames
// it refused with its queue full). BacklogLedger does the
// arithmetic; this class does the syscalls. Linux only; not thread-safe (the agent's io thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backlog_ledger.hpp"

namespace cutover::agent {

class TapBacklog {
 public:
  using Frame = BacklogLedger::Frame;
  // Throws std::runtime_error naming the tap when it cannot be watched.
  explicit TapBacklog(const std::string& tap);
  ~TapBacklog();
  TapBacklog(const TapBacklog&) = delete;
  TapBacklog& operator=(const TapBacklog&) = delete;

  int fd() const { return fd_; }
  const std::string& tap() const { return tap_; }
  // While the VM runs: reads the counter, then takes in every frame captured up to then.
  void sample();
  // The VM stopped reading: the frames it did not read (the counter read now). nullopt when the
  // tap is already gone (the count is lost with it: nothing can be relayed without risking
  // frames the VM already had).
  std::optional<std::vector<Frame>> depart();
  // After depart(): the frames captured since.
  std::vector<Frame> drain();
  // Frames the capture socket itself dropped (its buffer overflowed) since it was opened.
  uint64_t capture_drops();
  // For the log: "tx0 T, read R, q0 Q, captured C".
  std::string describe() const;
  uint64_t last_tx = 0;
  uint64_t last_dropped = 0;  // by the tap, from the watch's start to depart()

 private:
  static std::optional<uint64_t> read_counter(int fd);
  template <typename Fn>
  void receive(Fn&& fn);

  std::string tap_;
  int fd_ = -1;
  int tx_fd_ = -1;
  int dropped_fd_ = -1;
  uint64_t dropped0_ = 0;
  uint64_t drops_ = 0;
  BacklogLedger ledger_;
};

}  // namespace cutover::agent
