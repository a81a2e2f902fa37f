// Strict JSON codecs for Host, Network, Port and Migration.
#include "json_codec.hpp"

#include <algorithm>

#include "json_reader.hpp"

namespace cutover {

using nlohmann::json;

namespace {

bool valid_label_key(const std::string& k) {
  if (k.empty() || k.size() > 63) return false;
  for (char c : k) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '/' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool printable(const std::string& v, size_t max) {
  if (v.size() > max) return false;
  for (unsigned char c : v) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

template <typename IdT>
IdT id_field(JsonReader& r, const std::string& key) {
  return r.parse_field<IdT>(key, r.required_string(key),
                            [](const std::string& s) { return IdT::parse(s); });
}

}  // namespace

Labels labels_from_json(JsonReader& r, const std::string& key) {
  Labels labels = r.string_map(key);
  for (const auto& [k, v] : labels) {
    if (!valid_label_key(k)) {
      throw ParseError(r.child(key) + "." + k,
                       "invalid label key: expected 1-63 of [A-Za-z0-9._/-]");
    }
    if (!printable(v, 253)) {
      throw ParseError(r.child(key) + "." + k,
                       "invalid label value: up to 253 printable characters");
    }
  }
  return labels;
}

std::vector<std::string> iface_ids_from_json(JsonReader& r, const std::string& key) {
  std::vector<std::string> out;
  r.for_each(key, [&](const json& e, const std::string& path) {
    if (!e.is_string() || e.get<std::string>().empty() || e.get<std::string>().size() > 128) {
      throw ParseError(path, "expected an iface-id (1-128 characters)");
    }
    if (out.size() >= 64) throw ParseError(path, "at most 64 interfaces");
    out.push_back(e.get<std::string>());
  });
  return out;
}

json to_json(const Labels& l) {
  json j = json::object();
  for (const auto& [k, v] : l) j[k] = v;
  return j;
}

bool valid_nqn(const std::string& s) {
  return s.size() > 4 && s.size() <= 223 && s.rfind("nqn.", 0) == 0 && printable(s, 223) &&
         s.find(' ') == std::string::npos;
}

std::string hex16(const std::array<uint8_t, 16>& b) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    s.push_back(digits[x >> 4]);
    s.push_back(digits[x & 15]);
  }
  return s;
}

std::optional<std::array<uint8_t, 16>> parse_hex16(std::string text) {
  std::erase(text, '-');
  if (text.size() != 32 || text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return std::nullopt;
  }
  std::array<uint8_t, 16> out{};
  for (size_t i = 0; i < 16; ++i) {
    out[i] = static_cast<uint8_t>(std::stoi(text.substr(2 * i, 2), nullptr, 16));
  }
  return out;
}

Volume volume_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  Volume v;
  v.id = r.required_string("id");
  if (v.id.empty() || v.id.size() > 63 ||
      v.id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos) {
    throw ParseError(r.child("id"), "expected 1-63 of [A-Za-z0-9._-]");
  }
  v.nqn = r.required_string("nqn");
  if (!valid_nqn(v.nqn)) {
    throw ParseError(r.child("nqn"), "expected an NQN: 'nqn.' and up to 223 printable characters");
  }
  r.for_each("paths", [&](const json& e, const std::string& epath) {
    JsonReader pr(e, epath);
    VolumePath p;
    p.traddr = pr.parse_field<IpAddress>("traddr", pr.required_string("traddr"), IpAddress::parse);
    p.trsvcid = static_cast<int>(pr.optional_int("trsvcid", 1, 65535).value_or(4420));
    pr.finish();
    v.paths.push_back(p);
  });
  if (v.paths.empty() || v.paths.size() > 8) {
    throw ParseError(r.child("paths"), "expected 1 to 8 target paths");
  }
  if (auto nguid = r.optional_string("nguid")) {
    v.nguid = parse_hex16(*nguid);
    if (!v.nguid) throw ParseError(r.child("nguid"), "expected 32 hex digits (dashes allowed)");
  }
  r.finish();
  return v;
}

