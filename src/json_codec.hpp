// JSON codecs for the shared model (model.hpp). Decoders are strict: unknown fields, wrong types
// and invalid values throw ParseError naming the field path. Encoders produce exactly what the
// decoders accept, so encode -> decode is the identity.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model.hpp"

namespace cutover {

nlohmann::json to_json(const Host& h);
nlohmann::json to_json(const Network& n);
nlohmann::json to_json(const Port& p);
nlohmann::json to_json(const Migration& m);
nlohmann::json to_json(const Labels& l);

Host host_from_json(const nlohmann::json& j, const std::string& path = "");
Network network_from_json(const nlohmann::json& j, const std::string& path = "");
Port port_from_json(const nlohmann::json& j, const std::string& path = "");
nlohmann::json to_json(const CarriedConn& c);
// {"to_vm"?: LIMIT, "from_vm"?: LIMIT}, LIMIT = {"kbit_s": 1-10000000, "burst_kbit"?: 1-10000000}
nlohmann::json to_json(const PortQos& q);
PortQos port_qos_from_json(const nlohmann::json& j, const std::string& path = "");
CarriedConn carried_conn_from_json(const nlohmann::json& j, const std::string& path = "");
nlohmann::json to_json(const Volume& v);
Volume volume_from_json(const nlohmann::json& j, const std::string& path = "");
bool valid_nqn(const std::string& s);
std::string hex16(const std::array<uint8_t, 16>& bytes);
std::optional<std::array<uint8_t, 16>> parse_hex16(std::string text);  // dashes allowed
Migration migration_from_json(const nlohmann::json& j, const std::string& path = "");
// {"pps": 1-10000000, "sent", "lost" (<= sent), "tcp_sessions"?, "tcp_survived"? (<= sessions),
// "by"?: up to 64 printable characters}
nlohmann::json to_json(const Measurement& m);
Measurement measurement_from_json(const nlohmann::json& j, const std::string& path = "");
// {"persist"?, "auto_converge"?, "compressed"?, "bandwidth_mib_s"? (1-1000000), "postcopy"?};
// only the set
// fields are written.
nlohmann::json to_json(const LibvirtMigrationSettings& s);
LibvirtMigrationSettings libvirt_settings_from_json(const nlohmann::json& j,
                                                    const std::string& path);
// {"libvirt_network", "network"?, "portgroups"?: {name: network}}: names 1-64 of
// [A-Za-z0-9._-]; at least one of network and portgroups.
nlohmann::json to_json(const NetworkMapping& m);
NetworkMapping network_mapping_from_json(const nlohmann::json& j, const std::string& path = "");

// Label keys: 1-63 of [A-Za-z0-9._/-]; values: up to 253 printable ASCII characters.
Labels labels_from_json(class JsonReader& r, const std::string& key);
// The iface-ids of one VM's interfaces (absent = none): 1-128 characters each, at most 64.
std::vector<std::string> iface_ids_from_json(class JsonReader& r, const std::string& key);

}  // namespace cutover
