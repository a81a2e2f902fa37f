// ControllerState: validation, persistence and per-host slicing of the desired state.
#include "controller_state.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include "json_codec.hpp"
#include "json_reader.hpp"

namespace cutover::controller {

namespace {
template <typename T>
StoredRecord record(const char* kind, const std::string& id, const T& value) {
  return {kind, id, to_json(value).dump()};
}

// An audit entry's store id: its seq, zero-padded so that the store's order is the log's.
std::string audit_id(uint64_t seq) {
  char id[24];
  std::snprintf(id, sizeof id, "%012llu", static_cast<unsigned long long>(seq));
  return id;
}

uint64_t audit_seq(const nlohmann::json& entry) {
  auto it = entry.find("seq");
  return it != entry.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}
}  // namespace

namespace {
// A failed store write as the REST answer: 503 when it is worth retrying (elsewhere).
ApiError store_error(const std::exception& e) {
  if (dynamic_cast<const StoreFenced*>(&e)) {
    return ApiError(503, "not_leader", "",
                    std::string("this controller is no longer the leader: ") + e.what());
  }
  if (dynamic_cast<const StoreUnavailable*>(&e)) {
    return ApiError(503, "store_unavailable", "",
                    std::string("the store cannot be reached; the change may not have been "
                                "recorded (read it back before retrying): ") +
                        e.what());
  }
  return ApiError(500, "store_failed", "", std::string("store write failed: ") + e.what());
}
}  // namespace

ControllerState::ControllerState(Store& store) : store_(store) {
  for (const auto& r : store_.load(generation_)) {
    const std::string where = "store " + r.kind + "/" + r.id;
    try {
      auto j = parse_json_text(r.body);
      if (r.kind == "host") {
        auto h = host_from_json(j);
        hosts_[h.id] = h;
      } else if (r.kind == "network") {
        auto n = network_from_json(j);
        networks_[n.id] = n;
      } else if (r.kind == "port") {
        auto p = port_from_json(j);
        set_port(ports_.count(p.id) ? &ports_.at(p.id) : nullptr, p, to_json(p).dump());
      } else if (r.kind == "migration") {
        auto m = migration_from_json(j);
        migrations_[m.id] = m;
        count_migration(m.id);
      } else if (r.kind == "mapping") {
        auto m = network_mapping_from_json(j);
        mappings_[m.libvirt_network] = m;
      } else if (r.kind == "audit") {
        audit_.push_back(j);  // ids are zero-padded sequence numbers: load order is log order
      }
    } catch (const ParseError& e) {
      throw std::runtime_error(where + " is corrupt: " + e.what());
    }
  }
  for (const auto& [id, m] : migrations_) index_migration(m);  // after the ports are loaded
  if (!audit_.empty()) next_audit_seq_ = audit_seq(audit_.back()) + 1;
}

namespace {
// N of "m<N>", 0 for ids of another shape (made by hand or by an older controller).
uint64_t migration_number(const MigrationId& id) {
  const auto& s = id.str();
  if (s.size() < 2 || s.size() > 19 || s[0] != 'm') return 0;
  uint64_t n = 0;
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return 0;
    n = n * 10 + static_cast<uint64_t>(s[i] - '0');
  }
  return n;
}
int64_t last_phase_us(const Migration& m) {
  int64_t t = 0;
  for (const auto& [phase, us] : m.timeline) t = std::max(t, us);
  return t;
}
}  // namespace

void ControllerState::count_migration(const MigrationId& id) {
  next_migration_number_ = std::max(next_migration_number_, migration_number(id) + 1);
}

MigrationId ControllerState::next_migration_id() const {
  for (uint64_t n = next_migration_number_;; ++n) {
    auto id = MigrationId::parse("m" + std::to_string(n));
    if (!migrations_.count(id)) return id;
  }
}

void ControllerState::index_migration(const Migration& m) {
  // Finished: only a completed or rolled-back one can still wait for its storage to be released
  // (MigrationDriver::check_released), and only if its port has volumes when it is written.
  bool open = !is_terminal(m.state);
  const bool may_hold_storage =
      m.state == MigrationState::completed || m.state == MigrationState::rolled_back;
  if (!open && may_hold_storage && !m.timeline.count("storage_released")) {
    auto p = ports_.find(m.port);
    open = p != ports_.end() && !p->second.volumes.empty();
  }
  if (open) {
    open_migrations_.insert(m.id);
  } else {
    open_migrations_.erase(m.id);
  }
}

