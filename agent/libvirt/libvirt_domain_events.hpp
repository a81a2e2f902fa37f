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

namespace cutover::agent {

class LibvirtDomainEvents {
 public:
  // running: interfaces of domains running here; paused: of domains paused here for the final
  // phase of an outgoing migration (the moment the destination may start buffering); vms: each
  // running domain's name with its interfaces.
  using Vms = std::map<std::string, std::set<std::string>>;
  using RunningFn =
      std::function<void(std::set<std::string> running, std::set<std::string> paused, Vms vms)>;
  LibvirtDomainEvents(std::string uri, RunningFn on_change);
  ~LibvirtDomainEvents();
  void start();
  void stop();

  // Extracts every interfaceid='...' from a domain's XML (pure; tested directly).
  static std::set<std::string> iface_ids_from_xml(const std::string& xml);

 private:
  void run();

  std::string uri_;
  RunningFn on_change_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace cutover::agent
