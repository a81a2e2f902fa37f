// Announcer: arrival tracking, pacing and reporting of cutover announcements.
#include "announcer.hpp"

#include <algorithm>
#include <exception>
#include <set>

namespace cutover::agent {

void Announcer::after_apply(const DesiredState& state, const std::vector<std::string>& bound_ports,
                            Clock::time_point now) {
  whole_.reset(state);
  changed(whole_.take_changes(), state.host);
  after_apply(whole_, bound_ports, now);
}

void Announcer::changed(const std::vector<overlay::DesiredIndex::PortChange>& changes,
                        const HostId& self) {
  for (const auto& c : changes) {
    tracker_.changed(c.before ? &*c.before : nullptr, c.now ? &*c.now : nullptr, self);
  }
}

void Announcer::after_apply(const overlay::DesiredIndex& index,
                            const std::vector<std::string>& bound_ports, Clock::time_point now) {
  std::erase_if(pending_, [&](const Pending& p) {
    const Port* port = index.port(p.port.id);
    return !port || !overlay::delivered_here(*port, index.self());
  });
  const std::set<std::string> bound(bound_ports.begin(), bound_ports.end());
  for (const auto& id : tracker_.due(bound)) {
    const Port* port = index.port(id);
    auto vni = port ? index.vni_of(port->network) : std::nullopt;
    if (vni) pending_.push_back(Pending{*port, *vni, now, 0});
  }
}

std::vector<AnnounceRound> Announcer::run_due(Clock::time_point now, FrameSink& sink) {
  std::vector<AnnounceRound> out;
  for (auto& p : pending_) {
    while (p.next_round < schedule_.size() && p.start + schedule_[p.next_round] <= now) {
      AnnounceRound r{p.port.id.str(), p.next_round, schedule_.size(), 0, 0, {}};
      for (const auto& frame : overlay::announcement_frames(p.port)) {
        try {
          sink.send(p.port, p.vni, frame);
          ++r.frames;
        } catch (const std::exception& e) {
          ++r.failed;
          r.error = e.what();
        }
      }
      ++p.next_round;  // a round that fell behind (slow apply) still goes out, late
      out.push_back(std::move(r));
    }
  }
  std::erase_if(pending_, [&](const Pending& p) { return p.next_round >= schedule_.size(); });
  return out;
}

std::optional<Announcer::Clock::time_point> Announcer::next_due() const {
  std::optional<Clock::time_point> best;
  for (const auto& p : pending_) {
    const auto t = p.start + schedule_[p.next_round];
    if (!best || t < *best) best = t;
  }
  return best;
}

}  // namespace cutover::agent