void ControllerState::commit(std::vector<StoredRecord> upserts,
                             std::vector<std::pair<std::string, std::string>> deletes) {
  commit_with_audit(generation_ + 1, std::move(upserts), std::move(deletes));
  ++generation_;
}

void ControllerState::commit_with_audit(uint64_t generation, std::vector<StoredRecord> upserts,
                                        std::vector<std::pair<std::string, std::string>> deletes) {
  std::vector<nlohmann::json> entries;
  entries.swap(staged_audit_);  // a failed commit drops them: what they describe did not happen
  uint64_t seq = next_audit_seq_;
  for (auto& e : entries) {
    e["seq"] = seq;
    upserts.push_back({"audit", audit_id(seq), e.dump()});
    ++seq;
  }
  // Past the limit the oldest go in the same commit: the log never holds more than the limit.
  const size_t total = audit_.size() + entries.size();
  const size_t drop = std::min(
      audit_.size(), total > retention_.max_entries ? total - retention_.max_entries : size_t{0});
  for (size_t i = 0; i < drop; ++i) deletes.push_back({"audit", audit_id(audit_seq(audit_[i]))});
  try {
    store_.commit(generation, upserts, deletes);
  } catch (const std::exception& e) {
    throw store_error(e);
  }
  audit_.erase(audit_.begin(), audit_.begin() + static_cast<std::ptrdiff_t>(drop));
  next_audit_seq_ = seq;
  for (auto& e : entries) audit_.push_back(std::move(e));
}

void ControllerState::reload() {
  ControllerState fresh(store_);
  staged_audit_.clear();
  generation_ = fresh.generation_;
  hosts_ = std::move(fresh.hosts_);
  ++hosts_version_;
  networks_ = std::move(fresh.networks_);
  ports_ = std::move(fresh.ports_);
  index_ = std::move(fresh.index_);
  port_json_ = std::move(fresh.port_json_);
  macs_ = std::move(fresh.macs_);
  ifaces_ = std::move(fresh.ifaces_);
  mappings_ = std::move(fresh.mappings_);
  open_migrations_ = std::move(fresh.open_migrations_);
  migrations_ = std::move(fresh.migrations_);
  next_migration_number_ = fresh.next_migration_number_;
  audit_ = std::move(fresh.audit_);
  next_audit_seq_ = fresh.next_audit_seq_;
}

Host ControllerState::put_host(const Host& h) {
  for (const auto& [id, other] : hosts_) {
    if (id != h.id && other.underlay_ip == h.underlay_ip) {
      throw ApiError(409, "conflict", "underlay_ip",
                     "underlay IP " + h.underlay_ip.to_string() + " is used by host " + id.str());
    }
  }
  auto it = hosts_.find(h.id);
  if (it != hosts_.end() && it->second == h) return h;  // unchanged: no new generation
  commit({record("host", h.id.str(), h)}, {});
  hosts_[h.id] = h;
  ++hosts_version_;
  if (on_change) on_change(generation_, ChangeSet::of_topology());
  return h;
}

void ControllerState::delete_host(const HostId& id) {
  if (!hosts_.count(id)) throw ApiError(404, "not_found", "", "no host '" + id.str() + "'");
  for (const auto& [pid, p] : ports_) {
    if (port_is_at(p, id)) {
      throw ApiError(409, "in_use", "",
                     "host '" + id.str() + "' still has port '" + pid.str() + "'");
    }
  }
  commit({}, {{"host", id.str()}});
  hosts_.erase(id);
  ++hosts_version_;
  if (on_change) on_change(generation_, ChangeSet::of_topology());
}

Network ControllerState::create_network(const Network& n) {
  if (networks_.count(n.id)) {
    throw ApiError(409, "conflict", "id", "network '" + n.id.str() + "' already exists");
  }
  for (const auto& [id, other] : networks_) {
    if (other.vni == n.vni) {
      throw ApiError(409, "conflict", "vni",
                     "VNI " + std::to_string(n.vni.value()) + " is used by network " + id.str());
    }
  }
  commit({record("network", n.id.str(), n)}, {});
  networks_[n.id] = n;
  if (on_change) on_change(generation_, ChangeSet::of_topology());
  return n;
}

