// ConntrackCarrier: on the source host, sends the controller the connections a migrating port
// with a stateful firewall has in this host's conntrack, so the destination can admit them as
// established. Sent once when the migration is prepared and once more when the VM pauses for the
// final copy (the freshest state, as the port's frames start going to the destination). The dump
// itself is injected (OVS: `dpctl/dump-conntrack zone=N` over the unixctl socket; Linux: the
// zone's lines of /proc/net/nf_conntrack; tests: canned text).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>

#include "conntrack.hpp"
#include "desired_state.hpp"
#include "wire.hpp"

namespace cutover::agent {

// The Linux kernel's connections in one zone, from this network namespace's
// /proc/net/nf_conntrack (the Linux backend's DumpFn); throws when it cannot be read.
overlay::ConntrackDump linux_conntrack(int64_t zone);

class ConntrackCarrier {
 public:
  // The dataplane's connections in one zone (OVS: dpctl/dump-conntrack; Linux:
  // /proc/net/nf_conntrack), parsed; throws on failure.
  using DumpFn = std::function<overlay::ConntrackDump(int64_t zone)>;
  using SendFn = std::function<void(const wire::Conntrack&)>;
  ConntrackCarrier(DumpFn dump, SendFn send) : dump_(std::move(dump)), send_(std::move(send)) {}

  // After each apply report (zones: stateful port id -> conntrack zone) and whenever the set of
  // iface-ids paused for outgoing migration changes. Returns errors to log (one per failed
  // dump); a failed dump is retried on the next call.
  std::vector<std::string> update(const DesiredState& state,
                                  const std::map<std::string, int64_t>& zones,
                                  const std::set<std::string>& paused_ifaces);

 private:
  DumpFn dump_;
  SendFn send_;
  std::set<std::string> sent_;  // port|destination|phase
};

}  // namespace cutover::agent
