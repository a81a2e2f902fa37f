// reconcile_pass: the frame both reconcilers share. Validates the desired state (a state that
// cannot be translated is rejected whole, naming the field, before anything is touched), runs
// the backend's apply step, turns any failure into a report (to be retried), and times it.
#pragma once

#include <chrono>
#include <exception>

#include "apply_report.hpp"
#include "desired_state.hpp"
#include "topology.hpp"

namespace cutover::agent {

template <typename Apply>
ApplyReport reconcile_pass(const DesiredState& state, Apply&& apply) {
  const auto start = std::chrono::steady_clock::now();
  ApplyReport report;
  report.generation = state.generation;
  overlay::Topology topo;
  try {
    topo = overlay::build_topology(state);
  } catch (const ParseError& e) {
    report.rejected = true;
    report.error = e.message();
    report.error_field = e.field();
    return report;
  }
  try {
    apply(topo, report);
    report.ok = true;
  } catch (const std::exception& e) {
    report.error = e.what();
  }
  report.apply_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace cutover::agent
