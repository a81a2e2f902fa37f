// flow_switch_probe: drives OvsFlowSwitch (the agent's OpenFlow path) against a real bridge for
// ovs_flow_switch_test.py. "install N [BAD_AT]": N flows shaped like the L2 table given unparsed
// (normalize without canonical form, as into an empty table) in one bundle, the flow at BAD_AT
// (if given) malformed; then prints what happened and what the bridge holds under our cookie,
// as JSON. The test judges it.
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
  std::vector<FlowMod> mods;
  for (int i = 0; i < n; ++i) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "table=10,priority=100,reg0=0x%x,dl_dst=52:54:00:%02x:%02x:%02x "
                  "actions=%s",
                  100 + i % 50, (i >> 16) & 255, (i >> 8) & 255, i & 255,
                  i == bad_at ? "no_such_action:1" : "output:2");
    auto e = sw.normalize(buf, false);
    mods.push_back({FlowOp::add, e.key + " actions=" + e.actions, e.parsed});
  }
  std::string error;
  try {
    sw.bundle(mods, kCutoverCookie);
  } catch (const std::exception& e) {
    error = e.what();
  }
  const auto installed = sw.dump(kCutoverCookie);
  std::string escaped;
  for (char c : error) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += (c == '\n' ? ' ' : c);
  }
  std::printf("{\"error\": \"%s\", \"installed\": %zu}\n", escaped.c_str(), installed.size());
  return 0;
}
