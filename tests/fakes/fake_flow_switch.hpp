// FakeFlowSwitch: an in-memory OpenFlow table that behaves like OVS where the reconciler cares:
// flows keyed by (table, priority, match), tagged with a cookie, dumps filtered by cookie, bundles
// applied all-or-nothing (modify/delete of a flow that is missing or carries another cookie fails
// the whole bundle, as strict OpenFlow would leave it unmatched). Canonical form = the text as
// given, so tests should write flows the way the translation does.
#pragma once

#include <map>
#include <stdexcept>
#include <string>

#include "flow_switch.hpp"

namespace cutover::testing {

class FakeFlowSwitch : public agent::FlowSwitch {
 public:
  struct Installed {
    std::string actions;
    uint64_t cookie;
  };

  agent::FlowEntry normalize(const std::string& flow, bool = true) override {
    auto pos = flow.find(" actions=");
    if (pos == std::string::npos) throw std::invalid_argument("no actions in '" + flow + "'");
    return {flow.substr(0, pos), flow.substr(pos + 9), nullptr};
  }

  std::vector<agent::FlowEntry> dump(uint64_t cookie) override {
    if (fail_next_dump) {
      fail_next_dump = false;
      throw std::runtime_error("connection refused");
    }
    std::vector<agent::FlowEntry> out;
    for (const auto& [key, f] : table) {
      if (f.cookie == cookie) out.push_back({key, f.actions, nullptr});
    }
    return out;
  }

  void packet_out(int64_t in_port, const std::vector<uint8_t>& frame) override {
    if (fail_packet_out) throw std::runtime_error("packet-out refused");
    packets.emplace_back(in_port, frame);
  }
  std::vector<std::pair<int64_t, std::vector<uint8_t>>> packets;
  bool fail_packet_out = false;

  void bundle(const std::vector<agent::FlowMod>& mods, uint64_t cookie) override {
    ++bundles;
    if (fail_next_bundle) {
      fail_next_bundle = false;
      throw std::runtime_error("bundle rejected: OFPBFC_TIMEOUT");
    }
    auto next = table;  // all or nothing
    for (const auto& m : mods) {
      if (m.op == agent::FlowOp::remove) {
        auto it = next.find(m.flow);
        if (it == next.end() || it->second.cookie != cookie)
          throw std::runtime_error("no such flow");
        next.erase(it);
        continue;
      }
      auto e = normalize(m.flow);
      if (m.op == agent::FlowOp::modify) {
        auto it = next.find(e.key);
        if (it == next.end() || it->second.cookie != cookie)
          throw std::runtime_error("no such flow");
        it->second.actions = e.actions;
      } else {
        next[e.key] = {e.actions, cookie};
      }
      ++flow_mods;
    }
    table = std::move(next);
  }

  std::map<std::string, Installed> table;
  int bundles = 0;
  int flow_mods = 0;  // adds + modifies ever applied (a flush-and-readd would show here)
  bool fail_next_bundle = false;
  bool fail_next_dump = false;
};

}  // namespace cutover::testing
