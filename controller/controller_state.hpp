// ControllerState: the controller's versioned desired state (hosts, networks, ports, migrations)
// in memory, backed by a Store. Every mutation is validated against the whole model first
// (unknown network or host, MAC already used in the VNI, VNI taken, objects still in use), then
// committed to the store with generation+1, and only then applied in memory: a refused or failed
// write changes nothing. It also cuts the per-host DesiredState slices sent to agents.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "api_error.hpp"
#include "desired_state.hpp"
#include "model.hpp"
#include "slice_index.hpp"
#include "store.hpp"

namespace cutover::controller {

// What one committed mutation changed, for the AgentHub to decide who needs what.
struct PortChange {
  std::optional<Port> before, after;
};
struct ChangeSet {
  bool topology = false;  // hosts or networks changed: re-slice every agent
  std::vector<PortChange> ports;
  std::vector<MigrationId> migrations;  // written in this commit (the console follows them)

  static ChangeSet of_topology() {
    ChangeSet c;
    c.topology = true;
    return c;
  }
  // One port changed (created: no before; deleted: no after), and with it perhaps a migration.
  static ChangeSet of_port(std::optional<Port> before, std::optional<Port> after,
                           std::optional<MigrationId> migration = std::nullopt) {
    ChangeSet c;
    c.ports.push_back({std::move(before), std::move(after)});
    if (migration) c.migrations.push_back(*migration);
    return c;
  }
  static ChangeSet of_migration(const MigrationId& id) {
    ChangeSet c;
    c.migrations.push_back(id);
    return c;
  }
};

// How much history is kept, in memory and in the store: of the audit log, and of finished
// migrations (each limit applies to each).
struct Retention {
  int64_t max_age_us = 30LL * 86400 * 1000000;  // entries older than this go (by time_us)
  size_t max_entries = 100000;                  // beyond this the oldest go, on each append
};

class ControllerState {
 public:
  explicit ControllerState(Store& store);  // loads everything; throws on a corrupt store
  // Loads everything again (a follower keeping up with the leader's writes); on_change is not
  // called. Throws as the constructor does, and then nothing changed.
  void reload();

  uint64_t generation() const { return generation_; }
  const std::map<HostId, Host>& hosts() const { return hosts_; }
  // Moves on whenever any host changes, goes or comes (and on reload): what a cache of hosts'
  // encodings checks.
  uint64_t hosts_version() const { return hosts_version_; }
  const std::map<NetworkId, Network>& networks() const { return networks_; }
  const std::map<PortId, Port>& ports() const { return ports_; }
  const std::map<MigrationId, Migration>& migrations() const { return migrations_; }
  const std::map<std::string, NetworkMapping>& mappings() const { return mappings_; }
  // The port with this iface-id, if any (looked up, not scanned).
  const Port* port_of_iface(const std::string& iface_id) const;
  // The migrations the driver still has to look at on every agent report: not finished, or
  // completed/rolled back while their port had volumes not yet reported released. Finished
  // history, which only grows, is not in it. Judged when a migration is written (and on load):
  // a port's volumes changing later does not move its finished migrations in or out.
  const std::set<MigrationId>& open_migrations() const { return open_migrations_; }
  // "m<N>" with N above every migration ever stored here: ids are never reused, also after
  // retention dropped old ones (it always keeps the newest).
  MigrationId next_migration_id() const;

  // All throw ApiError (4xx for the caller's mistakes, 500 when the store fails).
  Host put_host(const Host& h);  // create or replace
  void delete_host(const HostId& id);
  Network create_network(const Network& n);
  void delete_network(const NetworkId& id);
  Port create_port(const Port& p);
  Port replace_port(const Port& p);
  void delete_port(const PortId& id);
  // Creates or replaces several ports in one generation, all or none: each is validated as
  // create_port/replace_port would, and against the others in the batch.
  // `audit`, if given, is stored in the same transaction (staged once the batch is judged valid).
  void put_ports(const std::vector<Port>& ports,
                 std::optional<nlohmann::json> audit = std::nullopt);
  // Why `p` could not be created (or replaced, when a port with its id exists) now: the error
  // create_port/replace_port would throw, or nothing.
  std::optional<ApiError> port_problem(const Port& p) const;

  // libvirt network -> cutover network (the inventory's mapping table). Stored without a new
  // generation: agents do not see mappings. put refuses an unknown network (field named);
  // delete_network refuses a network a mapping names.
  NetworkMapping put_mapping(const NetworkMapping& m);
  void delete_mapping(const std::string& libvirt_network);
  Migration put_migration(const Migration& m);
  // Several changes in one generation (e.g. a migration step and the port it moves).
  void put_port_and_migration(const Port& p, const Migration& m);

