// cutoverctl: command-line client for the controller's REST API. Tables by default, --json for
// scripts; `migrate PORT|VM --to HOST --wait` follows a migration to its end and prints its
// timeline.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "command_line.hpp"
#include "http_client.hpp"
#include "options.hpp"  // read_token_file
#include "parse_error.hpp"
#include "pki.hpp"
#include "tls.hpp"

using namespace cutover;
using namespace cutover::cli;
using nlohmann::json;

namespace {

// Percent-encodes everything but RFC 3986 unreserved characters (for a name in a URL path).
std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

class Fail : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "k=v,k2=v2" -> {"k":"v","k2":"v2"}; `flag` names the option in errors.
json labels_json(const std::string& text, const char* flag = "--labels") {
  json j = json::object();
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      throw Fail(std::string(flag) + ": expected k=v, got '" + item + "'");
    }
    j[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return j;
}

json list_json(const std::string& text) {
  json j = json::array();
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) j.push_back(item);
  }
  return j;
}

void need(const std::string& value, const char* flag) {
  if (value.empty()) throw Fail(std::string(flag) + " is required");
}

std::string cell(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "-";
  if (v.is_array()) {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : ",") + cell(e);
    return s.empty() ? "-" : s;
  }
  if (v.is_object()) {
    std::string s;
    for (const auto& [k, e] : v.items()) s += (s.empty() ? "" : ",") + k + "=" + cell(e);
    return s.empty() ? "-" : s;
  }
  return v.dump();
}

void print_table(const json& rows, const std::vector<std::string>& cols) {
  std::vector<std::vector<std::string>> cells;
  std::vector<size_t> width;
  for (const auto& c : cols) width.push_back(c.size());
  for (const auto& r : rows) {
    std::vector<std::string> line;
    for (size_t i = 0; i < cols.size(); ++i) {
      line.push_back(r.contains(cols[i]) ? cell(r[cols[i]]) : "-");
      width[i] = std::max(width[i], line.back().size());
    }
    cells.push_back(line);
  }
  auto print_line = [&](const std::vector<std::string>& line) {
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
      std::string c = line[i];
      if (i + 1 < line.size()) c.resize(width[i] + 2, ' ');
      out += c;
    }
    std::printf("%s\n", out.c_str());
  };
  std::vector<std::string> header;
  for (const auto& c : cols) {
    std::string h = c;
    for (auto& ch : h) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    header.push_back(h);
  }
  print_line(header);
  for (const auto& line : cells) print_line(line);
}

const std::vector<std::string>& columns(const std::string& kind) {
  static const std::map<std::string, std::vector<std::string>> cols = {
      {"hosts", {"id", "underlay_ip", "backend", "labels"}},
      {"networks", {"id", "name", "vni", "mtu"}},
      {"ports", {"id", "mac", "ips", "network", "host", "migrating_to", "iface_id"}},
      {"migrations", {"id", "port", "vm", "source", "destination", "state", "reason"}},
      {"agents",
       {"host", "connected", "sent_generation", "applied_generation", "waiting_for",
        "bound_ports"}},
      {"audit", {"seq", "migration", "port", "event", "detail"}},
      {"inventory",
       {"host", "vm", "iface_id", "mac", "libvirt_network", "portgroup", "network", "port",
        "problem"}},
      {"mappings", {"libvirt_network", "network", "portgroups"}},
  };
  return cols.at(kind);
}

class Ctl {
 public:
  Ctl(HttpClient& http, const Flags& f) : http_(http), f_(f) {}

  json call(const std::string& method, const std::string& target, const json& body = nullptr) {
    auto res = http_.request(method, target, body.is_null() ? "" : body.dump());
    json j = res.body.empty() ? json(nullptr) : json::parse(res.body, nullptr, false);
    if (res.status >= 400 && !(res.status == 403 && j.is_object() && j.contains("state"))) {
      if (j.is_object() && j.contains("error")) {
        const auto& e = j["error"];
        std::string msg = e.value("message", "");
        if (e.contains("field") && e["field"].is_string())
          msg = e["field"].get<std::string>() + ": " + msg;
        throw Fail(std::to_string(res.status) + " " + e.value("code", "") + ": " + msg);
      }
      throw Fail("HTTP " + std::to_string(res.status) + ": " + res.body);
    }
    return j;
  }

