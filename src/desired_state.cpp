// DesiredState JSON codec.
#include "desired_state.hpp"

#include "json_codec.hpp"
#include "json_reader.hpp"

namespace cutover {

using nlohmann::json;

json to_json(const DesiredState& d) {
  json hosts = json::array(), networks = json::array(), ports = json::array();
  for (const auto& h : d.hosts) hosts.push_back(to_json(h));
  for (const auto& n : d.networks) networks.push_back(to_json(n));
  for (const auto& p : d.ports) ports.push_back(to_json(p));
  return {{"generation", d.generation},
          {"host", d.host.str()},
          {"hosts", hosts},
          {"networks", networks},
          {"ports", ports}};
}

DesiredState desired_state_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  DesiredState d;
  d.generation = static_cast<uint64_t>(r.required_int("generation", 0, INT64_MAX));
  d.host = r.parse_field<HostId>("host", r.required_string("host"),
                                 [](const std::string& s) { return HostId::parse(s); });
  r.for_each("hosts",
             [&](const json& e, const std::string& p) { d.hosts.push_back(host_from_json(e, p)); });
  r.for_each("networks", [&](const json& e, const std::string& p) {
    d.networks.push_back(network_from_json(e, p));
  });
  r.for_each("ports",
             [&](const json& e, const std::string& p) { d.ports.push_back(port_from_json(e, p)); });
  r.finish();
  return d;
}

}  // namespace cutover
