// Leadership: what the REST API needs to know about this controller's place among highly
// available controllers (none given: it is the only one, and leads). Implemented over
// LeaderElection in the controller's main; a plain struct in tests.
#pragma once

#include <cstdint>
#include <string>

namespace cutover::controller {

class Leadership {
 public:
  virtual ~Leadership() = default;
  virtual bool leading() const = 0;
  // The leader's advertised URL as last seen ("" unknown: an election is under way, or etcd
  // cannot be reached).
  virtual std::string leader() const = 0;
  // A follower whose copy of the state may be behind (etcd not reachable for a while).
  virtual bool stale() const = 0;
  virtual uint64_t elections_won() const = 0;
  virtual uint64_t leaderships_lost() const = 0;
};

}  // namespace cutover::controller