  void show(const std::string& kind, const json& j) {
    if (f_.json_out) {
      std::printf("%s\n", j.dump(2).c_str());
    } else if (j.is_array()) {
      print_table(j, columns(kind));
    } else if (j.is_object()) {
      for (const auto& [k, v] : j.items()) {
        if (k == "timeline") continue;
        std::printf("%-14s %s\n", (k + ":").c_str(), cell(v).c_str());
      }
      if (j.contains("timeline") && !j["timeline"].empty()) print_timeline(j["timeline"]);
    }
  }

  void print_timeline(const json& t) {
    std::vector<std::pair<int64_t, std::string>> phases;
    for (const auto& [k, v] : t.items()) phases.push_back({v.get<int64_t>(), k});
    std::sort(phases.begin(), phases.end());
    std::printf("timeline:\n");
    for (const auto& [us, name] : phases) {
      std::printf("  %+10.3f ms  %s\n", static_cast<double>(us - phases.front().first) / 1000.0,
                  name.c_str());
    }
  }

  int run(const std::vector<std::string>& args) {
    if (args.empty()) throw Fail("missing command (see --help)");
    const auto& kind = args[0];
    const std::string verb = args.size() > 1 ? args[1] : "list";
    const std::string arg = args.size() > 2 ? args[2] : "";
    if (kind == "agents") {
      show(kind, call("GET", "/v1/" + kind));
      return 0;
    }
    if (kind == "audit") {
      list_page(kind, "seq");
      return 0;
    }
    if (kind == "migrate") {
      if (args.size() < 2) throw Fail("migrate PORT|VM --to HOST");
      return migrate(args[1]);
    }
    if (kind == "inventory") {
      show(kind, call("GET", "/v1/inventory"));
      return 0;
    }
    if (kind == "mappings") return mappings(verb, arg);
    if (kind != "hosts" && kind != "networks" && kind != "ports" && kind != "migrations") {
      throw Fail("unknown command '" + kind + "' (see --help)");
    }
    const std::string base = "/v1/" + kind;
    if (verb == "list" && kind == "migrations") {
      list_page(kind, "id");
    } else if (verb == "list") {
      show(kind, call("GET", base));
      if (kind == "ports" && !f_.json_out) print_refused();
    } else if (verb == "show") {
      need(arg, "ID");
      show(kind, call("GET", base + "/" + arg));
    } else if (verb == "delete") {
      need(arg, "ID");
      call("DELETE", base + "/" + arg);
      std::printf("deleted %s %s\n", kind.c_str(), arg.c_str());
    } else if (verb == "create") {
      show(kind, call("POST", base, create_body(kind)));
    } else if (kind == "ports" && verb == "place") {
      need(arg, "ID");
      need(f_.host, "--host");
      auto p = call("GET", base + "/" + arg);
      p["host"] = f_.host;
      show(kind, call("PUT", base + "/" + arg, p));
    } else if (kind == "migrations" && verb == "measure") {
      json body = json::object();
      for (auto [key, value, flag] :
           {std::tuple{"pps", f_.pps, "--pps"}, std::tuple{"sent", f_.sent, "--sent"},
            std::tuple{"lost", f_.lost, "--lost"}}) {
        if (value < 0) throw Fail(std::string(flag) + " is required");
        body[key] = value;
      }
      if (f_.tcp_sessions >= 0) body["tcp_sessions"] = f_.tcp_sessions;
      if (f_.tcp_survived >= 0) body["tcp_survived"] = f_.tcp_survived;
      if (!f_.by.empty()) body["by"] = f_.by;
      show(kind, call("PUT", base + "/" + arg + "/measurement", body));
    } else if (kind == "migrations" && (verb == "cancel" || verb == "approve")) {
      need(arg, "ID");
      show(kind, call("POST", base + "/" + arg + "/" + verb));
    } else {
      throw Fail("unknown verb '" + verb + "' for " + kind);
    }
    return 0;
  }

