// FlowSwitch: the seam between the OVS reconciler and an OpenFlow switch. Real: OvsFlowSwitch
// (libopenvswitch vconn on the OVS thread). Tests: FakeFlowSwitch (an in-memory table that
// honours cookies and applies a bundle all-or-nothing).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cutover::agent {

// A flow in canonical form: identity (table, priority, match) and actions.
struct FlowEntry {
  std::string key;
  std::string actions;
  bool operator==(const FlowEntry&) const = default;
};

enum class FlowOp { add, modify, remove };

struct FlowMod {
  FlowOp op;
  std::string flow;  // add/modify: "key actions=..."; remove: key only
};

class FlowSwitch {
 public:
  virtual ~FlowSwitch() = default;
  // Canonical form of flow text; throws std::invalid_argument if the switch library rejects it.
  virtual FlowEntry normalize(const std::string& flow) = 0;
  // Flows carrying exactly this cookie. Throws std::runtime_error on connection failure.
  virtual std::vector<FlowEntry> dump(uint64_t cookie) = 0;
  // Applies all mods atomically, tagging/restricting them to `cookie`; returns once the switch
  // confirmed (bundle commit + barrier). Throws std::runtime_error; then nothing was applied.
  virtual void bundle(const std::vector<FlowMod>& mods, uint64_t cookie) = 0;
};

}  // namespace cutover::agent
