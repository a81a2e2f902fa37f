// BacklogLedger: the arithmetic of TapBacklog, pure. Frames captured on a tap's egress are
// numbered in the order they entered the tap's queue; QEMU reads them in that order and the tap's
// tx_packets counts every read. The q0 frames already queued when the capture started are read
// first, so at any moment the first (tx - tx0 - q0) captured frames have been read. q0 cannot be
// observed; each sample - tx read first, then every frame captured up to then added - bounds it
// from below (q0 >= (tx - tx0) - captured), exactly when the queue was empty, which most samples
// find while the VM runs and reads promptly. A frame the capture missed (its buffer overflowed)
// and the VM read raises that bound by one, which keeps the numbering right. A frame the tap
// dropped with its queue full was numbered but never queued: each one before the last read moves
// the read frames one number further, so unread() takes that many more as read. Every error
// errs the same way: too few frames relayed (a loss), never one the VM already read (a
// duplicate).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace cutover::agent {

class BacklogLedger {
 public:
  using Frame = std::vector<uint8_t>;
  explicit BacklogLedger(uint64_t tx0, size_t max_frames = 16384)
      : tx0_(tx0), max_frames_(max_frames) {}

  void captured(Frame frame);
  // tx: the counter as read *before* the frames captured so far were drained into the ledger.
  void sample(uint64_t tx);
  // The VM stopped reading; tx_final is its last count and tap_dropped the frames the tap
  // dropped since the watch began, read after tx_final. Returns the captured frames it did not
  // read, oldest first, and forgets every frame.
  std::vector<Frame> unread(uint64_t tx_final, uint64_t tap_dropped = 0);

  uint64_t captured_total() const { return base_ + frames_.size(); }
  uint64_t q0_estimate() const { return q0_; }
  uint64_t tx0() const { return tx0_; }
  // Frames known to have been read (by the estimate); the ledger keeps only what follows them.
  uint64_t read_estimate(uint64_t tx) const;

 private:
  uint64_t tx0_;
  size_t max_frames_;
  uint64_t q0_ = 0;
  uint64_t base_ = 0;  // index of frames_.front()
  std::deque<Frame> frames_;
};

}  // namespace cutover::agent
