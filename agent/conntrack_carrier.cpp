// ConntrackCarrier: when to dump a leaving port's conntrack zone and what to send; the Linux
// backend's dump.
#include "conntrack_carrier.hpp"

#include <exception>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "conntrack.hpp"

namespace cutover::agent {

overlay::ConntrackDump linux_conntrack(int64_t zone) {
  std::ifstream in("/proc/net/nf_conntrack");
  if (!in) throw std::runtime_error("cannot read /proc/net/nf_conntrack");
  std::ostringstream text;
  text << in.rdbuf();
  return overlay::parse_proc_conntrack(text.str(), static_cast<int>(zone));
}

std::vector<std::string> ConntrackCarrier::update(const DesiredState& state,
                                                  const std::map<std::string, int64_t>& zones,
                                                  const std::set<std::string>& paused_ifaces) {
  std::vector<std::string> errors;
  std::set<std::string> live;
  for (const auto& p : state.ports) {
    if (!p.ingress_allow || !p.migrating_to || !p.host || *p.host != state.host) continue;
    auto zone = zones.find(p.id.str());
    if (zone == zones.end()) continue;  // not bound here (yet): nothing tracked
    const std::string base = p.id.str() + "|" + p.migrating_to->str() + "|";
    live.insert(base + "prepare");
    live.insert(base + "paused");
    const std::string key = base + (paused_ifaces.count(p.iface_id) ? "paused" : "prepare");
    if (sent_.count(key)) continue;
    try {
      const auto dump = dump_(zone->second);
      send_(wire::Conntrack{p.id.str(), overlay::connections_to_carry(dump.entries, p.ips)});
      sent_.insert(key);
    } catch (const std::exception& e) {
      errors.push_back("conntrack of port " + p.id.str() + " (zone " +
                       std::to_string(zone->second) + "): " + e.what());
    }
  }
  std::erase_if(sent_, [&](const std::string& k) { return !live.count(k); });
  return errors;
}

}  // namespace cutover::agent
