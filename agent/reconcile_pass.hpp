// reconcile_pass: the frame both reconcilers share. Judges the desired state (a state that
// cannot be translated is rejected whole, naming the field, before anything is touched), runs
// the backend's apply step, turns any failure into a report (to be retried), and times it.
#pragma once

#include <chrono>
#include <exception>

#include "apply_report.hpp"
#include "desired_state.hpp"
#include "topology.hpp"

namespace cutover::agent {

// judge() checks the input and prepares what apply needs (throws ParseError: rejected, nothing
// touched); apply(report) changes the dataplane (throws: a failure, retried).
template <typename Judge, typename Apply>
ApplyReport reconcile_pass(uint64_t generation, Judge&& judge, Apply&& apply) {
  const auto start = std::chrono::steady_clock::now();
  ApplyReport report;
  report.generation = generation;
  try {
    judge();
  } catch (const ParseError& e) {
    report.rejected = true;
    report.error = e.message();
    report.error_field = e.field();
    return report;
  }
  try {
    apply(report);
    report.ok = true;
  } catch (const std::exception& e) {
    report.error = e.what();
  }
  report.apply_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return report;
}

// A whole state: judged by building its topology, which apply(topo, report) then uses.
template <typename Apply>
ApplyReport reconcile_pass(const DesiredState& state, Apply&& apply) {
  overlay::Topology topo;
  return reconcile_pass(
      state.generation, [&] { topo = overlay::build_topology(state); },
      [&](ApplyReport& report) { apply(topo, report); });
}

}  // namespace cutover::agent