json to_json(const Volume& v) {
  json paths = json::array();
  for (const auto& p : v.paths) {
    paths.push_back({{"traddr", p.traddr.to_string()}, {"trsvcid", p.trsvcid}});
  }
  json j = {{"id", v.id}, {"nqn", v.nqn}, {"paths", paths}};
  if (v.nguid) j["nguid"] = hex16(*v.nguid);
  return j;
}

json to_json(const Host& h) {
  json j = {{"id", h.id.str()},
            {"underlay_ip", h.underlay_ip.to_string()},
            {"backend", to_string(h.backend)},
            {"labels", to_json(h.labels)}};
  if (!h.migration_uri.empty()) j["migration_uri"] = h.migration_uri;
  if (!h.host_nqn.empty()) j["host_nqn"] = h.host_nqn;
  if (!h.storage.empty()) j["storage"] = h.storage;
  return j;
}

Host host_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  Host h;
  h.id = id_field<HostId>(r, "id");
  h.underlay_ip =
      r.parse_field<IpAddress>("underlay_ip", r.required_string("underlay_ip"), IpAddress::parse);
  const auto backend = r.optional_string("backend").value_or("ovs");
  if (backend == "ovs") {
    h.backend = Backend::ovs;
  } else if (backend == "linux") {
    h.backend = Backend::linux;
  } else {
    throw ParseError(r.child("backend"),
                     "unknown backend '" + backend + "': expected ovs or linux");
  }
  h.labels = labels_from_json(r, "labels");
  h.migration_uri = r.optional_string("migration_uri").value_or("");
  if (!printable(h.migration_uri, 256) || h.migration_uri.find(' ') != std::string::npos ||
      (!h.migration_uri.empty() && h.migration_uri.find("://") == std::string::npos)) {
    throw ParseError(r.child("migration_uri"),
                     "expected a libvirt URI such as qemu+tls://hv2/system");
  }
  h.host_nqn = r.optional_string("host_nqn").value_or("");
  if (!h.host_nqn.empty() && !valid_nqn(h.host_nqn)) {
    throw ParseError(r.child("host_nqn"),
                     "expected an NQN: 'nqn.' and up to 223 printable characters");
  }
  h.storage = r.optional_string("storage").value_or("");
  if (h.storage != "" && h.storage != "kernel" && h.storage != "probe") {
    throw ParseError(r.child("storage"), "expected kernel or probe (or absent)");
  }
  r.finish();
  return h;
}

json to_json(const Network& n) {
  return {{"id", n.id.str()}, {"name", n.name}, {"vni", n.vni.value()}, {"mtu", n.mtu}};
}

Network network_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  Network n;
  n.id = id_field<NetworkId>(r, "id");
  n.name = r.optional_string("name").value_or(n.id.str());
  if (!printable(n.name, 128)) {
    throw ParseError(r.child("name"), "invalid name: up to 128 printable characters");
  }
  n.vni = Vni::from(r.required_int("vni", Vni::kMin, Vni::kMax));
  n.mtu = static_cast<int>(r.optional_int("mtu", 576, 9000).value_or(1450));
  r.finish();
  return n;
}

json to_json(const Port& p) {
  json ips = json::array();
  for (const auto& ip : p.ips) ips.push_back(ip.to_string());
  json j = {
      {"id", p.id.str()},           {"mac", p.mac.to_string()}, {"ips", ips},
      {"network", p.network.str()}, {"iface_id", p.iface_id},   {"labels", to_json(p.labels)}};
  if (p.host) j["host"] = p.host->str();
  if (p.migrating_to) j["migrating_to"] = p.migrating_to->str();
  if (p.previous_host) j["previous_host"] = p.previous_host->str();
  if (p.ingress_allow) {
    json rules = json::array();
    for (const auto& r : *p.ingress_allow) {
      json rule = {{"protocol", r.protocol}};
      if (r.port) rule["port"] = r.port;
      rules.push_back(rule);
    }
    j["ingress_allow"] = rules;
  }
  if (!p.carried_conns.empty()) {
    json conns = json::array();
    for (const auto& c : p.carried_conns) conns.push_back(to_json(c));
    j["carried_conns"] = conns;
  }
  if (!p.volumes.empty()) {
    json vols = json::array();
    for (const auto& v : p.volumes) vols.push_back(to_json(v));
    j["volumes"] = vols;
  }
  if (!p.qos.empty()) j["qos"] = to_json(p.qos);
  return j;
}

