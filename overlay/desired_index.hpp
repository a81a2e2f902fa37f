// DesiredIndex: one host's DesiredState kept indexed and changed in place, so that what follows
// a change costs what the change costs. It takes a whole state (on connect, from a file) or a
// delta (the controller's usual message) and records what moved: the networks whose ports
// changed (by VNI, for the per-network translation) and each port's before and after (for the
// announcer). It also keeps the local slice: the ports this host programs as their own (running,
// arriving or forwarding here), which is all the agent's other parts need. Pure: no I/O.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <variant>
#include <vector>

#include "desired_state.hpp"
#include "parse_error.hpp"
#include "wire.hpp"

namespace cutover::overlay {

// What the agent core hands the dataplane: a whole state, or a change relative to the last.
using DesiredChange = std::variant<DesiredState, wire::Delta>;

class DesiredIndex {
 public:
  struct PortChange {
    std::optional<Port> before;  // none: new to the state
    std::optional<Port> now;     // none: removed
  };
  // What changed since the last take_dirty(): every network (a whole state, a host's address
  // changed) or these VNIs.
  struct Dirty {
    bool all = false;
    std::set<uint32_t> vnis;
  };

  // record_changes: keep each port's before and after for take_changes() (the dataplane's
  // announcer wants them; the agent core does not).
  explicit DesiredIndex(bool record_changes = false) : record_(record_changes) {}

  bool empty() const { return !have_; }
  // A whole state replaces everything. Dirty are the networks whose ports changed, and every
  // network when a network changed or went, a host's address moved or this is the first.
  void reset(DesiredState state);
  // A delta applies to what came before (hosts and ports replaced by id, ports removed). A delta
  // before any whole state is refused (std::logic_error).
  void apply(const wire::Delta& delta);
  void apply(DesiredChange change);

  uint64_t generation() const { return header_.generation; }
  const HostId& self() const { return header_.host; }
  const std::vector<Host>& hosts() const { return header_.hosts; }
  const std::vector<Network>& networks() const { return header_.networks; }
  const std::map<PortId, Port>& ports() const { return ports_; }
  const Port* port(const PortId& id) const;
  // The VNI of a network of the state; nullopt for an unknown one.
  std::optional<uint32_t> vni_of(const NetworkId& network) const;
  // The ports of one network (by VNI), in id order.
  std::vector<const Port*> ports_of(uint32_t vni) const;

  // The whole state, ports in id order.
  DesiredState snapshot() const;
  // How errors name a port: "ports[i]", its place in the last whole state, while no delta has
  // changed it since; else "ports[id=ID]".
  std::string field_of(const PortId& id) const;
  // The state with only the ports this host programs as its own (port_is_at: running, arriving
  // or forwarding here): hosts and networks whole. Kept up to date per change.
  const DesiredState& local() const { return local_; }

  // What makes the last whole state unusable as a whole (duplicate port, network or VNI; the
  // per-network checks are the translation's), naming the field; until the next whole state.
  const std::optional<ParseError>& problem() const { return problem_; }

  Dirty take_dirty();
  std::vector<PortChange> take_changes();

 private:
  void upsert(const Port& p);
  void remove(const PortId& id);
  void touched(const Port* p);
  void touched(const Port* p, Dirty& dirty) const;
  void note(std::optional<Port> before, const Port* now);
  void rebuild_local();
  void local_changed(const Port* before, const Port* now);

  bool record_ = false;
  bool have_ = false;
  std::optional<ParseError> problem_;
  DesiredState header_;  // generation, host, hosts, networks; no ports
  std::map<PortId, Port> ports_;
  std::map<PortId, size_t> position_;  // in the last whole state, until a delta changes it
  std::map<NetworkId, uint32_t> vnis_;
  std::map<uint32_t, std::set<PortId>> by_vni_;  // ports of known networks
  DesiredState local_;
  Dirty dirty_;
  std::vector<PortChange> changes_;
};

}  // namespace cutover::overlay