void ControllerState::delete_network(const NetworkId& id) {
  if (!networks_.count(id)) throw ApiError(404, "not_found", "", "no network '" + id.str() + "'");
  for (const auto& [pid, p] : ports_) {
    if (p.network == id) {
      throw ApiError(409, "in_use", "",
                     "network '" + id.str() + "' still has port '" + pid.str() + "'");
    }
  }
  for (const auto& [name, m] : mappings_) {
    bool named = m.network == id;
    for (const auto& [pg, net] : m.portgroups) named = named || net == id;
    if (named) {
      throw ApiError(
          409, "in_use", "",
          "network '" + id.str() + "' is named by the mapping of libvirt network '" + name + "'");
    }
  }
  commit({}, {{"network", id.str()}});
  networks_.erase(id);
  if (on_change) on_change(generation_, ChangeSet::of_topology());
}

void ControllerState::validate_port(const Port& p, const std::optional<PortId>& replacing) const {
  auto net = networks_.find(p.network);
  if (net == networks_.end()) {
    throw ApiError(422, "unknown_reference", "network", "no network '" + p.network.str() + "'");
  }
  if (p.host && !hosts_.count(*p.host)) {
    throw ApiError(422, "unknown_reference", "host", "no host '" + p.host->str() + "'");
  }
  if (p.migrating_to && !hosts_.count(*p.migrating_to)) {
    throw ApiError(422, "unknown_reference", "migrating_to",
                   "no host '" + p.migrating_to->str() + "'");
  }
  if (p.previous_host && !hosts_.count(*p.previous_host)) {
    throw ApiError(422, "unknown_reference", "previous_host",
                   "no host '" + p.previous_host->str() + "'");
  }
  // Looked up, not scanned: a port write costs the same with 10 or 10,000 ports.
  if (auto it = macs_.find({p.network, p.mac});
      it != macs_.end() && !(replacing && it->second == *replacing)) {
    throw ApiError(409, "conflict", "mac",
                   "MAC " + p.mac.to_string() + " is already used in VNI " +
                       std::to_string(net->second.vni.value()) + " by port " + it->second.str());
  }
  if (auto it = ifaces_.find(p.iface_id);
      it != ifaces_.end() && !(replacing && it->second == *replacing)) {
    throw ApiError(409, "conflict", "iface_id",
                   "iface_id '" + p.iface_id + "' is already used by port " + it->second.str());
  }
}

Port ControllerState::create_port(const Port& p) {
  if (ports_.count(p.id)) {
    throw ApiError(409, "conflict", "id", "port '" + p.id.str() + "' already exists");
  }
  validate_port(p, std::nullopt);
  auto rec = record("port", p.id.str(), p);
  std::string text = rec.body;
  commit({std::move(rec)}, {});
  set_port(nullptr, p, std::move(text));
  if (on_change) on_change(generation_, ChangeSet::of_port(std::nullopt, p));
  return p;
}

Port ControllerState::replace_port(const Port& p) {
  auto it = ports_.find(p.id);
  if (it == ports_.end()) throw ApiError(404, "not_found", "", "no port '" + p.id.str() + "'");
  validate_port(p, p.id);
  if (it->second == p) return p;
  auto rec = record("port", p.id.str(), p);
  std::string text = rec.body;
  commit({std::move(rec)}, {});
  const Port before = it->second;
  set_port(&before, p, std::move(text));
  if (on_change) on_change(generation_, ChangeSet::of_port(before, p));
  return p;
}

void ControllerState::delete_port(const PortId& id) {
  if (!ports_.count(id)) throw ApiError(404, "not_found", "", "no port '" + id.str() + "'");
  for (const auto& [mid, m] : migrations_) {
    if (m.port == id && !is_terminal(m.state)) {
      throw ApiError(409, "in_use", "", "port '" + id.str() + "' is migrating (" + mid.str() + ")");
    }
  }
  commit({}, {{"port", id.str()}});
  const Port before = ports_.at(id);
  index_.update(&before, nullptr);
  macs_.erase({before.network, before.mac});
  ifaces_.erase(before.iface_id);
  ports_.erase(id);
  port_json_.erase(id);
  if (on_change) on_change(generation_, ChangeSet::of_port(before, std::nullopt));
}