  // Audit log: appended durably (same store, no new generation), oldest first, each entry with
  // its "seq" (1, 2, ...; never reused, also after entries are dropped). An append past
  // retention.max_entries drops the oldest entries in the same commit.
  void append_audit(nlohmann::json entry);
  // An entry describing the state change that follows: committed in the same store transaction
  // as the next mutation (put_migration, put_port_and_migration, ...), so that neither is ever
  // stored without the other; append_audit() commits it first if no mutation came. Dropped if
  // that mutation fails (what it describes did not happen).
  void stage_audit(nlohmann::json entry);
  const std::deque<nlohmann::json>& audit() const { return audit_; }
  void set_retention(const Retention& r) { retention_ = r; }
  // Drops audit entries older than retention.max_age_us at `now_us` (and any beyond
  // max_entries, e.g. after the limit was lowered), and finished migrations (not open, see
  // open_migrations) whose last phase is older, or the oldest beyond max_entries - never the
  // newest migration: one store commit. Returns how many records went. Throws ApiError (500)
  // when the store fails; then nothing changed.
  size_t prune(int64_t now_us);

  // The slice host `id` needs: itself, the networks it has ports on (or is receiving a port on),
  // every port on those networks and every host those ports are bound to.
  DesiredState desired_for(const HostId& id) const;
  // Which hosts see which ports (see SliceIndex), kept on every committed port change.
  const SliceIndex& index() const { return index_; }
  // What the slice of `host` on `nets` (its networks) lists, each in id order: every host of
  // those networks and `host` itself, once (hosts without a record included: the caller looks
  // them up), and every port of those networks. With one network (the common case) the index's
  // own ordered lists are walked as they are: no set of a thousand ids is built.
  template <typename Fn>
  void for_slice_hosts(const HostId& host, const std::set<NetworkId>& nets, Fn&& fn) const;
  template <typename Fn>
  void for_slice_ports(const std::set<NetworkId>& nets, Fn&& fn) const;
  // A port's JSON as the store holds it (to_json(port).dump()), encoded once per change and
  // reused by the agents' slices and deltas.
  const std::string& port_json(const PortId& id) const;

  // Called after each committed mutation with the new generation and what changed.
  std::function<void(uint64_t, const ChangeSet&)> on_change;

 private:
  // References and uniqueness.
  void validate_port(const Port& p, const std::optional<PortId>& replacing) const;
  // The ports of several networks, in id order.
  std::vector<PortId> ports_seen_by(const std::set<NetworkId>& nets) const;
  // ports_, index_, port_json_, macs_ and ifaces_ together.
  void set_port(const Port* before, const Port& after, std::string json);
  void commit(std::vector<StoredRecord> upserts,
              std::vector<std::pair<std::string, std::string>> deletes);
  // Commits the staged audit entries (and retention's drops) with `upserts`/`deletes` at
  // `generation`; on success they join audit_.
  void commit_with_audit(uint64_t generation, std::vector<StoredRecord> upserts,
                         std::vector<std::pair<std::string, std::string>> deletes);
  std::vector<nlohmann::json> staged_audit_;

  Store& store_;
  uint64_t generation_ = 0;
  std::map<HostId, Host> hosts_;
  uint64_t hosts_version_ = 0;
  std::map<NetworkId, Network> networks_;
  std::map<PortId, Port> ports_;
  SliceIndex index_;
  std::unordered_map<PortId, std::string> port_json_;        // looked up for every port of a slice
  std::map<std::pair<NetworkId, MacAddress>, PortId> macs_;  // unique per network
  std::map<std::string, PortId> ifaces_;                     // iface-ids, unique
  std::map<std::string, NetworkMapping> mappings_;           // by libvirt network

  void index_migration(const Migration& m);  // updates open_migrations_ for m
  std::set<MigrationId> open_migrations_;
  std::map<MigrationId, Migration> migrations_;
  uint64_t next_migration_number_ = 1;
  void count_migration(const MigrationId& id);  // keeps next_migration_number_ above id
  std::deque<nlohmann::json> audit_;
  uint64_t next_audit_seq_ = 1;
  Retention retention_;
};

template <typename Fn>
void ControllerState::for_slice_hosts(const HostId& host, const std::set<NetworkId>& nets,
                                      Fn&& fn) const {
  if (nets.size() != 1) {
    std::set<HostId> ids{host};
    for (const auto& n : nets) index_.add_hosts_on(n, ids);
    for (const auto& h : ids) fn(h);
    return;
  }
  bool placed = false;
  for (const auto& [h, count] : index_.host_counts_on(*nets.begin())) {
    if (!placed && !(h < host)) {
      if (host < h) fn(host);
      placed = true;
    }
    fn(h);
  }
  if (!placed) fn(host);
}

template <typename Fn>
void ControllerState::for_slice_ports(const std::set<NetworkId>& nets, Fn&& fn) const {
  if (nets.size() == 1) {
    for (const auto& id : index_.ports_on(*nets.begin())) fn(id);
  } else {
    for (const auto& id : ports_seen_by(nets)) fn(id);
  }
}

}  // namespace cutover::controller
