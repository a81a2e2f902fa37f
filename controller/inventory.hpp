// Inventory: ports from libvirt's own definitions. Agents report each running domain's
// interfaces (VmInterface, from the domain XML). For an interface no port has, the inventory
// makes one - its cutover network named by cutover's <metadata> for its MAC, else by the mapping
// of its libvirt network and portgroup (ControllerState::mappings) - placed where the VM runs,
// with the labels origin=libvirt and vm=<domain>. A VM's new ports go in one generation, all or
// none: an interface that cannot be a port (no network named or mapped, a MAC already used in the
// VNI, ...) holds its VM's other new ports back and is recorded with the field named (entries(),
// GET /v1/inventory; once in the audit log). Ports it made follow a changed mapping or metadata
// (not while migrating) and are retired once no host has run their VM for retire_after.
// Hand-made ports are never changed or retired. Where a VM runs is the MigrationDriver's
// business: the inventory never moves a port.
#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "agent_hub.hpp"
#include "controller_state.hpp"
#include "scheduler.hpp"

namespace cutover::controller {

struct InventoryPolicy {
  bool enabled = true;
  // A port the inventory made goes this long after the last host running its VM stopped
  // reporting it (0: never).
  std::chrono::milliseconds retire_after{60000};
};

class Inventory {
 public:
  // Listens to the hub's agent updates after whoever listened before (the MigrationDriver).
  Inventory(ControllerState& state, AgentHub& hub, Scheduler& scheduler, InventoryPolicy policy);

  // One interface a VM runs with, as judged.
  struct Entry {
    HostId host;
    std::string vm;
    VmInterface iface;
    std::string port;     // the port it is, "" when none
    std::string field;    // when no port: the field that stops it
    std::string problem;  // when no port: why
  };
  std::vector<Entry> entries() const;

  // After a change that may settle what was refused (a mapping or network written): judges
  // every reported VM again.
  void refresh();
  // After any committed change: VMs held back by a problem are judged again soon (a port that
  // took their MAC may be gone). Costs nothing when nothing is held back.
  void state_changed();

  static constexpr const char* kOriginLabel = "origin";
  static constexpr const char* kOrigin = "libvirt";
  static constexpr const char* kVmLabel = "vm";

 private:
  struct Problem {
    std::string field, message;
    bool operator==(const Problem&) const = default;
  };
  using Vms = std::map<std::string, std::vector<VmInterface>>;
  void on_agent_update(const HostId& host);
  // Makes or updates the ports of one VM running on `host`, or records why not.
  // (By value: judging commits, and what a commit sets off may change seen_.)
  void judge(const HostId host, const std::string vm);
  // The port an interface should be, or why it cannot be one.
  std::variant<Port, Problem> wanted(const HostId& host, const std::string& vm,
                                     const VmInterface& iface) const;
  static bool made_here(const Port& p);
  // Arms the retirement of a port the inventory made, if no host reports its interface.
  void consider_retiring(const PortId& port);
  void retire(const PortId& port);
  void audit_problem(const HostId& host, const std::string& vm, const std::string& iface,
                     const Problem& p);

  ControllerState& state_;
  AgentHub& hub_;
  Scheduler& scheduler_;
  InventoryPolicy policy_;
  std::map<HostId, Vms> seen_;               // each host's running VMs as last judged
  std::map<HostId, uint64_t> seen_session_;  // the session seen_ came from
  std::map<std::string, int> reporting_;     // iface-id -> hosts reporting it running
  // (host, vm) -> iface-id -> why it has no port
  std::map<std::pair<HostId, std::string>, std::map<std::string, Problem>> problems_;
  std::map<PortId, uint64_t> retire_timers_;
  bool retry_armed_ = false;
};

}  // namespace cutover::controller
