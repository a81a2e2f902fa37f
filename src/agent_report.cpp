// AgentReport's JSON fields.
#include "agent_report.hpp"

#include <cstdint>

#include "json_codec.hpp"
#include "parse_error.hpp"

namespace cutover {

using nlohmann::json;

json to_json(const VmInterface& i) {
  json e = {{"iface_id", i.iface_id}};
  if (!i.mac.empty()) e["mac"] = i.mac;
  if (!i.libvirt_network.empty()) e["libvirt_network"] = i.libvirt_network;
  if (!i.portgroup.empty()) e["portgroup"] = i.portgroup;
  if (!i.network.empty()) e["network"] = i.network;
  if (!i.qos.empty()) e["qos"] = to_json(i.qos);
  return e;
}

void add_report_fields(const AgentReport& r, json& j) {
  j["bound_ports"] = r.bound_ports;
  j["paused_ports"] = r.paused_ports;
  j["foreign_running"] = r.foreign_running;
  if (!r.waiting_for.empty()) j["waiting_for"] = r.waiting_for;
  if (!r.awaiting_taps.empty()) j["awaiting_taps"] = r.awaiting_taps;
  if (!r.storage_ready.empty()) j["storage_ready"] = r.storage_ready;
  if (!r.storage_failed.empty()) j["storage_failed"] = r.storage_failed;
  if (!r.vms.empty()) {
    json& vms = j["vms"] = json::object();
    for (const auto& [name, ifaces] : r.vms) {
      json& list = vms[name] = json::array();
      for (const auto& i : ifaces) list.push_back(to_json(i));
    }
  }
  if (!r.precopy_iterations.empty()) j["precopy_iterations"] = r.precopy_iterations;
  if (!r.incoming.empty()) j["incoming"] = r.incoming;
  if (!r.live_migrations.empty()) j["live_migrations"] = r.live_migrations;
}

namespace {
std::vector<std::string> strings(JsonReader& r, const std::string& key) {
  std::vector<std::string> out;
  r.for_each(key, [&](const json& e, const std::string& path) {
    if (!e.is_string()) throw ParseError(path, "expected a string");
    out.push_back(e.get<std::string>());
  });
  return out;
}
// A domain's interfaces: objects, or plain iface-id strings (what agents before the inventory
// sent).
std::vector<VmInterface> interfaces(JsonReader& r, const std::string& key) {
  std::vector<VmInterface> out;
  r.for_each(key, [&](const json& e, const std::string& path) {
    VmInterface v;
    if (e.is_string()) {
      v.iface_id = e.get<std::string>();
    } else {
      JsonReader ir(e, path);
      v.iface_id = ir.required_string("iface_id");
      v.mac = ir.optional_string("mac").value_or("");
      v.libvirt_network = ir.optional_string("libvirt_network").value_or("");
      v.portgroup = ir.optional_string("portgroup").value_or("");
      v.network = ir.optional_string("network").value_or("");
      if (const auto* q = ir.raw("qos"); q && !q->is_null()) {
        v.qos = port_qos_from_json(*q, ir.child("qos"));
      }
      ir.finish();
    }
    if (v.iface_id.empty()) throw ParseError(path, "empty iface_id");
    out.push_back(std::move(v));
  });
  return out;
}
}  // namespace

AgentReport report_fields_from(JsonReader& r) {
  AgentReport a;
  a.waiting_for = strings(r, "waiting_for");
  a.awaiting_taps = strings(r, "awaiting_taps");
  a.bound_ports = strings(r, "bound_ports");
  a.paused_ports = strings(r, "paused_ports");
  a.foreign_running = strings(r, "foreign_running");
  a.storage_ready = strings(r, "storage_ready");
  a.incoming = strings(r, "incoming");
  a.live_migrations = strings(r, "live_migrations");
  if (const auto* failed = r.raw("storage_failed")) {
    if (!failed->is_object()) throw ParseError("storage_failed", "expected an object");
    for (const auto& [k, v] : failed->items()) {
      if (!v.is_string()) throw ParseError("storage_failed." + k, "expected a string");
      a.storage_failed[k] = v.get<std::string>();
    }
  }
  if (const auto* vms = r.raw("vms")) {
    if (!vms->is_object()) throw ParseError("vms", "expected an object");
    JsonReader vr(*vms, "vms");
    for (const auto& [name, ifaces] : vms->items()) {
      if (name.empty()) throw ParseError("vms", "empty domain name");
      a.vms[name] = interfaces(vr, name);
    }
  }
  if (const auto* it = r.raw("precopy_iterations")) {
    if (!it->is_object()) throw ParseError("precopy_iterations", "expected an object");
    JsonReader ir(*it, "precopy_iterations");
    for (const auto& [port, n] : it->items()) {
      a.precopy_iterations[port] = ir.required_int(port, 0, INT32_MAX);
    }
  }
  return a;
}

}  // namespace cutover
