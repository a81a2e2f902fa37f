// DesiredState: the slice of the controller's versioned state that one agent needs: its own host,
// the hosts (VTEPs) it tunnels to, the networks it serves and every port on them with the host(s)
// where each port is bound. This is the wire protocol between controller and agent and the format
// of the agent's --desired-state file; the overlay translation turns it into dataplane objects.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model.hpp"

namespace cutover {

struct DesiredState {
  uint64_t generation = 0;
  HostId host;  // the agent this state is for
  std::vector<Host> hosts;
  std::vector<Network> networks;
  std::vector<Port> ports;
  bool operator==(const DesiredState&) const = default;
};

nlohmann::json to_json(const DesiredState& d);
// Strict decode (unknown fields rejected, field paths in errors). Cross-object consistency
// (unknown network, duplicate MAC in a VNI) is checked by the overlay translation.
DesiredState desired_state_from_json(const nlohmann::json& j, const std::string& path = "");

}  // namespace cutover
