// Preflight: checks the agent's environment at start and says precisely what is wrong (OVS not
// reachable, underlay IP not on this host, ...) instead of failing later in a reconcile loop.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ip_address.hpp"

namespace cutover::agent {

struct PreflightConfig {
  std::string ovsdb_remote;              // "unix:/path" is checked by connecting to it
  std::optional<IpAddress> underlay_ip;  // must be configured on a local interface
  std::string libvirt_uri;               // if set, must accept a connection
};

// Returns one line per problem (empty = all good).
std::vector<std::string> preflight(const PreflightConfig& config);

}  // namespace cutover::agent