  int mappings(const std::string& verb, const std::string& name) {
    const std::string base = "/v1/network-mappings";
    if (verb == "list") {
      show("mappings", call("GET", base));
    } else if (verb == "show") {
      need(name, "LIBVIRT_NET");
      show("mappings", call("GET", base + "/" + url_escape(name)));
    } else if (verb == "delete") {
      need(name, "LIBVIRT_NET");
      call("DELETE", base + "/" + url_escape(name));
      std::printf("deleted the mapping of libvirt network %s\n", name.c_str());
    } else if (verb == "set") {
      need(name, "LIBVIRT_NET");
      json body = {{"libvirt_network", name}};
      if (!f_.network.empty()) body["network"] = f_.network;
      if (!f_.portgroups.empty()) body["portgroups"] = labels_json(f_.portgroups, "--portgroups");
      show("mappings", call("PUT", base + "/" + url_escape(name), body));
    } else {
      throw Fail("unknown verb '" + verb + "' for mappings");
    }
    return 0;
  }

  // Under the ports table: the VM interfaces the inventory could not make ports of, and why.
  void print_refused() {
    json entries;
    try {
      entries = call("GET", "/v1/inventory");
    } catch (const Fail&) {
      return;  // an older controller, or no role for it: the ports table is the answer
    }
    if (!entries.is_array()) return;
    bool first = true;
    for (const auto& e : entries) {
      if (!e.contains("problem")) continue;
      if (first) std::printf("\nVM interfaces that are no port (cutoverctl inventory):\n");
      first = false;
      const std::string field = e.value("field", "");
      std::printf("  %s on %s, %s (mac %s): %s%s\n", e.value("vm", "").c_str(),
                  e.value("host", "").c_str(), e.value("iface_id", "").c_str(),
                  e.value("mac", "-").c_str(), field.empty() ? "" : (field + ": ").c_str(),
                  e.value("problem", "").c_str());
    }
  }

  // GET /v1/<kind>, one page of it with --limit; a full page says how to get the next.
  void list_page(const std::string& kind, const char* key) {
    std::string target = "/v1/" + kind;
    if (f_.limit < 0) throw Fail("--limit must be positive");
    if (f_.limit > 0) {
      target += "?limit=" + std::to_string(f_.limit);
      if (!f_.after.empty()) target += "&after=" + url_escape(f_.after);
    } else if (!f_.after.empty()) {
      throw Fail("--after needs --limit");
    }
    auto rows = call("GET", target);
    show(kind, rows);
    if (f_.limit > 0 && rows.is_array() && rows.size() == static_cast<size_t>(f_.limit)) {
      const auto& last = rows.back()[key];
      std::fprintf(stderr, "more: --limit %lld --after %s\n", static_cast<long long>(f_.limit),
                   last.is_string() ? last.get<std::string>().c_str() : last.dump().c_str());
    }
  }