const Port* ControllerState::port_of_iface(const std::string& iface_id) const {
  auto it = ifaces_.find(iface_id);
  return it == ifaces_.end() ? nullptr : &ports_.at(it->second);
}

std::optional<ApiError> ControllerState::port_problem(const Port& p) const {
  try {
    validate_port(p, ports_.count(p.id) ? std::optional<PortId>(p.id) : std::nullopt);
  } catch (const ApiError& e) {
    return e;
  }
  return std::nullopt;
}

void ControllerState::put_ports(const std::vector<Port>& ports,
                                std::optional<nlohmann::json> audit) {
  std::set<PortId> ids;
  std::set<std::pair<NetworkId, MacAddress>> macs;
  std::set<std::string> ifaces;
  for (const auto& p : ports) {
    validate_port(p, ports_.count(p.id) ? std::optional<PortId>(p.id) : std::nullopt);
    if (!ids.insert(p.id).second) {
      throw ApiError(409, "conflict", "id", "port '" + p.id.str() + "' is in the batch twice");
    }
    if (!macs.insert({p.network, p.mac}).second) {
      throw ApiError(409, "conflict", "mac",
                     "MAC " + p.mac.to_string() + " is given to two ports of network " +
                         p.network.str() + " in the same change");
    }
    if (!ifaces.insert(p.iface_id).second) {
      throw ApiError(409, "conflict", "iface_id",
                     "iface_id '" + p.iface_id + "' is given to two ports in the same change");
    }
  }
  // A port of the batch may take a MAC or iface-id another one of it gives up: checked above
  // against the state as it is, which is stricter than needed and never wrong.
  std::vector<StoredRecord> upserts;
  std::vector<std::string> texts;
  for (const auto& p : ports) {
    if (auto it = ports_.find(p.id); it != ports_.end() && it->second == p) continue;
    upserts.push_back(record("port", p.id.str(), p));
    texts.push_back(upserts.back().body);
  }
  if (upserts.empty()) return;
  if (audit) stage_audit(std::move(*audit));
  commit(std::move(upserts), {});
  ChangeSet change;
  size_t i = 0;
  for (const auto& p : ports) {
    auto it = ports_.find(p.id);
    if (it != ports_.end() && it->second == p) continue;
    std::optional<Port> before;
    if (it != ports_.end()) before = it->second;
    set_port(before ? &*before : nullptr, p, std::move(texts[i++]));
    change.ports.push_back({before, p});
  }
  if (on_change) on_change(generation_, change);
}

NetworkMapping ControllerState::put_mapping(const NetworkMapping& m) {
  if (m.network && !networks_.count(*m.network)) {
    throw ApiError(422, "unknown_reference", "network", "no network '" + m.network->str() + "'");
  }
  for (const auto& [pg, net] : m.portgroups) {
    if (!networks_.count(net)) {
      throw ApiError(422, "unknown_reference", "portgroups." + pg,
                     "no network '" + net.str() + "'");
    }
  }
  auto it = mappings_.find(m.libvirt_network);
  if (it != mappings_.end() && it->second == m) return m;
  commit_with_audit(generation_, {record("mapping", m.libvirt_network, m)}, {});
  mappings_[m.libvirt_network] = m;
  return m;
}

void ControllerState::delete_mapping(const std::string& libvirt_network) {
  if (!mappings_.count(libvirt_network)) {
    throw ApiError(404, "not_found", "",
                   "no mapping for libvirt network '" + libvirt_network + "'");
  }
  commit_with_audit(generation_, {}, {{"mapping", libvirt_network}});
  mappings_.erase(libvirt_network);
}

void ControllerState::stage_audit(nlohmann::json entry) {
  staged_audit_.push_back(std::move(entry));
}

void ControllerState::append_audit(nlohmann::json entry) {
  staged_audit_.push_back(std::move(entry));
  commit_with_audit(generation_, {}, {});  // audit only: no new generation
}

