// IncomingWaits: the control socket's "incoming" requests (the libvirt hook holding an incoming
// migration) waiting for the controller's word (wire::Prepared) on each interface's port:
// prepared, refused, or no answer by the deadline. Pure bookkeeping on the agent's io thread;
// the clock is passed in.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "wire.hpp"

namespace cutover::agent {

class IncomingWaits {
 public:
  using Clock = std::chrono::steady_clock;
  struct Result {
    std::vector<std::string> prepared;           // iface-ids whose migration is ready
    std::map<std::string, std::string> refused;  // iface-id -> why it will not be prepared
    std::vector<std::string> unanswered;         // no word by the deadline
  };
  using Reply = std::function<void(const Result&)>;

  void add(const std::vector<std::string>& iface_ids, Clock::time_point deadline, Reply reply);
  // The controller's word on one interface: completes every request that now has all of its.
  void resolved(const wire::Prepared& p);
  // Answers the requests whose deadline passed.
  void expire(Clock::time_point now);
  std::optional<Clock::time_point> next_deadline() const;

 private:
  struct Wait {
    std::vector<std::string> ids;
    Clock::time_point deadline;
    Reply reply;
    Result result;
  };
  void finish_ready();
  std::vector<Wait> waits_;
};

}  // namespace cutover::agent
