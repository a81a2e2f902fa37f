// FlowSwitch: the seam between the OVS reconciler and an OpenFlow switch. Real: OvsFlowSwitch
// (libopenvswitch vconn on the OVS thread). Tests: FakeFlowSwitch (an in-memory table that
// honours cookies and applies a bundle all-or-nothing).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cutover::agent {

// A flow in canonical form: identity (table, priority, match) and actions.
struct FlowEntry {
  std::string key;
  std::string actions;
  // What the switch library parsed, kept so that bundle() need not parse the text again
  // (opaque; may be null, e.g. for dumped flows or in fakes).
  std::shared_ptr<void> parsed;
  bool operator==(const FlowEntry& o) const { return key == o.key && actions == o.actions; }
};

enum class FlowOp { add, modify, remove };

struct FlowMod {
  FlowOp op;
  std::string flow;                        // add/modify: "key actions=..."; remove: key only
  std::shared_ptr<void> parsed = nullptr;  // from normalize(), if the caller kept it
};

class FlowSwitch {
 public:
  virtual ~FlowSwitch() = default;
  // Canonical form of flow text; throws std::invalid_argument if the switch library rejects it.
  // With canonical=false only parses: key and actions are the text as given (enough for a flow
  // that will simply be added, e.g. into an empty table).
  virtual FlowEntry normalize(const std::string& flow, bool canonical = true) = 0;
  // Flows carrying exactly this cookie. Throws std::runtime_error on connection failure.
  virtual std::vector<FlowEntry> dump(uint64_t cookie) = 0;
  // Applies all mods atomically, tagging/restricting them to `cookie`; returns once the switch
  // confirmed (bundle commit + barrier). Throws std::runtime_error; then nothing was applied.
  virtual void bundle(const std::vector<FlowMod>& mods, uint64_t cookie) = 0;
  // Injects a frame as if it had arrived on in_port (it runs through the installed pipeline);
  // returns once the switch confirmed. Throws std::runtime_error.
  virtual void packet_out(int64_t in_port, const std::vector<uint8_t>& frame) = 0;
};

}  // namespace cutover::agent
