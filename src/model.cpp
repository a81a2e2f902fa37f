// Name tables for the model's enums.
#include "model.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace cutover {

const char* to_string(Backend b) { return b == Backend::ovs ? "ovs" : "linux"; }

int64_t default_burst_kbit(int64_t kbit_s) { return std::max<int64_t>(kbit_s / 10, 100); }

std::vector<HostId> port_locations(const Port& p) {
  std::vector<HostId> out;
  for (const auto* h : {&p.host, &p.migrating_to, &p.previous_host}) {
    if (*h && std::find(out.begin(), out.end(), **h) == out.end()) out.push_back(**h);
  }
  return out;
}

bool port_is_at(const Port& p, const HostId& host) {
  // port_locations' three fields, without building the list (the controller asks per port).
  return p.host == host || p.migrating_to == host || p.previous_host == host;
}

namespace {
constexpr std::array<std::pair<MigrationState, const char*>, 10> kStateNames{{
    {MigrationState::requested, "requested"},
    {MigrationState::pending_approval, "pending_approval"},
    {MigrationState::preparing, "preparing"},
    {MigrationState::ready, "ready"},
    {MigrationState::migrating, "migrating"},
    {MigrationState::cutting_over, "cutting_over"},
    {MigrationState::completed, "completed"},
    {MigrationState::rolling_back, "rolling_back"},
    {MigrationState::rolled_back, "rolled_back"},
    {MigrationState::rejected, "rejected"},
}};
}  // namespace

const char* to_string(MigrationState s) {
  for (const auto& [state, name] : kStateNames) {
    if (state == s) return name;
  }
  return "unknown";
}

std::optional<MigrationState> migration_state_from_string(const std::string& s) {
  for (const auto& [state, name] : kStateNames) {
    if (s == name) return state;
  }
  return std::nullopt;
}

bool is_terminal(MigrationState s) {
  return s == MigrationState::completed || s == MigrationState::rolled_back ||
         s == MigrationState::rejected;
}

std::optional<NetworkId> mapped_network(const NetworkMapping& m, const std::string& portgroup) {
  if (auto it = m.portgroups.find(portgroup); !portgroup.empty() && it != m.portgroups.end()) {
    return it->second;
  }
  return m.network;
}

}  // namespace cutover
