// LibvirtDomainEvents: watches this hypervisor's libvirt (its own thread with libvirt's event
// loop) and reports which VM interfaces are *running* here, by iface-id (the
// <virtualport type='openvswitch'><parameters interfaceid='...'/> of each running domain, or the
// tap name of an <interface type='ethernet'>). A migrating VM's tap exists on the destination from
// the prepare phase on, while the VM is still paused there; only RESUMED (state running) means its
// traffic may move. Reconnects by itself.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent_report.hpp"

namespace cutover::agent {

class LibvirtDomainEvents {
 public:
  using Vms = std::map<std::string, std::vector<VmInterface>>;
  struct DomainsNow {
    std::set<std::string> running;  // iface-ids of domains running here
    // of domains paused here for the final phase of an outgoing migration (the moment the
    // destination may start buffering)
    std::set<std::string> paused;
    Vms vms;  // each running domain's name with its interfaces (those with an iface-id)
    // iface-id -> the pre-copy iteration an outgoing migration of its domain is in (libvirt's
    // MIGRATION_ITERATION event: 1 = the first pass over memory, then one per dirty re-copy)
    std::map<std::string, int64_t> precopy_iterations;
    bool operator==(const DomainsNow&) const = default;
  };
  using RunningFn = std::function<void(DomainsNow)>;
  LibvirtDomainEvents(std::string uri, RunningFn on_change);
  ~LibvirtDomainEvents();
  void start();
  void stop();
  // Whether the connection to libvirt is up now (any thread).
  bool connected() const { return connected_.load(); }

  // The domain's interfaces (domain_interfaces; none, logged, if it cannot be read).
  static std::vector<VmInterface> interfaces_from_xml(const std::string& xml);

 private:
  void run();

  std::string uri_;
  RunningFn on_change_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
};

}  // namespace cutover::agent
