// Dataplane: what the agent core asks of a hypervisor backend (OVS or Linux kernel). The core
// hands it whole desired states and the deltas that follow them; the backend reconciles on its own
// thread whenever the desired state or the switch changes, and reports each attempt. Reports arrive
// on the backend's thread: the callback must hand them over to its own executor.
#pragma once

#include <functional>
#include <set>
#include <string>

#include "apply_report.hpp"
#include "desired_index.hpp"
#include "desired_state.hpp"

namespace cutover::agent {

class Dataplane {
 public:
  using ReportFn = std::function<void(const ApplyReport&)>;
  virtual ~Dataplane() = default;
  virtual void start(ReportFn on_report) = 0;
  // Thread-safe; changes are applied in order (a whole state makes those queued before it moot)
  // and reconciled together when several arrive before the backend gets to them.
  virtual void set_desired(overlay::DesiredChange change) = 0;
  // Thread-safe. iface-ids of local ports whose VM has stopped here for the final copy of an
  // outgoing migration (libvirt): their frames go to the migration's destination from now on.
  virtual void set_departed(std::set<std::string> iface_ids) = 0;
  virtual void stop() = 0;
};

}  // namespace cutover::agent
