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

// An OpenFlow meter with one drop band (a policer): kbit/s and a burst in kbit.
struct Meter {
  uint32_t id = 0;
  int64_t kbit_s = 0;
  int64_t burst_kbit = 0;
  bool operator==(const Meter&) const = default;
};

struct FlowMod {
  FlowOp op;
  std::string flow;                        // add/modify: "key actions=..."; remove: key only
  std::shared_ptr<void> parsed = nullptr;  // from normalize(), if the caller kept it
};

class FlowSwitch {
 public:
  virtual ~FlowSwitch() = default;
  // Canonical form of flow text; throws std::invalid_argument if the switch library rejects it.
  // With canonical=false key and actions are the text as given, unparsed (enough for a flow that
  // will simply be added, e.g. into an empty table): bundle() parses it as it streams, and a
  // flow it rejects fails that bundle, which then applies nothing.
  virtual FlowEntry normalize(const std::string& flow, bool canonical = true) = 0;
  // Flows carrying exactly this cookie. Throws std::runtime_error on connection failure.
  virtual std::vector<FlowEntry> dump(uint64_t cookie) = 0;
  // Applies all mods atomically, tagging/restricting them to `cookie`; returns once the switch
  // confirmed (bundle commit + barrier). Throws std::runtime_error; then nothing was applied.
  virtual void bundle(const std::vector<FlowMod>& mods, uint64_t cookie) = 0;
  // Every meter on the switch; one that is not a single drop band in kbps with a burst comes
  // back with kbit_s = -1 (never equal to one we want). Throws std::runtime_error.
  virtual std::vector<Meter> meters() = 0;
  // Adds (or with modify, changes) a meter; returns once the switch confirmed (barrier).
  virtual void set_meter(const Meter& m, bool modify) = 0;
  // Deletes a meter, and with it (OpenFlow) every flow that still uses it.
  virtual void del_meter(uint32_t id) = 0;
  // Injects a frame as if it had arrived on in_port (it runs through the installed pipeline);
  // returns once the switch confirmed. Throws std::runtime_error.
  virtual void packet_out(int64_t in_port, const std::vector<uint8_t>& frame) = 0;
};

}  // namespace cutover::agent
