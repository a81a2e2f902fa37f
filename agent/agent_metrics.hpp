// AgentMetrics: the agent's Prometheus series, served on --metrics-listen (MetricsServer):
// reconcile passes (latency, outcome, objects changed), what the dataplane holds of ours, the
// generation applied, ports bound and awaiting their tap, NACKs, announcements, and whether the
// controller, the switch (OVSDB) and libvirt are connected. Counters move on the agent's
// io_context (Agent calls applied()/announced()); connection states may be set from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "announcer.hpp"
#include "apply_report.hpp"
#include "prom_text.hpp"

namespace cutover::agent {

class AgentMetrics {
 public:
  enum class Peer { controller, ovsdb, libvirt };
  // What the agent is set up to use ("" where it is not: that peer's series is absent).
  explicit AgentMetrics(std::string backend) : backend_(std::move(backend)) {}

  // A reconcile pass's report; nacked: it was rejected and the controller told so.
  void applied(const ApplyReport& r, bool nacked);
  void announced(const AnnounceRound& r);
  void watch(Peer p) { state(p).store(0); }  // the peer is used: reported, down until set
  void set_connected(Peer p, bool up) { state(p).store(up ? 1 : 0); }
  std::string render() const;

 private:
  std::atomic<int>& state(Peer p) {
    return p == Peer::controller ? controller_ : p == Peer::ovsdb ? ovsdb_ : libvirt_;
  }
  std::string backend_;
  PromHistogram apply_seconds_;
  std::map<std::string, uint64_t> passes_;   // by outcome
  std::map<std::string, uint64_t> changed_;  // objects by operation
  std::map<std::string, size_t> installed_;  // the last pass's figures
  uint64_t nacks_ = 0, announce_frames_ = 0, announce_failures_ = 0, generation_ = 0;
  size_t bound_ = 0, awaiting_ = 0;
  std::atomic<int> controller_{-1}, ovsdb_{-1}, libvirt_{-1};  // -1: not used here
};

}  // namespace cutover::agent
