// HostFacts: the agent core's own facts and the report built from them.
#include "host_facts.hpp"

#include <algorithm>

namespace cutover::agent {

void HostFacts::desired(const DesiredState& local) {
  iface_of_port_.clear();
  local_ifaces_.clear();
  for (const auto& p : local.ports) {
    iface_of_port_[p.id.str()] = p.iface_id;
    if (p.host == local.host || p.migrating_to == local.host) local_ifaces_.insert(p.iface_id);
  }
}

void HostFacts::vm_state(const std::vector<std::string>& iface_ids, const std::string& state) {
  for (const auto& id : iface_ids) {
    if (state == "gone") {
      integration_.erase(id);
    } else {
      integration_[id] = state;
    }
  }
}

void HostFacts::libvirt_call(const std::string& migration, bool running) {
  if (running) {
    live_migrations_.insert(migration);
  } else {
    live_migrations_.erase(migration);
  }
}

std::set<std::string> HostFacts::paused_here() const {
  std::set<std::string> out;
  for (const auto& [iface, st] : integration_) {
    if (st == "paused_for_migration") out.insert(iface);
  }
  if (domains_) out.insert(domains_->paused.begin(), domains_->paused.end());
  return out;
}

ApplyReport HostFacts::for_controller(ApplyReport r) const {
  r.storage_ready = storage_.ready;
  r.storage_failed = storage_.failed;
  r.incoming = r.unclaimed_taps;
  r.live_migrations.assign(live_migrations_.begin(), live_migrations_.end());
  const auto paused = paused_here();
  for (const auto& [port, iface] : iface_of_port_) {
    if (paused.count(iface)) r.paused_ports.push_back(port);
  }
  // A port is up where its VM runs: an integration that said otherwise is believed.
  std::erase_if(r.bound_ports, [&](const std::string& port) {
    auto iface = iface_of_port_.find(port);
    if (iface == iface_of_port_.end()) return false;
    auto st = integration_.find(iface->second);
    return st != integration_.end() && st->second != "running";
  });
  if (domains_) {
    const auto& running = domains_->running;
    std::erase_if(r.bound_ports, [&](const std::string& port) {
      auto it = iface_of_port_.find(port);
      return it == iface_of_port_.end() || !running.count(it->second);
    });
    // A VM running here whose port the state places elsewhere: migrated by someone else.
    for (const auto& iface : running) {
      if (!local_ifaces_.count(iface)) r.foreign_running.push_back(iface);
    }
    r.vms = domains_->vms;
    for (const auto& [port, iface] : iface_of_port_) {
      if (auto it = domains_->precopy_iterations.find(iface);
          it != domains_->precopy_iterations.end()) {
        r.precopy_iterations[port] = it->second;
      }
    }
  }
  return r;
}

}  // namespace cutover::agent