json to_json(const PortQos& q) {
  json j = json::object();
  auto limit = [](const RateLimit& r) {
    json l = {{"kbit_s", r.kbit_s}};
    if (r.burst_kbit) l["burst_kbit"] = r.burst_kbit;
    return l;
  };
  if (q.to_vm) j["to_vm"] = limit(*q.to_vm);
  if (q.from_vm) j["from_vm"] = limit(*q.from_vm);
  return j;
}

PortQos port_qos_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  PortQos q;
  auto limit = [&](const char* key) -> std::optional<RateLimit> {
    const auto* v = r.raw(key);
    if (!v || v->is_null()) return std::nullopt;
    JsonReader lr(*v, r.child(key));
    RateLimit l;
    l.kbit_s = lr.required_int("kbit_s", 1, kMaxKbitS);
    l.burst_kbit = lr.optional_int("burst_kbit", kMinBurstKbit, kMaxKbitS).value_or(0);
    lr.finish();
    return l;
  };
  q.to_vm = limit("to_vm");
  q.from_vm = limit("from_vm");
  r.finish();
  return q;
}

CarriedConn carried_conn_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  CarriedConn c;
  c.protocol = r.required_string("protocol");
  if (c.protocol != "tcp" && c.protocol != "udp") {
    throw ParseError(r.child("protocol"), "expected tcp or udp");
  }
  auto ip = [&](const char* key) {
    return r.parse_field<IpAddress>(key, r.required_string(key), IpAddress::parse);
  };
  c.local_ip = ip("local_ip");
  c.remote_ip = ip("remote_ip");
  if (c.local_ip.is_v4() != c.remote_ip.is_v4()) {
    throw ParseError(r.child("remote_ip"), "address family differs from local_ip");
  }
  c.local_port = static_cast<int>(r.required_int("local_port", 1, 65535));
  c.remote_port = static_cast<int>(r.required_int("remote_port", 1, 65535));
  r.finish();
  return c;
}

json to_json(const CarriedConn& c) {
  return {{"protocol", c.protocol},
          {"local_ip", c.local_ip.to_string()},
          {"local_port", c.local_port},
          {"remote_ip", c.remote_ip.to_string()},
          {"remote_port", c.remote_port}};
}

