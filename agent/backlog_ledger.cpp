// BacklogLedger: counting frames a tap's reader has not consumed.
#include "backlog_ledger.hpp"

#include <algorithm>

namespace cutover::agent {

void BacklogLedger::captured(Frame frame) {
  frames_.push_back(std::move(frame));
  while (frames_.size() > max_frames_) {  // a backlog this long would not fit a tap anyway
    frames_.pop_front();
    ++base_;
  }
}

uint64_t BacklogLedger::read_estimate(uint64_t tx) const {
  const uint64_t reads = tx > tx0_ ? tx - tx0_ : 0;
  return std::min(reads > q0_ ? reads - q0_ : 0, captured_total());
}

void BacklogLedger::sample(uint64_t tx) {
  const uint64_t reads = tx > tx0_ ? tx - tx0_ : 0;
  if (reads > captured_total()) q0_ = std::max(q0_, reads - captured_total());
  // What was read is no longer needed.
  const uint64_t done = read_estimate(tx);
  while (base_ < done && !frames_.empty()) {
    frames_.pop_front();
    ++base_;
  }
}

std::vector<BacklogLedger::Frame> BacklogLedger::unread(uint64_t tx_final, uint64_t tap_dropped) {
  // A frame the tap dropped before the last read took a number that no read accounts for.
  const uint64_t done = std::min(read_estimate(tx_final) + tap_dropped, captured_total());
  std::vector<Frame> out;
  for (uint64_t i = std::max(done, base_); i < captured_total(); ++i) {
    out.push_back(std::move(frames_[i - base_]));
  }
  base_ = captured_total();
  frames_.clear();
  return out;
}

}  // namespace cutover::agent
