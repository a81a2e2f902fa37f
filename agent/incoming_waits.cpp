// IncomingWaits: matching the controller's prepared messages to waiting hook requests.
#include "incoming_waits.hpp"

#include <algorithm>

namespace cutover::agent {

namespace {
bool answered(const IncomingWaits::Result& r, const std::string& id) {
  return std::find(r.prepared.begin(), r.prepared.end(), id) != r.prepared.end() ||
         r.refused.count(id) > 0;
}
}  // namespace

void IncomingWaits::add(const std::vector<std::string>& iface_ids, Clock::time_point deadline,
                        Reply reply) {
  waits_.push_back({iface_ids, deadline, std::move(reply), {}});
  finish_ready();  // nothing to wait for (no interfaces): answered at once
}

void IncomingWaits::resolved(const wire::Prepared& p) {
  for (auto& w : waits_) {
    if (std::find(w.ids.begin(), w.ids.end(), p.iface_id) == w.ids.end() ||
        answered(w.result, p.iface_id)) {
      continue;
    }
    if (p.ok) {
      w.result.prepared.push_back(p.iface_id);
    } else {
      w.result.refused[p.iface_id] = p.error;
    }
  }
  finish_ready();
}

void IncomingWaits::expire(Clock::time_point now) {
  for (auto& w : waits_) {
    if (w.deadline > now) continue;
    for (const auto& id : w.ids) {
      if (!answered(w.result, id)) w.result.unanswered.push_back(id);
    }
  }
  finish_ready();
}

std::optional<IncomingWaits::Clock::time_point> IncomingWaits::next_deadline() const {
  std::optional<Clock::time_point> best;
  for (const auto& w : waits_) {
    if (!best || w.deadline < *best) best = w.deadline;
  }
  return best;
}

void IncomingWaits::finish_ready() {
  std::vector<Wait> done;
  std::erase_if(waits_, [&](Wait& w) {
    const bool all = std::all_of(w.ids.begin(), w.ids.end(), [&](const std::string& id) {
      return answered(w.result, id) ||
             std::find(w.result.unanswered.begin(), w.result.unanswered.end(), id) !=
                 w.result.unanswered.end();
    });
    if (all) done.push_back(std::move(w));
    return all;
  });
  for (auto& w : done) w.reply(w.result);  // after the list is consistent: replies may add
}

}  // namespace cutover::agent
