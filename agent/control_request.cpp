// Control request decoding (strict: unknown fields and ops are refused by name).
#include "control_request.hpp"

#include "json_reader.hpp"

namespace cutover::agent {

ControlRequest decode_control_request(const std::string& line) {
  if (line.size() > kControlMaxLine) throw ParseError("", "request longer than 64 KiB");
  const auto j = parse_json_text(line);
  JsonReader r(j, "");
  ControlRequest out;
  out.op = r.required_string("op");
  if (out.op != "incoming" && out.op != "vm_state") {
    throw ParseError("op", "expected incoming or vm_state, got '" + out.op + "'");
  }
  r.for_each("iface_ids", [&](const nlohmann::json& e, const std::string& path) {
    if (!e.is_string() || e.get<std::string>().empty() || e.get<std::string>().size() > 128) {
      throw ParseError(path, "expected an iface-id (1-128 characters)");
    }
    if (out.iface_ids.size() >= 64) throw ParseError(path, "at most 64 interfaces");
    out.iface_ids.push_back(e.get<std::string>());
  });
  if (out.op == "incoming") {
    out.domain = r.optional_string("domain").value_or("");
    out.timeout_ms = r.optional_int("timeout_ms", 1, 60000).value_or(5000);
  } else {
    if (!r.raw("iface_ids")) throw ParseError("iface_ids", "required field is missing");
    out.state = r.required_string("state");
    if (out.state != "arriving" && out.state != "running" && out.state != "paused_for_migration" &&
        out.state != "gone") {
      throw ParseError("state", "expected arriving, running, paused_for_migration or gone, got '" +
                                    out.state + "'");
    }
  }
  r.finish();
  return out;
}

}  // namespace cutover::agent
