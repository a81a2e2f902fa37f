// DesiredIndex: whole states and deltas applied in place, with what they changed recorded.
#include "desired_index.hpp"

#include <algorithm>
#include <stdexcept>

namespace cutover::overlay {

const Port* DesiredIndex::port(const PortId& id) const {
  auto it = ports_.find(id);
  return it == ports_.end() ? nullptr : &it->second;
}

std::optional<uint32_t> DesiredIndex::vni_of(const NetworkId& network) const {
  auto it = vnis_.find(network);
  if (it == vnis_.end()) return std::nullopt;
  return it->second;
}

std::vector<const Port*> DesiredIndex::ports_of(uint32_t vni) const {
  std::vector<const Port*> out;
  auto it = by_vni_.find(vni);
  if (it == by_vni_.end()) return out;
  out.reserve(it->second.size());
  for (const auto& id : it->second) out.push_back(&ports_.at(id));
  return out;
}

void DesiredIndex::reset(DesiredState state) {
  std::map<PortId, Port> before;
  before.swap(ports_);
  // Only the networks whose ports changed are dirty - unless the networks or a host's address
  // changed under them (then all are).
  bool same_ground =
      have_ && state.host == header_.host && state.networks.size() >= header_.networks.size();
  for (size_t i = 0; same_ground && i < header_.networks.size(); ++i) {
    same_ground = header_.networks[i] == state.networks[i];
  }
  for (const auto& h : header_.hosts) {
    if (!same_ground) break;
    auto it = std::find_if(state.hosts.begin(), state.hosts.end(),
                           [&](const Host& x) { return x.id == h.id; });
    same_ground = it != state.hosts.end() && it->underlay_ip == h.underlay_ip;
  }
  by_vni_.clear();
  vnis_.clear();
  problem_.reset();
  auto at = [](const char* list, size_t i, const char* field) {
    return std::string(list) + "[" + std::to_string(i) + "]." + field;
  };
  std::set<uint32_t> vnis;
  for (size_t i = 0; i < state.networks.size(); ++i) {
    const auto& n = state.networks[i];
    if (!vnis_.emplace(n.id, n.vni.value()).second && !problem_) {
      problem_ = ParseError(at("networks", i, "id"), "duplicate network id '" + n.id.str() + "'");
    }
    if (!vnis.insert(n.vni.value()).second && !problem_) {
      problem_ = ParseError(at("networks", i, "vni"),
                            "VNI " + std::to_string(n.vni.value()) + " used by two networks");
    }
  }
  // One id is one port here; a whole state that names one twice is refused as a whole.
  position_.clear();
  for (size_t i = 0; i < state.ports.size(); ++i) {
    const PortId id = state.ports[i].id;
    position_[id] = i;
    if (!ports_.insert_or_assign(id, std::move(state.ports[i])).second && !problem_) {
      problem_ = ParseError(at("ports", i, "id"), "duplicate port id '" + id.str() + "'");
    }
  }
  Dirty dirty;
  dirty.all = !same_ground;
  for (size_t i = header_.networks.size(); same_ground && i < state.networks.size(); ++i) {
    dirty.vnis.insert(state.networks[i].vni.value());  // new networks
  }
  for (const auto& [id, p] : ports_) {
    if (auto vni = vni_of(p.network)) by_vni_[*vni].insert(id);
    auto old = before.find(id);
    if (old == before.end()) {
      touched(&p, dirty);
      note(std::nullopt, &p);
    } else {
      if (!(old->second == p)) {
        touched(&old->second, dirty);
        touched(&p, dirty);
        note(std::move(old->second), &p);
      }
      before.erase(old);
    }
  }
  for (auto& [id, p] : before) {
    touched(&p, dirty);
    note(std::move(p), nullptr);
  }
  state.ports.clear();
  header_ = std::move(state);
  have_ = true;
  dirty_.all = dirty_.all || dirty.all;
  dirty_.vnis.merge(dirty.vnis);
  rebuild_local();
}

void DesiredIndex::apply(const wire::Delta& delta) {
  if (!have_) throw std::logic_error("a delta before any whole state");
  header_.generation = delta.generation;
  bool hosts_changed = false;
  for (const auto& h : delta.upsert_hosts) {
    auto it = std::find_if(header_.hosts.begin(), header_.hosts.end(),
                           [&](const Host& x) { return x.id == h.id; });
    if (it == header_.hosts.end()) {
      header_.hosts.push_back(h);
      hosts_changed = true;
      continue;
    }
    if (it->underlay_ip != h.underlay_ip) dirty_.all = true;  // every tunnel to it moves
    hosts_changed = hosts_changed || !(*it == h);
    *it = h;
  }
  for (const auto& id : delta.remove_ports) remove(id);
  for (const auto& p : delta.upsert_ports) upsert(p);
  if (hosts_changed) {
    local_.hosts = header_.hosts;
  }
  local_.generation = header_.generation;
}

void DesiredIndex::apply(DesiredChange change) {
  if (auto* full = std::get_if<DesiredState>(&change)) {
    reset(std::move(*full));
  } else {
    apply(std::get<wire::Delta>(change));
  }
}

void DesiredIndex::upsert(const Port& p) {
  auto it = ports_.find(p.id);
  if (it != ports_.end() && it->second == p) return;
  position_.erase(p.id);
  std::optional<Port> before;
  if (it != ports_.end()) {
    touched(&it->second);
    if (auto vni = vni_of(it->second.network)) by_vni_[*vni].erase(p.id);
    before = std::move(it->second);
    it->second = p;
  } else {
    it = ports_.emplace(p.id, p).first;
  }
  if (auto vni = vni_of(p.network)) by_vni_[*vni].insert(p.id);
  touched(&it->second);
  local_changed(before ? &*before : nullptr, &it->second);
  note(std::move(before), &it->second);
}

void DesiredIndex::remove(const PortId& id) {
  auto it = ports_.find(id);
  if (it == ports_.end()) return;
  position_.erase(id);
  touched(&it->second);
  if (auto vni = vni_of(it->second.network)) by_vni_[*vni].erase(id);
  local_changed(&it->second, nullptr);
  note(std::move(it->second), nullptr);
  ports_.erase(it);
}

void DesiredIndex::touched(const Port* p) { touched(p, dirty_); }

void DesiredIndex::touched(const Port* p, Dirty& dirty) const {
  if (auto vni = vni_of(p->network)) {
    dirty.vnis.insert(*vni);
  } else {
    dirty.all = true;  // a port on an unknown network: the whole state is judged again
  }
}

void DesiredIndex::note(std::optional<Port> before, const Port* now) {
  if (!record_) return;
  changes_.push_back({std::move(before), now ? std::optional<Port>(*now) : std::nullopt});
}

void DesiredIndex::rebuild_local() {
  local_ = DesiredState{};
  local_.generation = header_.generation;
  local_.host = header_.host;
  local_.hosts = header_.hosts;
  local_.networks = header_.networks;
  for (const auto& [id, p] : ports_) {
    if (port_is_at(p, header_.host)) local_.ports.push_back(p);
  }
}

void DesiredIndex::local_changed(const Port* before, const Port* now) {
  const bool was = before && port_is_at(*before, header_.host);
  const bool is = now && port_is_at(*now, header_.host);
  if (!was && !is) return;
  const PortId& id = now ? now->id : before->id;
  auto& ports = local_.ports;
  auto it = std::lower_bound(ports.begin(), ports.end(), id,
                             [](const Port& p, const PortId& x) { return p.id < x; });
  const bool present = it != ports.end() && it->id == id;
  if (is) {
    if (present) {
      *it = *now;
    } else {
      ports.insert(it, *now);
    }
  } else if (present) {
    ports.erase(it);
  }
}

std::string DesiredIndex::field_of(const PortId& id) const {
  auto it = position_.find(id);
  if (it != position_.end()) return "ports[" + std::to_string(it->second) + "]";
  return "ports[id=" + id.str() + "]";
}

DesiredState DesiredIndex::snapshot() const {
  DesiredState out = header_;
  out.ports.reserve(ports_.size());
  for (const auto& [id, p] : ports_) out.ports.push_back(p);
  return out;
}

DesiredIndex::Dirty DesiredIndex::take_dirty() {
  Dirty out = std::move(dirty_);
  dirty_ = Dirty{};
  return out;
}

std::vector<DesiredIndex::PortChange> DesiredIndex::take_changes() {
  std::vector<PortChange> out;
  out.swap(changes_);
  return out;
}

}  // namespace cutover::overlay
