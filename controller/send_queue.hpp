// SendQueue: the messages waiting to go to one agent, bounded in bytes. The front is the one being
// written. An agent that reads slower than its changes arrive would otherwise make the controller
// hold an ever-growing backlog; past the bound push() refuses, and the session closes so that the
// agent reconnects and gets one whole slice instead (AgentHub sends it on every hello). Pure: the
// WebSocket plumbing is in http_server.cpp.
#pragma once

#include <cstddef>
#include <deque>
#include <string>

namespace cutover::controller {

class SendQueue {
 public:
  explicit SendQueue(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Queues `text`, or returns false and queues nothing when it would put more than max_bytes in
  // the queue. An empty queue takes any message, however large: a whole slice bigger than the
  // bound must still be able to go out, or the agent could never catch up.
  bool push(std::string text) {
    if (!queue_.empty() && bytes_ + text.size() > max_bytes_) return false;
    bytes_ += text.size();
    queue_.push_back(std::move(text));
    return true;
  }
  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }
  size_t bytes() const { return bytes_; }
  const std::string& front() const { return queue_.front(); }
  void pop() {
    bytes_ -= queue_.front().size();
    queue_.pop_front();
  }
  // Drops everything but the front, which a write may still be reading from.
  void drop_all_but_front() {
    while (queue_.size() > 1) {
      bytes_ -= queue_.back().size();
      queue_.pop_back();
    }
  }
  void clear() {
    queue_.clear();
    bytes_ = 0;
  }

 private:
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::deque<std::string> queue_;
};

}  // namespace cutover::controller
