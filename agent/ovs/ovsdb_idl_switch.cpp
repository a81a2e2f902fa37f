// OvsdbIdlSwitch implementation on the C shim.
#include "ovsdb_idl_switch.hpp"

#include <stdexcept>

#include "ovs_shim.h"
#include "parse_error.hpp"

namespace cutover::agent {

namespace {
void check(int rc, char* err) {
  if (rc == 0) return;
  std::string s = err ? err : "unknown OVSDB error";
  cov_free(err);
  throw std::runtime_error(s);
}
}  // namespace

std::vector<OvsInterface> OvsdbIdlSwitch::interfaces() {
  std::vector<cov_iface> raw(64);
  size_t n = cov_db_interfaces(db_, raw.data(), raw.size());
  if (n > raw.size()) {
    raw.resize(n);
    n = cov_db_interfaces(db_, raw.data(), raw.size());
  }
  std::vector<OvsInterface> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& r = raw[i];
    OvsInterface o{r.name,   r.type,         r.bridge,     r.iface_id,     std::nullopt,
                   r.ofport, r.link_up != 0, r.owned != 0, r.qos_max_rate, r.qos_burst};
    if (r.remote_ip[0]) {
      try {
        o.remote_ip = IpAddress::parse(r.remote_ip);
      } catch (const ParseError&) {
        // remote_ip=flow or a name: not one of ours.
      }
    }
    out.push_back(std::move(o));
  }
  return out;
}

void OvsdbIdlSwitch::ensure_bridge(const std::string& bridge, const std::string& datapath_type) {
  char* err = nullptr;
  check(cov_db_ensure_bridge(db_, bridge.c_str(), datapath_type.c_str(), &err), err);
}

void OvsdbIdlSwitch::add_port(const std::string& bridge, const std::string& name,
                              const std::string& type,
                              const std::map<std::string, std::string>& options) {
  std::vector<std::string> kv;
  for (const auto& [k, v] : options) kv.push_back(k + "=" + v);
  std::vector<const char*> ptrs;
  for (const auto& s : kv) ptrs.push_back(s.c_str());
  char* err = nullptr;
  check(cov_db_add_port(db_, bridge.c_str(), name.c_str(), type.c_str(), ptrs.data(), ptrs.size(),
                        &err),
        err);
}

void OvsdbIdlSwitch::del_port(const std::string& bridge, const std::string& name) {
  char* err = nullptr;
  check(cov_db_del_port(db_, bridge.c_str(), name.c_str(), &err), err);
}

void OvsdbIdlSwitch::set_port_qos(const std::string& name, int64_t max_rate_bps,
                                  int64_t burst_bits) {
  char* err = nullptr;
  check(cov_db_set_port_qos(db_, name.c_str(), max_rate_bps, burst_bits, &err), err);
}

size_t OvsdbIdlSwitch::gc_qos() {
  char* err = nullptr;
  const int n = cov_db_gc_qos(db_, &err);
  check(n < 0 ? -1 : 0, err);
  return static_cast<size_t>(n);
}

}  // namespace cutover::agent
