// SliceIndex: the one place that knows which hosts see which ports. A port is seen on every
// network host of its network (port_locations of every port on it: where ports run, arrive and
// were just left), and a host serves the networks it has a port location on. Kept by
// ControllerState on every committed port change; read by desired_for, the AgentHub (slices,
// delta fan-out, who rejoins a network) and the MigrationDriver (hosts involved in a migration).
// Costs follow the change: per port, per network. No I/O.
#pragma once

#include <map>
#include <set>
#include <vector>

#include "model.hpp"

namespace cutover::controller {

class SliceIndex {
 public:
  // A port changed: before (none = created), after (none = deleted).
  void update(const Port* before, const Port* after);
  void clear();

  // The networks `host` has a port location on.
  std::set<NetworkId> networks_at(const HostId& host) const;
  // The same as it was before `changes` (each {before, after}) were applied.
  std::set<NetworkId> networks_at_before(
      const HostId& host, const std::vector<std::pair<const Port*, const Port*>>& changes) const;
  // The ports of a network, in id order.
  const std::set<PortId>& ports_on(const NetworkId& network) const;
  // Every host a port of the network is located on, in id order.
  std::vector<HostId> hosts_on(const NetworkId& network) const;
  // The same with how many port locations each has there (empty when none): in host order.
  const std::map<HostId, int>& host_counts_on(const NetworkId& network) const;
  // The same, added to `out` (no list built on the way: the fan-out's hot path).
  void add_hosts_on(const NetworkId& network, std::set<HostId>& out) const;

 private:
  void count(const Port& p, int by);

  std::map<NetworkId, std::set<PortId>> ports_;
  std::map<HostId, std::map<NetworkId, int>> networks_;  // host -> network -> port locations
  std::map<NetworkId, std::map<HostId, int>> hosts_;     // network -> host -> port locations
};

}  // namespace cutover::controller
