// Control request decoding (strict: unknown fields and ops are refused by name).
#include "control_request.hpp"

#include "json_codec.hpp"
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
  out.iface_ids = iface_ids_from_json(r, "iface_ids");
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