  // "tcp:22,udp:53,icmp" -> [{"protocol":"tcp","port":22}, ...]; "none" -> [] (deny all new).
  static json allow_json(const std::string& text) {
    json rules = json::array();
    if (text == "none") return rules;
    for (const auto& item : list_json(text)) {
      const std::string s = item;
      const auto colon = s.find(':');
      json rule = {{"protocol", s.substr(0, colon)}};
      if (colon != std::string::npos) {
        const std::string port = s.substr(colon + 1);
        if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
            port.size() > 5) {
          throw Fail("--allow: '" + s + "': the port must be a number");
        }
        rule["port"] = std::stoi(port);
      }
      rules.push_back(rule);
    }
    return rules;
  }

  // "data=nqn.2014-08.org.example:vol@10.0.0.20:4420" -> {"id", "nqn", "paths": [...]}.
  static json volume_json(const std::string& text) {
    const auto eq = text.find('=');
    const auto at = text.rfind('@');
    if (eq == std::string::npos || at == std::string::npos || at < eq) {
      throw Fail("--volume: expected ID=NQN@TRADDR[:TRSVCID], got '" + text + "'");
    }
    std::string addr = text.substr(at + 1);
    json path;
    std::string port;
    if (!addr.empty() && addr[0] == '[') {  // [v6]:port
      const auto close = addr.find(']');
      if (close == std::string::npos) throw Fail("--volume: unterminated [ in '" + addr + "'");
      if (close + 1 < addr.size() && addr[close + 1] == ':') port = addr.substr(close + 2);
      addr = addr.substr(1, close - 1);
    } else if (auto colon = addr.find(':');
               colon != std::string::npos && addr.find(':', colon + 1) == std::string::npos) {
      port = addr.substr(colon + 1);
      addr = addr.substr(0, colon);
    }
    path["traddr"] = addr;
    if (!port.empty()) {
      if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) {
        throw Fail("--volume: the port must be a number, got '" + port + "'");
      }
      path["trsvcid"] = std::stoi(port);
    }
    return {{"id", text.substr(0, eq)},
            {"nqn", text.substr(eq + 1, at - eq - 1)},
            {"paths", json::array({path})}};
  }

  // KBIT_S[:BURST_KBIT] -> {"kbit_s", "burst_kbit"?}; the controller checks the ranges.
  static json rate_json(const char* flag, const std::string& text) {
    auto number = [&](const std::string& t) {
      if (t.empty() || t.size() > 12 || t.find_first_not_of("0123456789") != std::string::npos) {
        throw Fail(std::string(flag) + ": expected KBIT_S[:BURST_KBIT] in digits, got '" + text +
                   "'");
      }
      return std::stoll(t);
    };
    const auto colon = text.find(':');
    json r = {{"kbit_s", number(text.substr(0, colon))}};
    if (colon != std::string::npos) r["burst_kbit"] = number(text.substr(colon + 1));
    return r;
  }

  json create_body(const std::string& kind) {
    json b;
    if (kind == "hosts") {
      need(f_.id, "--id");
      need(f_.underlay_ip, "--underlay-ip");
      b = {{"id", f_.id}, {"underlay_ip", f_.underlay_ip}, {"labels", labels_json(f_.labels)}};
      if (!f_.backend.empty()) b["backend"] = f_.backend;
    } else if (kind == "networks") {
      need(f_.id, "--id");
      need(f_.vni, "--vni");
      b = {{"id", f_.id}, {"vni", std::atoll(f_.vni.c_str())}};
      if (!f_.mtu.empty()) b["mtu"] = std::atoll(f_.mtu.c_str());
      if (!f_.name.empty()) b["name"] = f_.name;
    } else if (kind == "ports") {
      need(f_.id, "--id");
      need(f_.mac, "--mac");
      need(f_.network, "--network");
      b = {{"id", f_.id},
           {"mac", f_.mac},
           {"network", f_.network},
           {"ips", list_json(f_.ips)},
           {"labels", labels_json(f_.labels)}};
      if (!f_.host.empty()) b["host"] = f_.host;
      if (!f_.iface_id.empty()) b["iface_id"] = f_.iface_id;
      if (!f_.allow.empty()) b["ingress_allow"] = allow_json(f_.allow);
      if (!f_.volume.empty()) b["volumes"] = json::array({volume_json(f_.volume)});
      json qos = json::object();
      if (!f_.to_vm.empty()) qos["to_vm"] = rate_json("--to-vm", f_.to_vm);
      if (!f_.from_vm.empty()) qos["from_vm"] = rate_json("--from-vm", f_.from_vm);
      if (!qos.empty()) b["qos"] = qos;
    } else {
      if (f_.port.empty() == f_.vm.empty()) throw Fail("give one of --port and --vm");
      need(f_.to, "--to");
      b = {{"to_host", f_.to}};
      if (!f_.port.empty()) b["port"] = f_.port;
      if (!f_.vm.empty()) b["vm"] = f_.vm;
      if (f_.no_conntrack_carry) b["carry_conntrack"] = false;
      add_libvirt(b);
    }
    return b;
  }

  // --no-persist, --auto-converge, --compressed, --bandwidth-mib-s, --postcopy: "libvirt" when
  // any is given
  // (what is not given is the source agent's default).
  void add_libvirt(json& body) const {
    json l = json::object();
    if (f_.no_persist) l["persist"] = false;
    if (f_.auto_converge) l["auto_converge"] = true;
    if (f_.compressed) l["compressed"] = true;
    if (f_.postcopy) l["postcopy"] = true;
    if (f_.bandwidth_mib_s < 0) throw Fail("--bandwidth-mib-s must be positive");
    if (f_.bandwidth_mib_s > 0) l["bandwidth_mib_s"] = f_.bandwidth_mib_s;
    if (!l.empty()) body["libvirt"] = l;
  }

  int migrate(const std::string& name) {
    need(f_.to, "--to");
    // A port id if there is such a port, else a libvirt domain the controller resolves.
    const bool is_port = http_.request("GET", "/v1/ports/" + url_escape(name)).status != 404;
    json body = {{is_port ? "port" : "vm", name}, {"to_host", f_.to}};
    if (f_.no_conntrack_carry) body["carry_conntrack"] = false;
    add_libvirt(body);
    auto m = call("POST", "/v1/migrations", body);
    const std::string id = m["id"];
    if (!f_.wait) {
      show("migrations", m);
      return m["state"] == "rejected" ? 1 : 0;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(f_.timeout_s);
    std::string last;
    while (true) {
      const std::string state = m["state"];
      if (state != last && !f_.json_out)
        std::fprintf(stderr, "%s: %s\n", id.c_str(), state.c_str());
      last = state;
      if (state == "completed" || state == "rolled_back" || state == "rejected") break;
      if (std::chrono::steady_clock::now() > deadline) throw Fail("timed out waiting for " + id);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling a remote state
      m = call("GET", "/v1/migrations/" + id);
    }
    show("migrations", m);
    return m["state"] == "completed" ? 0 : 1;
  }

 private:
  HttpClient& http_;
  const Flags& f_;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int run_pki(const Flags& f, const std::vector<std::string>& args) {
  const std::string verb = args.size() > 1 ? args[1] : "";
  Pki pki(f.pki_dir);
  if (verb == "init" && args.size() == 2) {
    pki.init(f.name.empty() ? "cutover CA" : f.name, f.days ? static_cast<int>(f.days) : 3650);
    std::printf("CA in %s: ca.pem (give it to every agent and client), ca.key (keep it here)\n",
                f.pki_dir.c_str());
    return 0;
  }
  if (verb == "issue" && args.size() == 3) {
    IssueRequest req;
    req.name = args[2];
    req.role = f.role;
    req.dns = split_commas(f.dns);
    req.ips = split_commas(f.ips);
    req.days = f.days ? static_cast<int>(f.days) : 825;
    pki.issue(req);
    std::printf("%s: %s.pem and %s.key (0600) in %s, role %s\n", req.name.c_str(), req.name.c_str(),
                req.name.c_str(), f.pki_dir.c_str(), req.role.c_str());
    return 0;
  }
  if (verb == "revoke" && args.size() == 3) {
    pki.revoke(args[2]);
    std::printf("%s revoked: %s updated; send the controller SIGHUP to reload it\n",
                args[2].c_str(), pki.path("crl.pem").c_str());
    return 0;
  }
  if (verb == "crl" && args.size() == 2) {
    pki.write_crl();
    std::printf("%s rewritten\n", pki.path("crl.pem").c_str());
    return 0;
  }
  throw ParseError("pki", "expected: pki init | pki issue NAME | pki revoke NAME | pki crl");
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  const char* env_controller = std::getenv("CUTOVER_CONTROLLER");
  f.controller = env_controller ? env_controller : "http://127.0.0.1:8180";
  CommandLine cmd(f);
  try {
    if (!cmd.parse(argc, argv)) return 0;
    const auto& words = cmd.words();
    if (words[0] == "pki") return run_pki(f, words);
    if (words[0] == "completion") {
      std::fputs(cli::bash_completion("cutoverctl", cmd.completion_tree()).c_str(), stdout);
      return 0;
    }
    std::string token;
    if (!f.token_file.empty()) {
      token = read_token_file(f.token_file);
    } else if (const char* t = std::getenv("CUTOVER_TOKEN")) {
      token = t;
    }
    std::shared_ptr<boost::asio::ssl::context> tls;
    if (f.controller.rfind("https://", 0) == 0) {
      if (f.tls.ca.empty()) {
        if (const char* ca = std::getenv("CUTOVER_TLS_CA")) f.tls.ca = ca;
      }
      if (f.tls.ca.empty()) throw ParseError("--tls-ca", "https:// needs the cluster CA");
      try {
        tls = make_client_tls(f.tls);
      } catch (const std::exception& e) {
        throw ParseError("--tls-ca", e.what());
      }
    }
    HttpClient http(f.controller, token, tls);
    Ctl ctl(http, f);
    return ctl.run(words);
  } catch (const ParseError& e) {
    std::fprintf(stderr, "cutoverctl: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cutoverctl: %s\n", e.what());
    return 1;
  }
}
