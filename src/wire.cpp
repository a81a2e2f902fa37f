// Wire protocol codecs.
#include "wire.hpp"

#include "json_codec.hpp"
#include "json_reader.hpp"

namespace cutover::wire {

using nlohmann::json;

std::string encode(const AgentMessage& m) {
  json j;
  if (auto* h = std::get_if<Hello>(&m)) {
    j = {{"type", "hello"}, {"host", to_json(h->host)}};
  } else if (auto* a = std::get_if<Ack>(&m)) {
    j = {{"type", "ack"},
         {"generation", a->generation},
         {"apply_ms", a->apply_ms},
         {"bound_ports", a->bound_ports}};
  } else if (auto* n = std::get_if<Nack>(&m)) {
    j = {{"type", "nack"}, {"generation", n->generation}, {"error", n->error}, {"field", n->field}};
  }
  return j.dump();
}

std::string encode(const ControllerMessage& m) {
  const auto& d = std::get<Desired>(m);
  return json{{"type", "desired"}, {"state", to_json(d.state)}}.dump();
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
    r.for_each("bound_ports", [&](const json& e, const std::string& path) {
      if (!e.is_string()) throw ParseError(path, "expected a string");
      a.bound_ports.push_back(e.get<std::string>());
    });
    out = a;
  } else if (type == "nack") {
    Nack n;
    n.generation = static_cast<uint64_t>(r.required_int("generation", 0, INT64_MAX));
    n.error = r.required_string("error");
    n.field = r.optional_string("field").value_or("");
    out = n;
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
  if (type != "desired") throw ParseError("type", "unknown message type '" + type + "'");
  const auto* s = r.raw("state");
  if (!s) throw ParseError("state", "required field is missing");
  Desired d{desired_state_from_json(*s, "state")};
  r.finish();
  return d;
}

}  // namespace cutover::wire
