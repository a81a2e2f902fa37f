// LinuxReconciler: one reconcile pass for the Linux kernel dataplane. Validates and translates
// the desired state (overlay/linux_plan), reads links and VXLAN FDB entries over netlink, and
// applies the difference: creates/updates our bridges and VXLAN devices, enslaves VM taps,
// adds/removes FDB entries, sets the rate limits of VM taps (tbf; ingress via our ifb devices),
// deletes our devices no longer wanted. Touches only devices with
// ifalias "cutover-owned" (and the VM taps the state names). Adopts on restart: an unchanged
// state changes nothing. Synchronous; runs on LinuxDataplane's thread.
#pragma once

#include <map>
#include <string>

#include "apply_report.hpp"
#include "desired_index.hpp"
#include "desired_state.hpp"
#include "netlink_tables.hpp"
#include "topology.hpp"

namespace cutover::agent {

class LinuxReconciler {
 public:
  explicit LinuxReconciler(NetlinkTables& nl) : nl_(nl) {}

  // Never throws: failures come back as a report (rejected = bad input, nothing touched; other
  // failures name the object and the kernel's reason and are retried by the caller).
  ApplyReport reconcile(const overlay::DesiredIndex& index);
  // The same for a whole state on its own (tests, tools).
  ApplyReport reconcile(const DesiredState& state);

  // iface-id -> interface name: a tap whose ifalias is "iface-id=<id>", else a tap named <id>.
  static std::map<std::string, std::string> vm_ifnames(const std::vector<NlLink>& links);

 private:
  // The apply step of a pass over a judged topology (throws on a kernel failure).
  void apply(const overlay::Topology& topo, ApplyReport& report);
  // Rate limits: our ifb devices, then each VM tap's tbf and ingress redirect, then what no
  // port wants any more (redirects before the ifb devices they point at).
  void sync_qos(const overlay::LinuxDesired& desired, const std::vector<NlLink>& links,
                ApplyReport& report);
  NetlinkTables& nl_;
};

}  // namespace cutover::agent
