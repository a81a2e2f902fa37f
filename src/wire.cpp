// Wire protocol codecs.
#include "wire.hpp"

#include "json_codec.hpp"
#include "json_reader.hpp"

#include <algorithm>

namespace cutover::wire {

using nlohmann::json;

const char* to_string(Aborted::Where w) {
  switch (w) {
    case Aborted::Where::here:
      return "here";
    case Aborted::Where::gone:
      return "gone";
    case Aborted::Where::unknown:
      break;
  }
  return "unknown";
}

std::string encode(const AgentMessage& m) {
  json j;
  if (auto* h = std::get_if<Hello>(&m)) {
    j = {{"type", "hello"}, {"host", to_json(h->host)}};
  } else if (auto* a = std::get_if<Ack>(&m)) {
    j = {{"type", "ack"}, {"generation", a->generation}, {"apply_ms", a->apply_ms}};
    add_report_fields(*a, j);
  } else if (auto* f = std::get_if<MigrationFailed>(&m)) {
    j = {{"type", "migration_failed"}, {"migration", f->migration}, {"error", f->error}};
  } else if (auto* an = std::get_if<Announced>(&m)) {
    j = {{"type", "announced"},  {"port", an->port},     {"round", an->round},
         {"rounds", an->rounds}, {"frames", an->frames}, {"failed", an->failed}};
    if (!an->error.empty()) j["error"] = an->error;
  } else if (auto* ct = std::get_if<Conntrack>(&m)) {
    json conns = json::array();
    for (const auto& c : ct->conns) conns.push_back(to_json(c));
    j = {{"type", "conntrack"}, {"port", ct->port}, {"conns", conns}};
  } else if (auto* in = std::get_if<Incoming>(&m)) {
    j = {{"type", "incoming"}, {"iface_ids", in->iface_ids}};
  } else if (auto* ab = std::get_if<Aborted>(&m)) {
    j = {{"type", "aborted"},
         {"migration", ab->migration},
         {"where", to_string(ab->where)},
         {"detail", ab->detail}};
  } else if (auto* n = std::get_if<Nack>(&m)) {
    j = {{"type", "nack"}, {"generation", n->generation}, {"error", n->error}, {"field", n->field}};
  }
  return j.dump();
}

std::string encode(const ControllerMessage& m) {
  if (const auto* mig = std::get_if<Migrate>(&m)) {
    json j = {{"type", "migrate"},
              {"migration", mig->migration},
              {"iface_id", mig->iface_id},
              {"destination_uri", mig->destination_uri}};
    if (!mig->libvirt.empty()) j["libvirt"] = to_json(mig->libvirt);
    return j.dump();
  }
  if (const auto* ab = std::get_if<Abort>(&m)) {
    return json{{"type", "abort"}, {"migration", ab->migration}, {"iface_id", ab->iface_id}}.dump();
  }
  if (const auto* d = std::get_if<Desired>(&m)) {
    return json{{"type", "desired"}, {"state", to_json(d->state)}}.dump();
  }
  if (const auto* p = std::get_if<Prepared>(&m)) {
    json j = {{"type", "prepared"},
              {"iface_id", p->iface_id},
              {"migration", p->migration},
              {"ok", p->ok}};
    if (!p->error.empty()) j["error"] = p->error;
    return j.dump();
  }
  // One layout for deltas: encode_delta's (the controller splices pre-encoded parts into it).
  const auto& d = std::get<Delta>(m);
  std::vector<std::string> hosts, ports;
  for (const auto& h : d.upsert_hosts) hosts.push_back(to_json(h).dump());
  for (const auto& p : d.upsert_ports) ports.push_back(to_json(p).dump());
  return encode_delta(d.generation, hosts, ports, d.remove_ports);
}

std::string encode_delta(uint64_t generation, const std::vector<std::string>& host_json,
                         const std::vector<std::string>& port_json,
                         const std::vector<PortId>& removed) {
  // Keys in nlohmann's (sorted) order, like every other message's JSON.
  json ids = json::array();
  for (const auto& id : removed) ids.push_back(id.str());
  auto list = [](const std::vector<std::string>& items) {
    std::string out = "[";
    for (const auto& i : items) {
      if (out.size() > 1) out += ',';
      out += i;
    }
    return out + ']';
  };
  return R"({"generation":)" + std::to_string(generation) + R"(,"remove_ports":)" + ids.dump() +
         R"(,"type":"delta","upsert_hosts":)" + list(host_json) + R"(,"upsert_ports":)" +
         list(port_json) + "}";
}

void apply(DesiredState& state, const Delta& delta) {
  state.generation = delta.generation;
  for (const auto& h : delta.upsert_hosts) {
    auto it = std::find_if(state.hosts.begin(), state.hosts.end(),
                           [&](const Host& x) { return x.id == h.id; });
    if (it != state.hosts.end()) {
      *it = h;
    } else {
      state.hosts.push_back(h);
    }
  }
  for (const auto& id : delta.remove_ports) {
    std::erase_if(state.ports, [&](const Port& x) { return x.id == id; });
  }
  for (const auto& p : delta.upsert_ports) {
    auto it = std::find_if(state.ports.begin(), state.ports.end(),
                           [&](const Port& x) { return x.id == p.id; });
    if (it != state.ports.end()) {
      *it = p;
    } else {
      state.ports.push_back(p);
    }
  }
}

AgentMessage decode_agent_message(const std::string& text) {
  auto j = parse_json_text(text);
  JsonReader r(j, "");
  const auto type = r.required_string("type");
  AgentMessage out;
  if (type == "hello") {
    const auto* h = r.raw("host");
    if (!h) throw ParseError("host", "required field is missing");
    out = Hello{host_from_json(*h, "host")};
  } else if (type == "ack") {
    Ack a;
    a.generation = static_cast<uint64_t>(r.required_int("generation", 0, INT64_MAX));
    if (const auto* ms = r.raw("apply_ms"); ms && ms->is_number()) a.apply_ms = ms->get<double>();
    static_cast<AgentReport&>(a) = report_fields_from(r);
    out = std::move(a);
  } else if (type == "nack") {
    Nack n;
    n.generation = static_cast<uint64_t>(r.required_int("generation", 0, INT64_MAX));
    n.error = r.required_string("error");
    n.field = r.optional_string("field").value_or("");
    out = std::move(n);
  } else if (type == "migration_failed") {
    MigrationFailed f;
    f.migration = r.required_string("migration");
    f.error = r.required_string("error");
    out = std::move(f);
  } else if (type == "aborted") {
    Aborted ab;
    ab.migration = r.required_string("migration");
    const auto where = r.required_string("where");
    if (where == "here") {
      ab.where = Aborted::Where::here;
    } else if (where == "gone") {
      ab.where = Aborted::Where::gone;
    } else if (where != "unknown") {
      throw ParseError("where", "expected here, gone or unknown, not '" + where + "'");
    }
    ab.detail = r.optional_string("detail").value_or("");
    out = std::move(ab);
  } else if (type == "announced") {
    Announced an;
    an.port = r.required_string("port");
    an.round = r.required_int("round", 0, 1000);
    an.rounds = r.required_int("rounds", 1, 1000);
    an.frames = r.required_int("frames", 0, 1000000);
    an.failed = r.required_int("failed", 0, 1000000);
    an.error = r.optional_string("error").value_or("");
    if (an.round >= an.rounds) throw ParseError("round", "must be below rounds");
    out = std::move(an);
  } else if (type == "incoming") {
    Incoming in;
    if (!r.raw("iface_ids")) throw ParseError("iface_ids", "required field is missing");
    in.iface_ids = iface_ids_from_json(r, "iface_ids");
    out = std::move(in);
  } else if (type == "conntrack") {
    Conntrack ct;
    ct.port = r.required_string("port");
    if (!r.raw("conns")) throw ParseError("conns", "required field is missing");
    r.for_each("conns", [&](const json& e, const std::string& path) {
      if (ct.conns.size() >= kMaxCarriedConns) {
        throw ParseError(path, "at most " + std::to_string(kMaxCarriedConns) + " connections");
      }
      ct.conns.push_back(carried_conn_from_json(e, path));
    });
    out = std::move(ct);
  } else {
    throw ParseError("type", "unknown message type '" + type + "'");
  }
  r.finish();
  return out;
}

ControllerMessage decode_controller_message(const std::string& text) {
  auto j = parse_json_text(text);
  JsonReader r(j, "");
  const auto type = r.required_string("type");
  if (type == "delta") {
    Delta d;
    d.generation = static_cast<uint64_t>(r.required_int("generation", 0, INT64_MAX));
    r.for_each("upsert_hosts", [&](const json& e, const std::string& path) {
      d.upsert_hosts.push_back(host_from_json(e, path));
    });
    r.for_each("upsert_ports", [&](const json& e, const std::string& path) {
      d.upsert_ports.push_back(port_from_json(e, path));
    });
    r.for_each("remove_ports", [&](const json& e, const std::string& path) {
      if (!e.is_string()) throw ParseError(path, "expected a port id");
      try {
        d.remove_ports.push_back(PortId::parse(e.get<std::string>()));
      } catch (const ParseError& err) {
        throw ParseError(path, err.message());
      }
    });
    r.finish();
    return d;
  }
  if (type == "prepared") {
    Prepared p;
    p.iface_id = r.required_string("iface_id");
    p.migration = r.optional_string("migration").value_or("");
    p.ok = r.optional_bool("ok").value_or(false);
    p.error = r.optional_string("error").value_or("");
    r.finish();
    return p;
  }
  if (type == "abort") {
    Abort a;
    a.migration = r.required_string("migration");
    a.iface_id = r.required_string("iface_id");
    r.finish();
    return a;
  }
  if (type == "migrate") {
    Migrate m;
    m.migration = r.required_string("migration");
    m.iface_id = r.required_string("iface_id");
    m.destination_uri = r.required_string("destination_uri");
    if (const auto* l = r.raw("libvirt")) m.libvirt = libvirt_settings_from_json(*l, "libvirt");
    r.finish();
    return m;
  }
  if (type != "desired") throw ParseError("type", "unknown message type '" + type + "'");
  const auto* s = r.raw("state");
  if (!s) throw ParseError("state", "required field is missing");
  Desired d{desired_state_from_json(*s, "state")};
  r.finish();
  return d;
}

}  // namespace cutover::wire
