// Announcer: when a port becomes active on this host by migration (the controller moved it
// here at cutover), sends its gratuitous ARPs / unsolicited NAs and a RARP onto the
// overlay in paced rounds (kAnnounceSchedule: 0, 10, 50, 200 ms) and reports every round. Runs on
// the dataplane thread: after_apply() after each confirmed apply, run_due() whenever next_due()
// passes. Frames go out through an injected FrameSink (OVS: packet-out through the pipeline as
// if sent by the VM; Linux: onto the network's bridge).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "announce.hpp"
#include "desired_index.hpp"

namespace cutover::agent {

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // Throws std::runtime_error when the frame could not be sent.
  virtual void send(const Port& port, uint32_t vni, const overlay::Frame& frame) = 0;
};

struct AnnounceRound {
  std::string port;
  size_t round = 0;   // 0-based
  size_t rounds = 0;  // in the schedule
  size_t frames = 0;  // sent in this round
  size_t failed = 0;
  std::string error;  // of the last failure
};

class Announcer {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Announcer(std::vector<std::chrono::milliseconds> schedule = overlay::kAnnounceSchedule)
      : schedule_(std::move(schedule)) {}

  // Following a DesiredIndex: changed() with what it recorded (after every change, applied or
  // not), after_apply() after each confirmed apply with these local ports bound - schedules ports
  // that just arrived, drops pending rounds of ports that left.
  void changed(const std::vector<overlay::DesiredIndex::PortChange>& changes, const HostId& self);
  void after_apply(const overlay::DesiredIndex& index, const std::vector<std::string>& bound_ports,
                   Clock::time_point now);
  // The same for whole states, each compared with the one before.
  void after_apply(const DesiredState& state, const std::vector<std::string>& bound_ports,
                   Clock::time_point now);
  std::vector<AnnounceRound> run_due(Clock::time_point now, FrameSink& sink);
  std::optional<Clock::time_point> next_due() const;

 private:
  struct Pending {
    Port port;
    uint32_t vni = 0;
    Clock::time_point start;
    size_t next_round = 0;
  };
  std::vector<std::chrono::milliseconds> schedule_;
  overlay::ArrivalTracker tracker_;
  overlay::DesiredIndex whole_{true};  // the whole-state after_apply()'s
  std::vector<Pending> pending_;
};

}  // namespace cutover::agent
