// bench_flows: installs N flows through the agent's own path (OvsFlowSwitch: dump what is
// installed under our cookie, normalize every desired flow - into an empty table that only
// splits the text, and the bundle parses each flow as it streams -, one OpenFlow 1.4 bundle,
// barrier) into a bridge and prints the timings as JSON. scripts/bench-flows compares it with
// `ovs-ofctl --bundle add-flows` on the same bridge. Prints figures; never passes or fails.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "ovs_flow_switch.hpp"
#include "ovs_reconciler.hpp"
#include "ovs_shim.h"

using namespace cutover::agent;
using Clock = std::chrono::steady_clock;

static double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_flows unix:/path/br-int.mgmt N\n");
    return 2;
  }
  const std::string target = argv[1];
  const int n = std::atoi(argv[2]);
  cov_init();
  OvsFlowSwitch sw(target);

  // Flows shaped like the L2 table: one per (VNI, MAC).
  std::vector<std::string> text;
  text.reserve(n);
  for (int i = 0; i < n; ++i) {
    char buf[160];
    std::snprintf(
        buf, sizeof buf,
        "table=10,priority=100,reg0=0x%x,dl_dst=52:54:%02x:%02x:%02x:%02x actions=output:%d",
        100 + i % 50, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255, 1 + i % 4);
    text.push_back(buf);
  }
  // The same steps as OvsReconciler's pass into an empty table (retranslate, then apply).
  const auto t0 = Clock::now();
  auto have = sw.dump(kCutoverCookie);
  const double dump_ms = ms_since(t0);
  const auto t1 = Clock::now();
  std::map<std::string, FlowEntry> want;
  for (const auto& t : text) {
    auto e = sw.normalize(t, !have.empty());
    auto key = e.key;
    want[key] = std::move(e);
  }
  const double normalize_ms = ms_since(t1);
  std::vector<FlowMod> mods;
  for (const auto& [key, e] : want)
    mods.push_back({FlowOp::add, key + " actions=" + e.actions, e.parsed});
  const auto t2 = Clock::now();
  sw.bundle(mods, kCutoverCookie);
  const double bundle_ms = ms_since(t2);
  const double total_ms = ms_since(t0);
  // A second pass is the steady state of a restart: dump, diff, nothing to send.
  const auto t3 = Clock::now();
  auto again = sw.dump(kCutoverCookie);
  const double redump_ms = ms_since(t3);
  std::printf(
      "{\"flows\": %d, \"normalize_ms\": %.1f, \"dump_before_ms\": %.1f, \"bundle_ms\": %.1f, "
      "\"total_ms\": %.1f, \"installed_after\": %zu, \"redump_ms\": %.1f, \"preexisting\": %zu}\n",
      n, normalize_ms, dump_ms, bundle_ms, total_ms, again.size(), redump_ms, have.size());
  return again.size() == static_cast<size_t>(n) ? 0 : 1;
}
