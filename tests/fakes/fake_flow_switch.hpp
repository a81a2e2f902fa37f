// FakeFlowSwitch: an in-memory OpenFlow table that behaves like OVS where the reconciler cares:
// flows keyed by (table, priority, match), tagged with a cookie, dumps filtered by cookie, bundles
// applied all-or-nothing (modify/delete of a flow that is missing or carries another cookie fails
// the whole bundle, as strict OpenFlow would leave it unmatched). Meters as OVS keeps them: a
// flow that uses a missing meter is refused, deleting a meter deletes the flows using it. Canonical
// form = the text as given, so tests should write flows the way the translation does.
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

  // As OvsFlowSwitch: canonical=false takes the text as written, and a bad flow fails bundle().
  agent::FlowEntry normalize(const std::string& flow, bool canonical = true) override {
    auto pos = flow.find(" actions=");
    if (pos == std::string::npos) {
      if (!canonical) return {flow, "", nullptr};
      throw std::invalid_argument("no actions in '" + flow + "'");
    }
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
      agent::FlowEntry e;
      try {
        e = normalize(m.flow);
      } catch (const std::invalid_argument& bad) {
        throw std::runtime_error(std::string("bundle rejected: bad flow: ") + bad.what());
      }
      if (e.actions.rfind("meter:", 0) == 0 &&
          !meter_table.count(static_cast<uint32_t>(std::stoul(e.actions.substr(6))))) {
        throw std::runtime_error("bundle rejected: OFPMMFC_UNKNOWN_METER");
      }
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

  std::vector<agent::Meter> meters() override {
    std::vector<agent::Meter> out;
    for (const auto& [id, m] : meter_table) out.push_back(m);
    return out;
  }
  void set_meter(const agent::Meter& m, bool modify) override {
    if (modify != (meter_table.count(m.id) > 0)) {
      throw std::runtime_error(modify ? "meter refused: OFPMMFC_UNKNOWN_METER"
                                      : "meter refused: OFPMMFC_METER_EXISTS");
    }
    meter_table[m.id] = m;
    ++meter_mods;
  }
  // As OVS does: the flows that use the meter go with it.
  void del_meter(uint32_t id) override {
    meter_table.erase(id);
    const std::string use = "meter:" + std::to_string(id) + ",";
    std::erase_if(table, [&](const auto& f) { return f.second.actions.find(use) == 0; });
    ++meter_mods;
  }

  std::map<std::string, Installed> table;
  std::map<uint32_t, agent::Meter> meter_table;
  int meter_mods = 0;
  int bundles = 0;
  int flow_mods = 0;  // adds + modifies ever applied (a flush-and-readd would show here)
  bool fail_next_bundle = false;
  bool fail_next_dump = false;
};

}  // namespace cutover::testing
