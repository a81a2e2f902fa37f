// RestApi: the controller's HTTP API as a pure function from request to response (no sockets),
// so every route and every error is testable in-process; HttpServer only moves bytes. Errors are
// {"error": {"code", "message", "field"}} with a 4xx status; nothing is stored unless the whole
// request is valid.
#pragma once

#include <optional>
#include <string>

#include "access.hpp"
#include "agent_hub.hpp"
#include "controller_state.hpp"
#include "inventory.hpp"
#include "leadership.hpp"
#include "metrics.hpp"
#include "migration_driver.hpp"

namespace cutover::controller {

struct HttpRequest {
  std::string method;
  std::string target;  // path and optional query
  std::string body;
  std::string authorization;           // the Authorization header, verbatim
  Role certificate_role = Role::none;  // what the client's verified TLS certificate grants
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // more header fields (Location)
  // GET /v1/events allowed: the HTTP server hands the connection to the EventFeed, which
  // streams from here on (the body is unused).
  bool event_stream = false;
};

class RestApi {
 public:
  static constexpr size_t kMaxBody = 1 << 20;

  RestApi(ControllerState& state, AgentHub& hub, MigrationDriver& migrations, Inventory& inventory,
          Metrics& metrics, Access access, std::string openapi_yaml);

  HttpResponse handle(const HttpRequest& req);
  // Among highly available controllers: a follower serves reads from its copy of the state
  // (marked stale when that may be behind), redirects writes to the leader (307) and turns
  // agents away (503 naming the leader). Not set: this controller is the only one.
  void set_leadership(const Leadership* leadership) { leadership_ = leadership; }
  Role role_of(const std::string& authorization) const { return access_.role_of(authorization); }
  // The 401 (no role) or 403 (a role that may not do this) for a request, counted in /metrics,
  // or nothing when it may go on. All HttpServer needs to refuse a request on its header, before
  // reading any body. `agent_channel`: the WebSocket upgrade on /v1/agent; `has_body`: a body
  // follows the header (never let in without a role).
  // `cert_role`: what a verified client certificate grants (TLS), whatever the token says.
  std::optional<HttpResponse> refusal(const std::string& method, const std::string& target,
                                      const std::string& authorization, bool agent_channel,
                                      bool has_body, Role cert_role = Role::none);
  // Served without the token: GET /healthz, /metrics, /v1/openapi.yaml.
  static bool is_open(const std::string& method, const std::string& target);
  // A follower's answer to a write or to an agent, or nothing when it may be served here.
  std::optional<HttpResponse> not_here(const std::string& method, const std::string& target,
                                       bool agent_channel) const;

  // Every (method, path template) the router serves (from its table); a test checks it against
  // the OpenAPI doc.
  static const std::vector<std::pair<std::string, std::string>>& routes();

 private:
  using Params = std::vector<std::string>;  // the path's {...} segments, in order
  using Handler = HttpResponse (RestApi::*)(const HttpRequest&, const Params&);
  struct Route {
    const char* method;
    const char* pattern;  // e.g. "/v1/hosts/{id}"
    Handler handler;
  };
  static const std::vector<Route>& table();
  // The handler of the route matching method and path; 405 when the path has routes but none for
  // the method, 404 when it has none.
  HttpResponse route(const HttpRequest& req, const std::vector<std::string>& path);
  HttpResponse get_health(const HttpRequest&, const Params&);
  HttpResponse get_metrics(const HttpRequest&, const Params&);
  HttpResponse get_openapi(const HttpRequest&, const Params&);
  HttpResponse get_console(const HttpRequest&, const Params&);
  HttpResponse get_console_js(const HttpRequest&, const Params&);
  HttpResponse get_console_css(const HttpRequest&, const Params&);
  HttpResponse get_events(const HttpRequest&, const Params&);
  HttpResponse list_hosts(const HttpRequest&, const Params&);
  HttpResponse create_host(const HttpRequest&, const Params&);
  HttpResponse get_host(const HttpRequest&, const Params&);
  HttpResponse put_host(const HttpRequest&, const Params&);
  HttpResponse delete_host(const HttpRequest&, const Params&);
  HttpResponse get_desired_state(const HttpRequest&, const Params&);
  HttpResponse list_networks(const HttpRequest&, const Params&);
  HttpResponse create_network(const HttpRequest&, const Params&);
  HttpResponse get_network(const HttpRequest&, const Params&);
  HttpResponse delete_network(const HttpRequest&, const Params&);
  HttpResponse list_ports(const HttpRequest&, const Params&);
  HttpResponse create_port(const HttpRequest&, const Params&);
  HttpResponse get_port(const HttpRequest&, const Params&);
  HttpResponse put_port(const HttpRequest&, const Params&);
  HttpResponse delete_port(const HttpRequest&, const Params&);
  HttpResponse list_migrations(const HttpRequest&, const Params&);
  HttpResponse create_migration(const HttpRequest&, const Params&);
  HttpResponse get_migration(const HttpRequest&, const Params&);
  HttpResponse cancel_migration(const HttpRequest&, const Params&);
  HttpResponse approve_migration(const HttpRequest&, const Params&);
  HttpResponse put_measurement(const HttpRequest&, const Params&);
  HttpResponse list_agents(const HttpRequest&, const Params&);
  HttpResponse list_audit(const HttpRequest&, const Params&);
  HttpResponse list_inventory(const HttpRequest&, const Params&);
  HttpResponse list_mappings(const HttpRequest&, const Params&);
  HttpResponse get_mapping(const HttpRequest&, const Params&);
  HttpResponse put_mapping(const HttpRequest&, const Params&);
  HttpResponse delete_mapping(const HttpRequest&, const Params&);
  // A stateful firewall (ingress_allow) is enforced by OVS conntrack only: refuse to place such
  // a port on a Linux-backend host rather than run it unfiltered.

  ControllerState& state_;
  AgentHub& hub_;
  MigrationDriver& migrations_;
  Inventory& inventory_;
  Metrics& metrics_;
  Access access_;
  const Leadership* leadership_ = nullptr;
  std::string openapi_;
};

}  // namespace cutover::controller
