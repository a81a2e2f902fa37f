// SliceIndex: network -> ports, host -> networks, network -> hosts, counted per port location.
#include "slice_index.hpp"

namespace cutover::controller {

void SliceIndex::count(const Port& p, int by) {
  for (const auto& h : port_locations(p)) {
    auto& n = networks_[h];
    if ((n[p.network] += by) == 0) n.erase(p.network);
    if (n.empty()) networks_.erase(h);
    auto& hs = hosts_[p.network];
    if ((hs[h] += by) == 0) hs.erase(h);
    if (hs.empty()) hosts_.erase(p.network);
  }
}

void SliceIndex::update(const Port* before, const Port* after) {
  if (before) {
    count(*before, -1);
    auto it = ports_.find(before->network);
    if (it != ports_.end()) {
      it->second.erase(before->id);
      if (it->second.empty()) ports_.erase(it);
    }
  }
  if (after) {
    count(*after, +1);
    ports_[after->network].insert(after->id);
  }
}

void SliceIndex::clear() {
  ports_.clear();
  networks_.clear();
  hosts_.clear();
}

std::set<NetworkId> SliceIndex::networks_at(const HostId& host) const {
  std::set<NetworkId> out;
  if (auto it = networks_.find(host); it != networks_.end()) {
    for (const auto& [n, count] : it->second) out.insert(out.end(), n);
  }
  return out;
}

std::set<NetworkId> SliceIndex::networks_at_before(
    const HostId& host, const std::vector<std::pair<const Port*, const Port*>>& changes) const {
  std::map<NetworkId, int> counts;
  if (auto it = networks_.find(host); it != networks_.end()) counts = it->second;
  for (const auto& [before, after] : changes) {
    if (after && port_is_at(*after, host)) --counts[after->network];
    if (before && port_is_at(*before, host)) ++counts[before->network];
  }
  std::set<NetworkId> out;
  for (const auto& [n, count] : counts) {
    if (count > 0) out.insert(out.end(), n);
  }
  return out;
}

const std::set<PortId>& SliceIndex::ports_on(const NetworkId& network) const {
  static const std::set<PortId> none;
  auto it = ports_.find(network);
  return it == ports_.end() ? none : it->second;
}

std::vector<HostId> SliceIndex::hosts_on(const NetworkId& network) const {
  std::set<HostId> hosts;
  add_hosts_on(network, hosts);
  return {hosts.begin(), hosts.end()};
}

const std::map<HostId, int>& SliceIndex::host_counts_on(const NetworkId& network) const {
  static const std::map<HostId, int> none;
  auto it = hosts_.find(network);
  return it == hosts_.end() ? none : it->second;
}

void SliceIndex::add_hosts_on(const NetworkId& network, std::set<HostId>& out) const {
  if (auto it = hosts_.find(network); it != hosts_.end()) {
    for (const auto& [h, count] : it->second) out.insert(out.end(), h);
  }
}

}  // namespace cutover::controller