Port port_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  Port p;
  p.id = id_field<PortId>(r, "id");
  p.mac = r.parse_field<MacAddress>("mac", r.required_string("mac"), MacAddress::parse);
  if (p.mac.is_multicast() || p.mac.is_zero()) {
    throw ParseError(r.child("mac"), "port MAC must be unicast and non-zero");
  }
  r.for_each("ips", [&](const json& e, const std::string& epath) {
    if (!e.is_string())
      throw ParseError(epath, std::string("expected a string, got ") + e.type_name());
    try {
      p.ips.push_back(IpAddress::parse(e.get<std::string>()));
    } catch (const ParseError& err) {
      throw ParseError(epath, err.message());
    }
  });
  p.network = id_field<NetworkId>(r, "network");
  p.iface_id = r.optional_string("iface_id").value_or(p.id.str());
  if (p.iface_id.empty() || !printable(p.iface_id, 128) ||
      p.iface_id.find_first_of(" ,=\"") != std::string::npos) {
    throw ParseError(
        r.child("iface_id"),
        "invalid iface_id: 1-128 printable characters without spaces, ',', '=' or '\"'");
  }
  p.labels = labels_from_json(r, "labels");
  if (auto host = r.optional_string("host")) {
    p.host =
        r.parse_field<HostId>("host", *host, [](const std::string& s) { return HostId::parse(s); });
  }
  // Another host of a placed port's migration: where it goes, or the one it just left.
  auto other_host = [&](const char* key, const char* unplaced) -> std::optional<HostId> {
    auto text = r.optional_string(key);
    if (!text) return std::nullopt;
    auto h =
        r.parse_field<HostId>(key, *text, [](const std::string& s) { return HostId::parse(s); });
    if (!p.host) throw ParseError(r.child(key), unplaced);
    if (h == *p.host) throw ParseError(r.child(key), "must differ from host");
    return h;
  };
  p.migrating_to = other_host("migrating_to", "a port must be placed (host) to migrate");
  p.previous_host = other_host("previous_host", "a port must be placed (host) to have left one");
  if (const auto* rules = r.raw("ingress_allow"); rules && !rules->is_null()) {
    p.ingress_allow.emplace();
    r.for_each("ingress_allow", [&](const json& e, const std::string& epath) {
      JsonReader er(e, epath);
      IngressRule rule;
      rule.protocol = er.required_string("protocol");
      if (rule.protocol != "tcp" && rule.protocol != "udp" && rule.protocol != "icmp") {
        throw ParseError(er.child("protocol"), "expected tcp, udp or icmp");
      }
      rule.port = static_cast<int>(er.optional_int("port", 0, 65535).value_or(0));
      if (rule.port && rule.protocol == "icmp") {
        throw ParseError(er.child("port"), "icmp has no ports");
      }
      er.finish();
      p.ingress_allow->push_back(rule);
    });
    if (p.ingress_allow->size() > 256) {
      throw ParseError(r.child("ingress_allow"), "at most 256 rules");
    }
  }
  r.for_each("carried_conns", [&](const json& e, const std::string& epath) {
    if (p.carried_conns.size() >= kMaxCarriedConns) {
      throw ParseError(epath,
                       "at most " + std::to_string(kMaxCarriedConns) + " carried connections");
    }
    p.carried_conns.push_back(carried_conn_from_json(e, epath));
    const auto& c = p.carried_conns.back();
    if (std::find(p.ips.begin(), p.ips.end(), c.local_ip) == p.ips.end()) {
      throw ParseError(epath + ".local_ip", "not one of the port's ips");
    }
  });
  r.for_each("volumes", [&](const json& e, const std::string& epath) {
    if (p.volumes.size() >= 16) throw ParseError(epath, "at most 16 volumes per port");
    auto v = volume_from_json(e, epath);
    for (const auto& other : p.volumes) {
      if (other.id == v.id) throw ParseError(epath + ".id", "volume id '" + v.id + "' used twice");
    }
    p.volumes.push_back(std::move(v));
  });
  if (const auto* q = r.raw("qos"); q && !q->is_null())
    p.qos = port_qos_from_json(*q, r.child("qos"));
  r.finish();
  return p;
}

json to_json(const Migration& m) {
  json timeline = json::object();
  for (const auto& [k, v] : m.timeline) timeline[k] = v;
  json j = {{"id", m.id.str()},
            {"port", m.port.str()},
            {"vm", m.vm},
            {"group", m.group},
            {"source", m.source.str()},
            {"destination", m.destination.str()},
            {"state", to_string(m.state)},
            {"reason", m.reason},
            {"timeline", timeline},
            {"announcements", m.announcements},
            {"carry_conntrack", m.carry_conntrack},
            {"conntrack_carried", m.conntrack_carried},
            {"libvirt", to_json(m.libvirt)}};
  if (m.measured) j["measured"] = to_json(*m.measured);
  return j;
}

json to_json(const Measurement& m) {
  json j = {{"pps", m.pps}, {"sent", m.sent}, {"lost", m.lost}};
  if (m.tcp_sessions > 0) {
    j["tcp_sessions"] = m.tcp_sessions;
    j["tcp_survived"] = m.tcp_survived;
  }
  if (!m.by.empty()) j["by"] = m.by;
  return j;
}

Measurement measurement_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  Measurement m;
  m.pps = r.required_int("pps", 1, 10000000);
  m.sent = r.required_int("sent", 0, INT64_MAX);
  m.lost = r.required_int("lost", 0, m.sent);
  m.tcp_sessions = r.optional_int("tcp_sessions", 0, 1000000).value_or(0);
  m.tcp_survived = r.optional_int("tcp_survived", 0, m.tcp_sessions).value_or(0);
  m.by = r.optional_string("by").value_or("");
  if (!printable(m.by, 64)) throw ParseError(r.child("by"), "up to 64 printable characters");
  r.finish();
  return m;
}

