// RestApi: routing, JSON bodies, validation errors.
#include "rest_api.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "console_assets.hpp"
#include "json_codec.hpp"
#include "json_reader.hpp"
#include "logging.hpp"

namespace cutover::controller {

using nlohmann::json;

namespace {

// A request's path and query are raw bytes, and messages echo them: bytes that are not UTF-8
// become U+FFFD rather than an exception in the middle of answering (fuzz_rest found one).
std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpResponse ok(const json& j, int status = 200) {
  return {status, dump_json(j), "application/json", {}};
}

HttpResponse error(int status, const std::string& code, const std::string& message,
                   const std::string& field = "") {
  json e = {{"code", code}, {"message", message}};
  e["field"] = field.empty() ? json(nullptr) : json(field);
  return {status, dump_json(json{{"error", e}}), "application/json", {}};
}

std::vector<std::string> split_path(const std::string& target) {
  std::string path = target.substr(0, target.find('?'));
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

json parse_body(const HttpRequest& req) {
  if (req.body.size() > RestApi::kMaxBody) {
    throw ApiError(413, "too_large", "", "request body over 1 MiB");
  }
  try {
    return parse_json_text(req.body);
  } catch (const ParseError& e) {
    throw ApiError(400, "malformed_json", "", e.message());
  }
}

template <typename T, typename Fn>
T decode(const HttpRequest& req, Fn&& fn) {
  auto j = parse_body(req);
  try {
    return fn(j);
  } catch (const ParseError& e) {
    throw ApiError(422, "invalid", e.field(), e.message());
  }
}

template <typename IdT>
IdT path_id(const std::string& text) {
  try {
    return IdT::parse(text);
  } catch (const ParseError& e) {
    throw ApiError(404, "not_found", "", e.message());
  }
}

// ?limit=N&after=X on a list: N from 1 to kMaxLimit (absent: everything, as before pagination),
// X the last id (or seq) of the previous page. Other parameters are ignored.
constexpr size_t kMaxLimit = 10000;
struct Page {
  std::optional<size_t> limit;
  std::optional<std::string> after;
};

std::string percent_decoded(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

Page page_of(const std::string& target) {
  Page page;
  const auto q = target.find('?');
  if (q == std::string::npos) return page;
  std::stringstream ss(target.substr(q + 1));
  std::string item;
  while (std::getline(ss, item, '&')) {
    const auto eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : percent_decoded(item.substr(eq + 1));
    if (key == "limit") {
      size_t n = 0;
      const bool digits = !value.empty() && value.size() <= 6 &&
                          value.find_first_not_of("0123456789") == std::string::npos;
      if (digits) n = std::stoul(value);
      if (!digits || n < 1 || n > kMaxLimit) {
        throw ApiError(400, "invalid", "limit",
                       "limit must be a whole number from 1 to " + std::to_string(kMaxLimit));
      }
      page.limit = n;
    } else if (key == "after") {
      page.after = value;
    }
  }
  return page;
}

// Migration ids are "m<N>": shorter first, then by bytes, is their creation order, so a new one
// lands on the last page and paging with `after` neither skips nor repeats one.
bool id_order(const std::string& a, const std::string& b) {
  return a.size() != b.size() ? a.size() < b.size() : a < b;
}

json migrations_page(const std::map<MigrationId, Migration>& all, const Page& page) {
  std::vector<const Migration*> rows;
  for (const auto& [id, m] : all) {
    if (!page.after || id_order(*page.after, id.str())) rows.push_back(&m);
  }
  auto by_id = [](const Migration* a, const Migration* b) {
    return id_order(a->id.str(), b->id.str());
  };
  if (page.limit && *page.limit < rows.size()) {
    std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(*page.limit),
                      rows.end(), by_id);
    rows.resize(*page.limit);
  } else {
    std::sort(rows.begin(), rows.end(), by_id);
  }
  json arr = json::array();
  for (const auto* m : rows) arr.push_back(to_json(*m));
  return arr;
}

json audit_page(const std::deque<json>& log, const Page& page) {
  uint64_t after = 0;
  if (page.after) {
    const auto& a = *page.after;
    if (a.empty() || a.size() > 19 || a.find_first_not_of("0123456789") != std::string::npos) {
      throw ApiError(400, "invalid", "after", "after must be the seq of an audit entry");
    }
    after = std::stoull(a);
  }
  // Oldest first, by seq: the first entry past `after`.
  auto it = std::upper_bound(log.begin(), log.end(), after, [](uint64_t v, const json& e) {
    return v < e.value("seq", uint64_t{0});
  });
  json arr = json::array();
  for (; it != log.end() && (!page.limit || arr.size() < *page.limit); ++it) arr.push_back(*it);
  return arr;
}

template <typename Map>
json list(const Map& m) {
  json arr = json::array();
  for (const auto& [id, v] : m) arr.push_back(to_json(v));
  return arr;
}

}  // namespace

RestApi::RestApi(ControllerState& state, AgentHub& hub, MigrationDriver& migrations,
                 Inventory& inventory, Metrics& metrics, Access access, std::string openapi_yaml)
    : state_(state),
      hub_(hub),
      migrations_(migrations),
      inventory_(inventory),
      metrics_(metrics),
      access_(std::move(access)),
      openapi_(std::move(openapi_yaml)) {}

// The routes: method, path template ({...} = one path segment, passed to the handler in order)
// and handler. routes() and the OpenAPI check derive from it.
const std::vector<RestApi::Route>& RestApi::table() {
  static const std::vector<Route> t = {
      {"GET", "/healthz", &RestApi::get_health},
      {"GET", "/metrics", &RestApi::get_metrics},
      {"GET", "/v1/openapi.yaml", &RestApi::get_openapi},
      {"GET", "/", &RestApi::get_console},
      {"GET", "/console.js", &RestApi::get_console_js},
      {"GET", "/console.css", &RestApi::get_console_css},
      {"GET", "/v1/events", &RestApi::get_events},
      {"GET", "/v1/hosts", &RestApi::list_hosts},
      {"POST", "/v1/hosts", &RestApi::create_host},
      {"GET", "/v1/hosts/{id}", &RestApi::get_host},
      {"PUT", "/v1/hosts/{id}", &RestApi::put_host},
      {"DELETE", "/v1/hosts/{id}", &RestApi::delete_host},
      {"GET", "/v1/hosts/{id}/desired-state", &RestApi::get_desired_state},
      {"GET", "/v1/networks", &RestApi::list_networks},
      {"POST", "/v1/networks", &RestApi::create_network},
      {"GET", "/v1/networks/{id}", &RestApi::get_network},
      {"DELETE", "/v1/networks/{id}", &RestApi::delete_network},
      {"GET", "/v1/ports", &RestApi::list_ports},
      {"POST", "/v1/ports", &RestApi::create_port},
      {"GET", "/v1/ports/{id}", &RestApi::get_port},
      {"PUT", "/v1/ports/{id}", &RestApi::put_port},
      {"DELETE", "/v1/ports/{id}", &RestApi::delete_port},
      {"GET", "/v1/migrations", &RestApi::list_migrations},
      {"POST", "/v1/migrations", &RestApi::create_migration},
      {"GET", "/v1/migrations/{id}", &RestApi::get_migration},
      {"POST", "/v1/migrations/{id}/cancel", &RestApi::cancel_migration},
      {"POST", "/v1/migrations/{id}/approve", &RestApi::approve_migration},
      {"PUT", "/v1/migrations/{id}/measurement", &RestApi::put_measurement},
      {"GET", "/v1/agents", &RestApi::list_agents},
      {"GET", "/v1/audit", &RestApi::list_audit},
      {"GET", "/v1/inventory", &RestApi::list_inventory},
      {"GET", "/v1/network-mappings", &RestApi::list_mappings},
      {"GET", "/v1/network-mappings/{id}", &RestApi::get_mapping},
      {"PUT", "/v1/network-mappings/{id}", &RestApi::put_mapping},
      {"DELETE", "/v1/network-mappings/{id}", &RestApi::delete_mapping},
  };
  return t;
}

const std::vector<std::pair<std::string, std::string>>& RestApi::routes() {
  static const auto r = [] {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& route : table()) {
      std::string method = route.method;
      for (auto& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.emplace_back(method, route.pattern);
    }
    return out;
  }();
  return r;
}

std::optional<HttpResponse> RestApi::refusal(const std::string& method, const std::string& target,
                                             const std::string& authorization, bool agent_channel,
                                             bool has_body, Role cert_role) {
  const Role role = std::max(access_.role_of(authorization), cert_role);
  if (role == Role::none) {
    // The open endpoints take no body: one that comes with a body is not let in to be read.
    if (!agent_channel && !has_body && is_open(method, target)) return std::nullopt;
    metrics_.auth_refused("bad_token");
    return error(401, "unauthenticated", "missing or wrong bearer token (Authorization header)");
  }
  if (const char* why = Access::forbidden(role, method, agent_channel)) {
    metrics_.auth_refused("read_only");
    return error(403, "forbidden", why);
  }
  return not_here(method, target, agent_channel);
}

std::optional<HttpResponse> RestApi::not_here(const std::string& method, const std::string& target,
                                              bool agent_channel) const {
  if (!leadership_ || leadership_->leading()) return std::nullopt;
  // Reads are served from the follower's copy of the state, but which agents are connected is
  // known only where they are: the leader.
  // The same for the inventory, judged from the agents' reports, and for the live events.
  auto is = [&](const char* path) {
    return target == path || target.rfind(std::string(path) + "?", 0) == 0;
  };
  const bool leader_only = is("/v1/agents") || is("/v1/inventory") || is("/v1/events");
  if (!agent_channel && !leader_only && (method == "GET" || method == "HEAD")) return std::nullopt;
  const std::string leader = leadership_->leader();
  HttpResponse res;
  if (leader.empty()) {
    res = error(503, "not_leader",
                "this controller is a follower and no leader is known at the moment (an "
                "election is under way, or etcd cannot be reached); retry shortly");
    res.headers.emplace_back("Retry-After", "1");
    return res;
  }
  if (agent_channel) {
    res = error(503, "not_leader",
                "this controller is a follower; agents connect to the leader, " + leader);
  } else if (leader_only) {
    res = error(307, "not_leader", "agents are connected to the leader, " + leader);
  } else {
    // 307: the client repeats the same method and body at the leader.
    res = error(307, "not_leader",
                "this controller is a follower; writes go to the leader, " + leader);
  }
  res.headers.emplace_back("Location", leader + target);
  return res;
}

bool RestApi::is_open(const std::string& method, const std::string& target) {
  // The console's page and assets hold no data: the page asks for the token and sends it with
  // every request it makes (REST and the event stream), as cutoverctl does.
  return method == "GET" &&
         (target == "/healthz" || target == "/metrics" || target == "/v1/openapi.yaml" ||
          target == "/" || target == "/console.js" || target == "/console.css");
}

HttpResponse RestApi::handle(const HttpRequest& req) {
  const auto path = split_path(req.target);
  if (auto refused =
          refusal(req.method, req.target, req.authorization, false, false, req.certificate_role)) {
    return *refused;
  }
  try {
    auto res = route(req, path);
    if (leadership_ && !leadership_->leading() && leadership_->stale()) {
      // RFC 7234's stale warning: this follower has not heard from etcd for a while.
      res.headers.emplace_back("Warning", "110 cutover-controller \"Response is Stale\"");
    }
    return res;
  } catch (const ApiError& e) {
    return error(e.status(), e.code(), e.what(), e.field());
  } catch (const std::exception& e) {
    logger("rest")->error("{} {}: {}", req.method, req.target, e.what());
    return error(500, "internal", e.what());
  }
}

HttpResponse RestApi::route(const HttpRequest& req, const std::vector<std::string>& path) {
  bool path_known = false;
  for (const auto& r : table()) {
    const auto pattern = split_path(r.pattern);
    if (pattern.size() != path.size()) continue;
    Params params;
    bool match = true;
    for (size_t i = 0; match && i < pattern.size(); ++i) {
      if (pattern[i].front() == '{') {
        params.push_back(path[i]);
      } else {
        match = pattern[i] == path[i];
      }
    }
    if (!match) continue;
    path_known = true;
    if (req.method == r.method) return (this->*r.handler)(req, params);
  }
  if (path_known) {
    return error(405, "method_not_allowed", req.method + " is not supported on " + req.target);
  }
  return error(404, "not_found", "no route " + req.target);
}

HttpResponse RestApi::get_health(const HttpRequest&, const Params&) {
  nlohmann::json j = {{"status", "ok"}, {"generation", state_.generation()}};
  if (leadership_) {
    const bool leading = leadership_->leading();
    j["role"] = leading ? "leader" : "follower";
    const std::string leader = leadership_->leader();
    j["leader"] = leader.empty() ? nlohmann::json(nullptr) : nlohmann::json(leader);
    if (!leading) j["stale"] = leadership_->stale();
  }
  return ok(j);
}

HttpResponse RestApi::get_metrics(const HttpRequest&, const Params&) {
  Metrics::Gauges g{state_.generation(),        hub_.connected_count(), hub_.max_generation_lag(),
                    migrations_.active_count(), hub_.waiting_count(),   {}};
  for (const auto& [host, lag] : hub_.generation_lags()) g.lag_by_host[host.str()] = lag;
  std::string text = metrics_.render(g);
  const bool leading = !leadership_ || leadership_->leading();
  text +=
      "# HELP cutover_leader 1 when this controller leads (always, without --store etcd)\n"
      "# TYPE cutover_leader gauge\ncutover_leader " +
      std::to_string(leading ? 1 : 0) + "\n";
  if (leadership_) {
    text +=
        "# HELP cutover_elections_won_total Times this controller became the leader\n"
        "# TYPE cutover_elections_won_total counter\ncutover_elections_won_total " +
        std::to_string(leadership_->elections_won()) +
        "\n# HELP cutover_leaderships_lost_total Times this controller stepped down\n"
        "# TYPE cutover_leaderships_lost_total counter\ncutover_leaderships_lost_total " +
        std::to_string(leadership_->leaderships_lost()) + "\n";
  }
  return {200, std::move(text), "text/plain; version=0.0.4", {}};
}

HttpResponse RestApi::get_openapi(const HttpRequest&, const Params&) {
  return {200, openapi_, "application/yaml", {}};
}

namespace {
// Assets compiled in; nothing the page loads comes from elsewhere (the policy says so too).
HttpResponse asset(const char* body, const char* type) {
  return {200,
          body,
          type,
          {{"Cache-Control", "no-cache"},
           {"X-Content-Type-Options", "nosniff"},
           {"Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"}}};
}
}  // namespace

HttpResponse RestApi::get_console(const HttpRequest&, const Params&) {
  return asset(kConsoleHtml, "text/html; charset=utf-8");
}

HttpResponse RestApi::get_console_js(const HttpRequest&, const Params&) {
  return asset(kConsoleJs, "text/javascript; charset=utf-8");
}

HttpResponse RestApi::get_console_css(const HttpRequest&, const Params&) {
  return asset(kConsoleCss, "text/css; charset=utf-8");
}

HttpResponse RestApi::get_events(const HttpRequest&, const Params&) {
  HttpResponse res{200, "", "text/event-stream", {{"Cache-Control", "no-store"}}};
  res.event_stream = true;
  return res;
}

HttpResponse RestApi::list_hosts(const HttpRequest&, const Params&) {
  return ok(list(state_.hosts()));
}

HttpResponse RestApi::create_host(const HttpRequest& req, const Params&) {
  auto h = decode<Host>(req, [](const json& j) { return host_from_json(j); });
  if (state_.hosts().count(h.id)) {
    throw ApiError(409, "conflict", "id", "host '" + h.id.str() + "' already exists");
  }
  return ok(to_json(state_.put_host(h)), 201);
}

namespace {
template <typename Map, typename Id>
const typename Map::mapped_type& found(const Map& m, const Id& id, const char* what) {
  auto it = m.find(id);
  if (it == m.end()) {
    throw ApiError(404, "not_found", "", std::string("no ") + what + " '" + id.str() + "'");
  }
  return it->second;
}
}  // namespace

HttpResponse RestApi::get_host(const HttpRequest&, const Params& p) {
  return ok(to_json(found(state_.hosts(), path_id<HostId>(p[0]), "host")));
}

HttpResponse RestApi::put_host(const HttpRequest& req, const Params& p) {
  const auto id = path_id<HostId>(p[0]);
  auto h = decode<Host>(req, [](const json& j) { return host_from_json(j); });
  if (h.id != id) throw ApiError(422, "invalid", "id", "body id differs from the URL");
  return ok(to_json(state_.put_host(h)));
}

HttpResponse RestApi::delete_host(const HttpRequest&, const Params& p) {
  state_.delete_host(path_id<HostId>(p[0]));
  return {204, "", "application/json", {}};
}

HttpResponse RestApi::get_desired_state(const HttpRequest&, const Params& p) {
  const auto id = path_id<HostId>(p[0]);
  found(state_.hosts(), id, "host");
  return ok(to_json(state_.desired_for(id)));
}

HttpResponse RestApi::list_networks(const HttpRequest&, const Params&) {
  return ok(list(state_.networks()));
}

HttpResponse RestApi::create_network(const HttpRequest& req, const Params&) {
  auto net = decode<Network>(req, [](const json& j) { return network_from_json(j); });
  auto res = ok(to_json(state_.create_network(net)), 201);
  inventory_.refresh();  // metadata may name it
  return res;
}

HttpResponse RestApi::get_network(const HttpRequest&, const Params& p) {
  return ok(to_json(found(state_.networks(), path_id<NetworkId>(p[0]), "network")));
}

HttpResponse RestApi::delete_network(const HttpRequest&, const Params& p) {
  state_.delete_network(path_id<NetworkId>(p[0]));
  return {204, "", "application/json", {}};
}

HttpResponse RestApi::list_ports(const HttpRequest&, const Params&) {
  return ok(list(state_.ports()));
}

HttpResponse RestApi::create_port(const HttpRequest& req, const Params&) {
  auto port = decode<Port>(req, [](const json& j) { return port_from_json(j); });
  if (port.migrating_to) throw ApiError(422, "invalid", "migrating_to", "set by migrations only");
  if (port.previous_host) {
    throw ApiError(422, "invalid", "previous_host", "set by migrations only");
  }
  if (!port.carried_conns.empty()) {
    throw ApiError(422, "invalid", "carried_conns", "set by migrations only");
  }
  return ok(to_json(state_.create_port(port)), 201);
}

HttpResponse RestApi::get_port(const HttpRequest&, const Params& p) {
  return ok(to_json(found(state_.ports(), path_id<PortId>(p[0]), "port")));
}

HttpResponse RestApi::put_port(const HttpRequest& req, const Params& p) {
  const auto id = path_id<PortId>(p[0]);
  auto it = state_.ports().find(id);
  auto port = decode<Port>(req, [](const json& j) { return port_from_json(j); });
  if (port.id != id) throw ApiError(422, "invalid", "id", "body id differs from the URL");
  if (it != state_.ports().end() && port.migrating_to != it->second.migrating_to) {
    throw ApiError(422, "invalid", "migrating_to", "set by migrations only");
  }
  if (it != state_.ports().end() && port.previous_host != it->second.previous_host) {
    throw ApiError(422, "invalid", "previous_host", "set by migrations only");
  }
  // carried_conns is the controller's: a PUT keeps what the last migration carried.
  if (it != state_.ports().end() && !port.carried_conns.empty() &&
      port.carried_conns != it->second.carried_conns) {
    throw ApiError(422, "invalid", "carried_conns", "set by migrations only");
  }
  if (it != state_.ports().end() && port.ingress_allow) {
    // Kept only for addresses the port still has (and only while it is stateful).
    for (const auto& c : it->second.carried_conns) {
      if (std::find(port.ips.begin(), port.ips.end(), c.local_ip) != port.ips.end()) {
        port.carried_conns.push_back(c);
      }
    }
  }
  return ok(to_json(state_.replace_port(port)));
}

HttpResponse RestApi::delete_port(const HttpRequest&, const Params& p) {
  state_.delete_port(path_id<PortId>(p[0]));
  return {204, "", "application/json", {}};
}

HttpResponse RestApi::list_migrations(const HttpRequest& req, const Params&) {
  return ok(migrations_page(state_.migrations(), page_of(req.target)));
}

HttpResponse RestApi::create_migration(const HttpRequest& req, const Params&) {
  // Exactly one of "port" and "vm" (a libvirt domain name, resolved to its ports).
  auto [port, vm, to, carry, libvirt] = decode<
      std::tuple<std::optional<PortId>, std::string, HostId, bool, LibvirtMigrationSettings>>(
      req, [](const json& j) {
        JsonReader r(j, "");
        std::optional<PortId> port;
        const auto vm = r.optional_string("vm");
        if (!r.raw("port") && !vm) {
          throw ParseError("port", "required: the port to migrate (or \"vm\", a libvirt domain)");
        }
        if (r.raw("port")) {
          if (vm) throw ParseError("vm", "give either \"port\" or \"vm\", not both");
          port = r.parse_field<PortId>("port", r.required_string("port"),
                                       [](const std::string& s) { return PortId::parse(s); });
        } else if (vm->empty()) {
          throw ParseError("vm", "must not be empty");
        }
        auto to = r.parse_field<HostId>("to_host", r.required_string("to_host"),
                                        [](const std::string& s) { return HostId::parse(s); });
        const bool carry = r.optional_bool("carry_conntrack").value_or(true);
        LibvirtMigrationSettings libvirt;
        if (const auto* l = r.raw("libvirt")) libvirt = libvirt_settings_from_json(*l, "libvirt");
        r.finish();
        return std::make_tuple(port, vm.value_or(""), to, carry, libvirt);
      });
  auto mig = port ? migrations_.create(*port, to, "", carry, vm, libvirt)
                  : migrations_.create_vm(vm, to, "", carry, libvirt);
  return ok(to_json(mig), mig.state == MigrationState::rejected ? 403 : 201);
}

HttpResponse RestApi::get_migration(const HttpRequest&, const Params& p) {
  return ok(to_json(found(state_.migrations(), path_id<MigrationId>(p[0]), "migration")));
}

HttpResponse RestApi::cancel_migration(const HttpRequest&, const Params& p) {
  return ok(to_json(migrations_.cancel(path_id<MigrationId>(p[0]))));
}

HttpResponse RestApi::approve_migration(const HttpRequest&, const Params& p) {
  return ok(to_json(migrations_.approve(path_id<MigrationId>(p[0]))));
}

HttpResponse RestApi::put_measurement(const HttpRequest& req, const Params& p) {
  const auto id = path_id<MigrationId>(p[0]);
  auto m = decode<Measurement>(req, [](const json& j) { return measurement_from_json(j); });
  return ok(to_json(migrations_.record_measurement(id, m)));
}

HttpResponse RestApi::list_agents(const HttpRequest&, const Params&) {
  json arr = json::array();
  for (const auto& [host, info] : hub_.agents()) arr.push_back(to_json(host, info));
  return ok(arr);
}

HttpResponse RestApi::list_audit(const HttpRequest& req, const Params&) {
  return ok(audit_page(state_.audit(), page_of(req.target)));
}

HttpResponse RestApi::list_inventory(const HttpRequest&, const Params&) {
  json arr = json::array();
  for (const auto& e : inventory_.entries()) {
    json j = to_json(e.iface);  // as the agent reported it
    j["host"] = e.host.str();
    j["vm"] = e.vm;
    if (!e.port.empty()) j["port"] = e.port;
    if (!e.problem.empty()) {
      j["problem"] = e.problem;
      j["field"] = e.field;
    }
    arr.push_back(std::move(j));
  }
  return ok(arr);
}

HttpResponse RestApi::list_mappings(const HttpRequest&, const Params&) {
  json arr = json::array();
  for (const auto& [name, m] : state_.mappings()) arr.push_back(to_json(m));
  return ok(arr);
}

HttpResponse RestApi::get_mapping(const HttpRequest&, const Params& p) {
  auto it = state_.mappings().find(p[0]);
  if (it == state_.mappings().end()) {
    throw ApiError(404, "not_found", "", "no mapping for libvirt network '" + p[0] + "'");
  }
  return ok(to_json(it->second));
}

HttpResponse RestApi::put_mapping(const HttpRequest& req, const Params& p) {
  auto m = decode<NetworkMapping>(req, [&](json j) {
    // The URL names the libvirt network; the body may repeat it.
    if (j.is_object() && !j.contains("libvirt_network")) j["libvirt_network"] = p[0];
    return network_mapping_from_json(j);
  });
  if (m.libvirt_network != p[0]) {
    throw ApiError(422, "invalid", "libvirt_network", "body libvirt_network differs from the URL");
  }
  auto res = ok(to_json(state_.put_mapping(m)));
  inventory_.refresh();
  return res;
}

HttpResponse RestApi::delete_mapping(const HttpRequest&, const Params& p) {
  state_.delete_mapping(p[0]);
  return {204, "", "application/json", {}};
}

}  // namespace cutover::controller
