// HostFacts: what the agent core knows of its host beyond the dataplane - which local port has
// which VM interface (from the desired state's local slice), what libvirt says runs or paused
// here, what a hypervisor integration without libvirt said over the control socket, the storage
// thread's latest word and the libvirt calls this process runs - and the report the controller
// gets from it and the dataplane's ApplyReport. Pure: no I/O; owned by the agent's io thread.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apply_report.hpp"
#include "desired_state.hpp"
#include "libvirt/libvirt_domain_events.hpp"
#include "storage/storage_coordinator.hpp"

namespace cutover::agent {

class HostFacts {
 public:
  // The local slice of the newest desired state (DesiredIndex::local()).
  void desired(const DesiredState& local);
  // What libvirt says now (with --libvirt-uri; before the first word, nothing runs here).
  void libvirt(LibvirtDomainEvents::DomainsNow now) { domains_ = std::move(now); }
  void watching_libvirt() {
    if (!domains_) domains_.emplace();
  }
  // An integration without libvirt: these VM interfaces are arriving, running,
  // paused_for_migration or gone.
  void vm_state(const std::vector<std::string>& iface_ids, const std::string& state);
  void storage(StorageReport r) { storage_ = std::move(r); }
  const StorageReport& storage() const { return storage_; }
  void libvirt_call(const std::string& migration, bool running);

  // VMs stopped here for an outgoing migration's final copy (libvirt or an integration).
  std::set<std::string> paused_here() const;
  // The dataplane's report with what the controller needs of the rest: storage, libvirt calls,
  // paused ports, and bound ports only where their VM runs (libvirt, or an integration that said
  // so); VMs running here that the state places elsewhere; libvirt's domains and pre-copy passes.
  ApplyReport for_controller(ApplyReport r) const;

 private:
  std::map<std::string, std::string> iface_of_port_;  // local port -> its iface-id
  std::set<std::string> local_ifaces_;                // iface-ids the state runs or lands here
  std::optional<LibvirtDomainEvents::DomainsNow> domains_;
  std::map<std::string, std::string> integration_;  // iface-id -> state
  StorageReport storage_;
  std::set<std::string> live_migrations_;
};

}  // namespace cutover::agent