Migration migration_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  Migration m;
  m.id = id_field<MigrationId>(r, "id");
  m.port = id_field<PortId>(r, "port");
  m.vm = r.optional_string("vm").value_or("");
  m.group = r.optional_string("group").value_or("");
  if (!m.group.empty()) {
    r.parse_field<MigrationId>("group", m.group,
                               [](const std::string& t) { return MigrationId::parse(t); });
  }
  m.source = id_field<HostId>(r, "source");
  m.destination = id_field<HostId>(r, "destination");
  const auto state = r.required_string("state");
  auto s = migration_state_from_string(state);
  if (!s) throw ParseError(r.child("state"), "unknown migration state '" + state + "'");
  m.state = *s;
  m.reason = r.optional_string("reason").value_or("");
  if (r.raw("announcements")) m.announcements = r.required_int("announcements", 0, INT64_MAX);
  m.carry_conntrack = r.optional_bool("carry_conntrack").value_or(true);
  if (r.raw("conntrack_carried")) {
    m.conntrack_carried = r.required_int("conntrack_carried", -1, INT64_MAX);
  }
  if (const auto* l = r.raw("libvirt"))
    m.libvirt = libvirt_settings_from_json(*l, r.child("libvirt"));
  if (const auto* x = r.raw("measured"))
    m.measured = measurement_from_json(*x, r.child("measured"));
  if (const auto* t = r.raw("timeline")) {
    JsonReader tr(*t, r.child("timeline"));
    for (const auto& [k, v] : t->items()) {
      m.timeline[k] = tr.required_int(k, 0, INT64_MAX);
    }
    tr.finish();
  }
  r.finish();
  return m;
}

json to_json(const LibvirtMigrationSettings& s) {
  json j = json::object();
  if (s.persist) j["persist"] = *s.persist;
  if (s.auto_converge) j["auto_converge"] = *s.auto_converge;
  if (s.compressed) j["compressed"] = *s.compressed;
  if (s.bandwidth_mib_s) j["bandwidth_mib_s"] = *s.bandwidth_mib_s;
  if (s.postcopy) j["postcopy"] = *s.postcopy;
  return j;
}

LibvirtMigrationSettings libvirt_settings_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  LibvirtMigrationSettings s;
  s.persist = r.optional_bool("persist");
  s.auto_converge = r.optional_bool("auto_converge");
  s.compressed = r.optional_bool("compressed");
  s.bandwidth_mib_s = r.optional_int("bandwidth_mib_s", 1, 1000000);
  s.postcopy = r.optional_bool("postcopy");
  r.finish();
  return s;
}

json to_json(const NetworkMapping& m) {
  json j = {{"libvirt_network", m.libvirt_network}};
  if (m.network) j["network"] = m.network->str();
  if (!m.portgroups.empty()) {
    json pgs = json::object();
    for (const auto& [pg, net] : m.portgroups) pgs[pg] = net.str();
    j["portgroups"] = pgs;
  }
  return j;
}

NetworkMapping network_mapping_from_json(const json& j, const std::string& path) {
  JsonReader r(j, path);
  NetworkMapping m;
  m.libvirt_network = r.required_string("libvirt_network");
  if (!is_valid_id(m.libvirt_network)) {
    throw ParseError(r.child("libvirt_network"),
                     "invalid libvirt network name: expected 1-64 of [A-Za-z0-9._-], starting "
                     "with a letter or digit");
  }
  if (r.raw("network")) m.network = id_field<NetworkId>(r, "network");
  for (const auto& [pg, net] : r.string_map("portgroups")) {
    const std::string field = r.child("portgroups") + "." + pg;
    if (!is_valid_id(pg)) {
      throw ParseError(field, "invalid portgroup name: expected 1-64 of [A-Za-z0-9._-]");
    }
    try {
      m.portgroups[pg] = NetworkId::parse(net);
    } catch (const ParseError& e) {
      throw ParseError(field, e.message());
    }
  }
  if (!m.network && m.portgroups.empty()) {
    throw ParseError(r.child("network"), "give a network, portgroups, or both");
  }
  r.finish();
  return m;
}

}  // namespace cutover
