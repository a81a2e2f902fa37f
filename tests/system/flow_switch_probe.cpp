// flow_switch_probe: drives OvsFlowSwitch (the agent's OpenFlow path) against a real bridge for
// ovs_flow_switch_test.py. "install N [BAD_AT]": N flows shaped like the L2 table given unparsed
// (normalize without canonical form, as into an empty table) in one bundle, the flow at BAD_AT
// (if given) malformed; then, on the same connection, a second bundle of 100 other flows (table
// 11). Prints what happened to each and what the bridge holds under our cookie after each, as
// JSON. The test judges it.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "ovs_flow_switch.hpp"
#include "ovs_reconciler.hpp"
#include "ovs_shim.h"

using namespace cutover::agent;

int main(int argc, char** argv) {
  if (argc < 4 || std::string(argv[2]) != "install") {
    std::fprintf(stderr, "usage: flow_switch_probe unix:/path/br-int.mgmt install N [BAD_AT]\n");
    return 2;
  }
  const int n = std::atoi(argv[3]);
  const int bad_at = argc > 4 ? std::atoi(argv[4]) : -1;
  cov_init();
  OvsFlowSwitch sw(argv[1]);
  // One bundle of `count` flows in `table`, the one at `bad` malformed: what it failed with ("" if
  // nothing) and how many flows the bridge then holds under our cookie, as a JSON fragment.
  auto install = [&](int table, int count, int bad) {
    std::vector<FlowMod> mods;
    for (int i = 0; i < count; ++i) {
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    "table=%d,priority=100,reg0=0x%x,dl_dst=52:54:00:%02x:%02x:%02x actions=%s",
                    table, 100 + i % 50, (i >> 16) & 255, (i >> 8) & 255, i & 255,
                    i == bad ? "no_such_action:1" : "output:2");
      auto e = sw.normalize(buf, false);
      mods.push_back({FlowOp::add, e.key + " actions=" + e.actions, e.parsed});
    }
    std::string error;
    try {
      sw.bundle(mods, kCutoverCookie);
    } catch (const std::exception& e) {
      error = e.what();
    }
    std::string escaped;
    for (char c : error) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += (c == '\n' ? ' ' : c);
    }
    return "{\"error\": \"" + escaped +
           "\", \"installed\": " + std::to_string(sw.dump(kCutoverCookie).size()) + "}";
  };
  const std::string first = install(10, n, bad_at);
  const std::string then = install(11, 100, -1);
  std::printf("{\"first\": %s, \"then\": %s}\n", first.c_str(), then.c_str());
  return 0;
}
