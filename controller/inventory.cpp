// Inventory: judging reported VM interfaces into ports, recording refusals, retiring.
#include "inventory.hpp"

#include "json_codec.hpp"
#include "logging.hpp"

namespace cutover::controller {

namespace {
bool printable(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}
}  // namespace

Inventory::Inventory(ControllerState& state, AgentHub& hub, Scheduler& scheduler,
                     InventoryPolicy policy)
    : state_(state), hub_(hub), scheduler_(scheduler), policy_(policy) {
  if (!policy_.enabled) return;
  auto before = std::move(hub_.on_agent_update);
  hub_.on_agent_update = [this, before = std::move(before)](const HostId& h,
                                                            AgentHub::AgentChange what) {
    if (before) before(h, what);
    // What it reports running changes only with its report or its connection.
    if (what != AgentHub::AgentChange::generation) on_agent_update(h);
  };
}

bool Inventory::made_here(const Port& p) {
  auto it = p.labels.find(kOriginLabel);
  return it != p.labels.end() && it->second == kOrigin;
}

void Inventory::on_agent_update(const HostId& host) {
  auto agent = hub_.agents().find(host);
  const bool live =
      agent != hub_.agents().end() && agent->second.connected && agent->second.reported;
  static const Vms kNone;
  const Vms& reported = live ? agent->second.report.vms : kNone;
  const uint64_t session = live ? hub_.session_of(host) : 0;
  auto seen = seen_.find(host);
  const bool fresh = seen == seen_.end() || seen_session_[host] != session;
  if (!fresh && seen->second == reported) return;  // a report that changed no VM

  // Copies: judging commits, and a commit's fan-out may bring this host's next report in.
  const Vms now = reported;
  const Vms before = seen == seen_.end() ? Vms{} : seen->second;
  for (const auto& [vm, ifaces] : before) {
    for (const auto& i : ifaces) --reporting_[i.iface_id];
  }
  for (const auto& [vm, ifaces] : now) {
    for (const auto& i : ifaces) ++reporting_[i.iface_id];
  }
  std::erase_if(reporting_, [](const auto& kv) { return kv.second <= 0; });
  if (live) {
    seen_[host] = now;
    seen_session_[host] = session;
  } else {
    seen_.erase(host);
    seen_session_.erase(host);
  }
  // Problems of VMs no longer running here go with them.
  std::erase_if(problems_, [&](const auto& kv) {
    return kv.first.first == host && !now.count(kv.first.second);
  });
  for (const auto& [vm, ifaces] : now) {
    auto b = before.find(vm);
    if (fresh || b == before.end() || b->second != ifaces) judge(host, vm);
  }
  // Ports whose interface stopped running here, and (on a new session) every port the
  // inventory placed here that the host does not run. A VM gone from here may be one another
  // host's VM waited on (it ran on both): those held back are judged again.
  bool gone = false;
  for (const auto& [vm, ifaces] : before) gone = gone || !now.count(vm);
  if (gone) state_changed();
  for (const auto& [vm, ifaces] : before) {
    for (const auto& i : ifaces) {
      if (const Port* p = state_.port_of_iface(i.iface_id)) consider_retiring(p->id);
    }
  }
  if (fresh && live) {
    for (const auto& net : state_.index().networks_at(host)) {
      for (const auto& id : state_.index().ports_on(net)) {
        const Port& p = state_.ports().at(id);
        if (p.host == host) consider_retiring(id);
      }
    }
  }
}

std::variant<Port, Inventory::Problem> Inventory::wanted(const HostId& host, const std::string& vm,
                                                         const VmInterface& iface) const {
  std::string network;
  if (!iface.network.empty()) {
    network = iface.network;
  } else if (!iface.libvirt_network.empty()) {
    auto m = state_.mappings().find(iface.libvirt_network);
    if (m == state_.mappings().end()) {
      return Problem{"libvirt_network", "no mapping for libvirt network '" + iface.libvirt_network +
                                            "' (PUT /v1/network-mappings/" + iface.libvirt_network +
                                            ")"};
    }
    auto net = mapped_network(m->second, iface.portgroup);
    if (!net) {
      return Problem{"portgroup", "the mapping of libvirt network '" + iface.libvirt_network +
                                      "' has no network for portgroup '" + iface.portgroup +
                                      "' and no default"};
    }
    network = net->str();
  } else {
    return Problem{"network",
                   "no cutover network: the interface is on no libvirt network and cutover's "
                   "<metadata> names none for its MAC"};
  }
  if (iface.mac.empty()) return Problem{"mac", "the interface has no <mac address>"};
  nlohmann::json labels = {{kOriginLabel, kOrigin}};
  if (printable(vm, 253)) labels[kVmLabel] = vm;
  const nlohmann::json j = {{"id", iface.iface_id}, {"mac", iface.mac},
                            {"network", network},   {"iface_id", iface.iface_id},
                            {"host", host.str()},   {"labels", labels}};
  try {
    Port p = port_from_json(j);
    p.qos = iface.qos;  // validated when the agent's report was read
    return p;
  } catch (const ParseError& e) {
    // The port's own field names: "id" is the interface's iface-id.
    const std::string field = e.field() == "id" ? "iface_id" : e.field();
    return Problem{field, e.message()};
  }
}

void Inventory::judge(const HostId host, const std::string vm) {
  auto h = seen_.find(host);
  if (h == seen_.end() || !h->second.count(vm)) return;
  const std::vector<VmInterface> ifaces = h->second.at(vm);
  std::vector<Port> puts;
  std::map<std::string, Problem> problems;
  std::set<std::pair<NetworkId, MacAddress>> macs;
  for (const auto& iface : ifaces) {
    const Port* existing = state_.port_of_iface(iface.iface_id);
    // Runs on two hosts: a migration switching over, or one VM defined and started twice.
    if (auto r = reporting_.find(iface.iface_id); r != reporting_.end() && r->second > 1) {
      if (!existing) {
        problems[iface.iface_id] = {"",
                                    "runs on more than one host; made a port once only one "
                                    "host runs it"};
      }
      continue;
    }
    if (existing) {
      if (auto t = retire_timers_.find(existing->id); t != retire_timers_.end()) {
        scheduler_.cancel(t->second);
        retire_timers_.erase(t);
      }
    }
    auto want = wanted(host, vm, iface);
    if (existing) {
      // A port the inventory made follows its definition; not while it moves, and never to
      // another host (that is the driver's).
      auto* port = std::get_if<Port>(&want);
      if (!port || !made_here(*existing) || existing->migrating_to || existing->previous_host) {
        continue;
      }
      if (existing->network == port->network && existing->mac == port->mac &&
          existing->qos == port->qos) {
        continue;
      }
      Port updated = *existing;
      updated.network = port->network;
      updated.mac = port->mac;
      updated.qos = port->qos;
      want = updated;
    }
    if (auto* problem = std::get_if<Problem>(&want)) {
      problems[iface.iface_id] = *problem;
      continue;
    }
    const Port& port = std::get<Port>(want);
    if (!existing && state_.ports().count(port.id)) {
      // A port by that id with another iface-id: someone else's; never replaced from here.
      problems[iface.iface_id] = {"iface_id", "port '" + port.id.str() +
                                                  "' exists with another iface_id ('" +
                                                  state_.ports().at(port.id).iface_id + "')"};
    } else if (auto e = state_.port_problem(port)) {
      problems[iface.iface_id] = {e->field(), e->what()};
    } else if (!macs.insert({port.network, port.mac}).second) {
      problems[iface.iface_id] = {"mac", "MAC " + port.mac.to_string() +
                                             " is on two interfaces of this VM in network " +
                                             port.network.str()};
    } else {
      puts.push_back(port);
    }
  }
  const auto key = std::make_pair(host, vm);
  if (problems.empty() && !puts.empty()) {
    nlohmann::json ports = nlohmann::json::array();
    for (const auto& p : puts) ports.push_back(p.id.str());
    try {
      state_.put_ports(
          puts,
          nlohmann::json{
              {"event", "inventory_ports"}, {"host", host.str()}, {"vm", vm}, {"ports", ports}});
      logger("inventory")
          ->info("VM {} on {}: ports {} made or updated from libvirt", vm, host.str(),
                 ports.dump());
    } catch (const ApiError& e) {
      // The store failed (or a rule this judge did not foresee): nothing was written.
      for (const auto& p : puts) problems[p.iface_id] = {e.field(), e.what()};
    }
  }
  if (problems.empty()) {
    problems_.erase(key);
    return;
  }
  // All or none: the VM's other new ports wait with it.
  for (const auto& p : puts) {
    if (!problems.count(p.iface_id) && !state_.port_of_iface(p.iface_id)) {
      problems[p.iface_id] = {"", "held back: another interface of VM '" + vm +
                                      "' cannot be a port, and a VM's ports are made together"};
    }
  }
  auto& recorded = problems_[key];
  for (const auto& [iface, p] : problems) {
    auto it = recorded.find(iface);
    if (it == recorded.end() || !(it->second == p)) audit_problem(host, vm, iface, p);
  }
  recorded = std::move(problems);
}

void Inventory::audit_problem(const HostId& host, const std::string& vm, const std::string& iface,
                              const Problem& p) {
  logger("inventory")
      ->warn("VM {} on {}: interface {} is not made a port: {}{}", vm, host.str(), iface,
             p.field.empty() ? "" : p.field + ": ", p.message);
  try {
    state_.append_audit({{"event", "inventory_refused"},
                         {"host", host.str()},
                         {"vm", vm},
                         {"iface_id", iface},
                         {"field", p.field},
                         {"reason", p.message}});
  } catch (const ApiError& e) {
    logger("inventory")->warn("audit entry not stored: {}", e.what());
  }
}

void Inventory::refresh() {
  std::vector<std::pair<HostId, std::string>> all;
  for (const auto& [host, vms] : seen_) {
    for (const auto& [vm, ifaces] : vms) all.emplace_back(host, vm);
  }
  for (const auto& [host, vm] : all) judge(host, vm);
}

void Inventory::state_changed() {
  if (problems_.empty() || retry_armed_) return;
  retry_armed_ = true;
  scheduler_.after(std::chrono::milliseconds(0), [this] {
    retry_armed_ = false;
    std::vector<std::pair<HostId, std::string>> held;
    for (const auto& [key, p] : problems_) held.push_back(key);
    for (const auto& [host, vm] : held) judge(host, vm);
  });
}

void Inventory::consider_retiring(const PortId& id) {
  if (policy_.retire_after.count() <= 0 || retire_timers_.count(id)) return;
  auto it = state_.ports().find(id);
  if (it == state_.ports().end() || !made_here(it->second)) return;
  if (reporting_.count(it->second.iface_id)) return;
  retire_timers_[id] = scheduler_.after(policy_.retire_after, [this, id] {
    retire_timers_.erase(id);
    retire(id);
  });
}

void Inventory::retire(const PortId& id) {
  auto it = state_.ports().find(id);
  if (it == state_.ports().end() || !made_here(it->second)) return;
  const Port& p = it->second;
  if (reporting_.count(p.iface_id)) return;  // its VM runs again
  // Not while it moves, nor while its host cannot say whether the VM runs there.
  bool busy = p.migrating_to || p.previous_host;
  for (const auto& mid : state_.open_migrations()) {
    const auto& m = state_.migrations().at(mid);
    busy = busy || (m.port == id && !is_terminal(m.state));
  }
  if (p.host) {
    auto agent = hub_.agents().find(*p.host);
    busy =
        busy || agent == hub_.agents().end() || !agent->second.connected || !agent->second.reported;
  }
  if (busy) {
    consider_retiring(id);  // again later
    return;
  }
  try {
    state_.stage_audit({{"event", "inventory_retired"},
                        {"port", id.str()},
                        {"iface_id", p.iface_id},
                        {"reason", "no host has run its VM for " +
                                       std::to_string(policy_.retire_after.count()) + " ms"}});
    state_.delete_port(id);
    logger("inventory")->info("port {} retired: its VM runs nowhere", id.str());
  } catch (const ApiError& e) {
    logger("inventory")->warn("port {} not retired: {}", id.str(), e.what());
    consider_retiring(id);
  }
}

std::vector<Inventory::Entry> Inventory::entries() const {
  std::vector<Entry> out;
  for (const auto& [host, vms] : seen_) {
    for (const auto& [vm, ifaces] : vms) {
      const auto probs = problems_.find({host, vm});
      for (const auto& iface : ifaces) {
        Entry e{host, vm, iface, "", "", ""};
        if (const Port* p = state_.port_of_iface(iface.iface_id)) e.port = p->id.str();
        if (probs != problems_.end()) {
          if (auto it = probs->second.find(iface.iface_id); it != probs->second.end()) {
            e.field = it->second.field;
            e.problem = it->second.message;
          }
        }
        out.push_back(std::move(e));
      }
    }
  }
  return out;
}

}  // namespace cutover::controller
