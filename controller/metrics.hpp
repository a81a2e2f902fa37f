// Metrics: the controller's Prometheus counters and histograms (migrations by outcome, cutover
// blackout, connections refused), rendered with the gauges the hub and state provide, in text
// exposition format 0.0.4.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "prom_text.hpp"

namespace cutover::controller {

class Metrics {
 public:
  void migration_finished(const std::string& outcome) { ++migrations_[outcome]; }
  void observe_blackout(double seconds);
  void observe_convergence(double seconds);
  void observe_fanout(double seconds) { fanout_.observe(seconds); }
  // The HTTP server's side: what it holds and what it turned away.
  void set_connections(size_t open, size_t unauthenticated) {
    connections_open_ = open;
    connections_unauthenticated_ = unauthenticated;
  }
  void connection_refused(const std::string& reason) { ++refused_[reason]; }
  void accept_failed() { ++accept_errors_; }
  void agent_closed(const std::string& reason) { ++agents_closed_[reason]; }
  // A request or an agent turned away for who it is or what it may do.
  void auth_refused(const std::string& reason) { ++auth_refused_[reason]; }

  struct Gauges {
    uint64_t generation = 0;
    size_t agents_connected = 0;
    uint64_t generation_lag = 0;
    size_t migrations_active = 0;
    size_t agents_waiting = 0;                    // applied their latest generation only partially
    std::map<std::string, uint64_t> lag_by_host;  // connected agents' generation lag
  };
  std::string render(const Gauges& g) const;

 private:
  std::map<std::string, uint64_t> migrations_;
  size_t connections_open_ = 0, connections_unauthenticated_ = 0;
  std::map<std::string, uint64_t> refused_, agents_closed_, auth_refused_;
  uint64_t accept_errors_ = 0;
  PromHistogram blackout_, convergence_, fanout_;
};

}  // namespace cutover::controller