size_t ControllerState::prune(int64_t now_us) {
  const int64_t cutoff = now_us - retention_.max_age_us;
  size_t drop = 0;
  while (drop < audit_.size()) {
    const auto& e = audit_[drop];
    const bool too_many = audit_.size() - drop > retention_.max_entries;
    const auto t = e.find("time_us");
    const bool too_old = t != e.end() && t->is_number() && t->get<int64_t>() < cutoff;
    if (!too_many && !too_old) break;  // oldest first: the rest are newer
    ++drop;
  }
  // Finished migrations, oldest (by number) first; the newest always stays (next_migration_id).
  std::vector<std::pair<uint64_t, MigrationId>> finished;
  for (const auto& [id, m] : migrations_) {
    if (!open_migrations_.count(id)) finished.push_back({migration_number(id), id});
  }
  std::sort(finished.begin(), finished.end());
  MigrationId newest;
  uint64_t newest_n = 0;
  for (const auto& [id, m] : migrations_) {
    if (newest.str().empty() || migration_number(id) >= newest_n) {
      newest = id;
      newest_n = migration_number(id);
    }
  }
  std::vector<MigrationId> gone;
  size_t left = migrations_.size();
  for (const auto& [n, id] : finished) {
    if (id == newest) continue;
    if (left > retention_.max_entries || last_phase_us(migrations_.at(id)) < cutoff) {
      gone.push_back(id);
      --left;
    }
  }
  if (drop == 0 && gone.empty()) return 0;
  std::vector<std::pair<std::string, std::string>> deletes;
  for (size_t i = 0; i < drop; ++i) deletes.push_back({"audit", audit_id(audit_seq(audit_[i]))});
  for (const auto& id : gone) deletes.push_back({"migration", id.str()});
  try {
    store_.commit(generation_, {}, deletes);
  } catch (const std::exception& e) {
    throw store_error(e);
  }
  audit_.erase(audit_.begin(), audit_.begin() + static_cast<std::ptrdiff_t>(drop));
  for (const auto& id : gone) migrations_.erase(id);
  return drop + gone.size();
}

Migration ControllerState::put_migration(const Migration& m) {
  commit({record("migration", m.id.str(), m)}, {});
  migrations_[m.id] = m;
  count_migration(m.id);
  index_migration(m);
  if (on_change) on_change(generation_, ChangeSet::of_migration(m.id));  // no slice changed
  return m;
}

void ControllerState::put_port_and_migration(const Port& p, const Migration& m) {
  validate_port(p, p.id);
  auto rec = record("port", p.id.str(), p);
  std::string text = rec.body;
  commit({std::move(rec), record("migration", m.id.str(), m)}, {});
  const Port before = ports_.at(p.id);
  set_port(&before, p, std::move(text));
  migrations_[m.id] = m;
  count_migration(m.id);
  index_migration(m);
  if (on_change) on_change(generation_, ChangeSet::of_port(before, p, m.id));
}

void ControllerState::set_port(const Port* before, const Port& after, std::string json) {
  // `before` may point into ports_: counted out before it is overwritten.
  index_.update(before, nullptr);
  if (before) {
    macs_.erase({before->network, before->mac});
    ifaces_.erase(before->iface_id);
  }
  macs_[{after.network, after.mac}] = after.id;
  ifaces_[after.iface_id] = after.id;
  auto& slot = ports_[after.id];
  slot = after;
  index_.update(nullptr, &slot);
  port_json_[after.id] = std::move(json);
}

const std::string& ControllerState::port_json(const PortId& id) const { return port_json_.at(id); }

std::vector<PortId> ControllerState::ports_seen_by(const std::set<NetworkId>& nets) const {
  std::vector<PortId> ids;
  for (const auto& n : nets) {
    const auto& on = index_.ports_on(n);
    ids.insert(ids.end(), on.begin(), on.end());
  }
  if (nets.size() > 1) std::sort(ids.begin(), ids.end());
  return ids;
}

DesiredState ControllerState::desired_for(const HostId& id) const {
  DesiredState d;
  d.generation = generation_;
  d.host = id;
  const auto nets = index_.networks_at(id);
  for (const auto& nid : nets) d.networks.push_back(networks_.at(nid));
  for_slice_ports(nets, [&](const PortId& pid) { d.ports.push_back(ports_.at(pid)); });
  for_slice_hosts(id, nets, [&](const HostId& hid) {
    auto it = hosts_.find(hid);
    if (it != hosts_.end()) d.hosts.push_back(it->second);
  });
  return d;
}

}  // namespace cutover::controller
