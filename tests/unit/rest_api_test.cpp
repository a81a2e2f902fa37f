// Unit tests for RestApi in-process: every refusal has its status, code and field; nothing is
// stored on refusal; auth; and the router's routes agree with controller/openapi.yaml.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "controller_core.hpp"
#include "fake_agents.hpp"
#include "rest_api.hpp"

using namespace cutover;
using namespace cutover::controller;
using nlohmann::json;

namespace {

struct Rig : cutover::testing::ControllerCore {
  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& auth = "Bearer t0ken") {
    return api.handle({method, target, body, auth});
  }
  json err(const HttpResponse& r) { return json::parse(r.body)["error"]; }
};

}  // namespace

TEST(RestApi, AuthRequiredExceptHealthMetricsAndSpec) {
  Rig rig;
  EXPECT_EQ(rig.call("GET", "/v1/hosts", "", "").status, 401);
  EXPECT_EQ(rig.call("POST", "/v1/networks", R"({"id":"a","vni":1})", "Bearer wrong").status, 401);
  EXPECT_EQ(rig.call("POST", "/v1/networks", R"({"id":"a","vni":1})", "t0ken").status, 401);
  EXPECT_EQ(rig.err(rig.call("GET", "/v1/ports", "", "")).value("code", ""), "unauthenticated");
  EXPECT_EQ(rig.call("GET", "/healthz", "", "").status, 200);
  EXPECT_EQ(rig.call("GET", "/metrics", "", "").status, 200);
  EXPECT_EQ(rig.call("GET", "/v1/openapi.yaml", "", "").status, 200);
  EXPECT_TRUE(rig.state.networks().empty());
}

TEST(RestApi, AReadOnlyTokenReadsButNeitherWritesNorOpensTheAgentChannel) {
  Rig rig;
  ASSERT_EQ(rig.call("POST", "/v1/networks", R"({"id":"blue","vni":100})").status, 201);
  EXPECT_EQ(rig.call("GET", "/v1/networks", "", "Bearer r3ad").status, 200);
  const auto w = rig.call("POST", "/v1/networks", R"({"id":"red","vni":7})", "Bearer r3ad");
  EXPECT_EQ(w.status, 403);
  EXPECT_EQ(rig.err(w).value("code", ""), "forbidden");
  EXPECT_EQ(rig.call("DELETE", "/v1/networks/blue", "", "Bearer r3ad").status, 403);
  EXPECT_EQ(rig.state.networks().size(), 1u) << "nothing written";
  auto ws = rig.api.refusal("GET", "/v1/agent", "Bearer r3ad", true, false);
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->status, 403);
  EXPECT_FALSE(rig.api.refusal("GET", "/v1/agent", "Bearer t0ken", true, false));
  EXPECT_EQ(rig.api.refusal("GET", "/healthz", "", true, false)->status, 401)
      << "no open agent channel";
  EXPECT_EQ(rig.api.refusal("GET", "/healthz", "", false, true)->status, 401) << "with a body";
  EXPECT_FALSE(rig.api.refusal("GET", "/healthz", "", false, false));
  const auto m = rig.metrics.render({});
  EXPECT_NE(m.find(R"(cutover_auth_refusals_total{reason="read_only"} 3)"), std::string::npos) << m;
}

TEST(RestApi, TokensCompareInConstantTimeWithoutALengthShortcut) {
  EXPECT_TRUE(constant_time_equal("Bearer abc", "Bearer abc"));
  EXPECT_FALSE(constant_time_equal("Bearer abc", "Bearer abd"));
  EXPECT_FALSE(constant_time_equal("Bearer ab", "Bearer abc"));
  EXPECT_FALSE(constant_time_equal("Bearer abc", "Bearer ab"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_TRUE(constant_time_equal("", ""));
  Access none("", "");
  EXPECT_EQ(none.role_of(""), Role::admin) << "--insecure-no-token";
  Access both("a", "b");
  EXPECT_EQ(both.role_of("Bearer a"), Role::admin);
  EXPECT_EQ(both.role_of("Bearer b"), Role::reader);
  EXPECT_EQ(both.role_of("Bearer "), Role::none);
  EXPECT_EQ(Access("a", "").role_of("Bearer "), Role::none) << "no read token: no reader role";
}

TEST(RestApi, BytesThatAreNotUtf8InThePathAreAnsweredNotThrown) {
  Rig rig;
  const auto r = rig.call("GET", "/v1/ports/\xff\xfe-x");
  EXPECT_EQ(r.status, 404);
  EXPECT_FALSE(json::parse(r.body, nullptr, false).is_discarded()) << r.body;
  EXPECT_EQ(rig.err(r).value("code", ""), "not_found");
  EXPECT_EQ(rig.call("DELETE", "/v1/networks/\xc3").status, 404);
}

TEST(RestApi, EveryRefusalNamesCodeAndField) {
  Rig rig;
  ASSERT_EQ(rig.call("POST", "/v1/networks", R"({"id":"blue","vni":100})").status, 201);
  ASSERT_EQ(rig.call("POST", "/v1/hosts", R"({"id":"h1","underlay_ip":"10.0.0.1"})").status, 201);
  ASSERT_EQ(rig.call("POST", "/v1/ports",
                     R"({"id":"p1","mac":"52:54:00:00:00:01","network":"blue","host":"h1"})")
                .status,
            201);
  struct Case {
    const char* method;
    const char* target;
    std::string body;
    int status;
    const char* code;
    const char* field;  // nullptr = JSON null
  };
  const std::vector<Case> cases = {
      {"POST", "/v1/ports", "{\"id\": ", 400, "malformed_json", nullptr},
      {"POST", "/v1/ports", "[]", 422, "invalid", nullptr},
      {"POST", "/v1/ports", R"({"id":"p2","mac":"52:54:00:00:00:02","network":"blue","colour":1})",
       422, "invalid", "colour"},
      {"POST", "/v1/ports", R"({"id":"p2","mac":7,"network":"blue"})", 422, "invalid", "mac"},
      {"POST", "/v1/ports", R"({"id":"p2","mac":"52:54:00:00:00","network":"blue"})", 422,
       "invalid", "mac"},
      {"POST", "/v1/ports",
       R"({"id":"p2","mac":"52:54:00:00:00:02","ips":["10.0.0.300"],"network":"blue"})", 422,
       "invalid", "ips[0]"},
      {"POST", "/v1/ports", R"({"id":"p2","mac":"52:54:00:00:00:01","network":"blue"})", 409,
       "conflict", "mac"},
      {"POST", "/v1/ports", R"({"id":"p2","mac":"52:54:00:00:00:02","network":"nope"})", 422,
       "unknown_reference", "network"},
      {"POST", "/v1/ports", R"({"id":"p1","mac":"52:54:00:00:00:03","network":"blue"})", 409,
       "conflict", "id"},
      {"POST", "/v1/ports",
       R"({"id":"p2","mac":"52:54:00:00:00:02","ips":["10.0.0.2"],"network":"blue",)"
       R"("carried_conns":[{"protocol":"tcp","local_ip":"10.0.0.2","local_port":1,)"
       R"("remote_ip":"10.0.0.9","remote_port":2}]})",
       422, "invalid", "carried_conns"},
      {"POST", "/v1/ports",
       R"({"id":"p2","mac":"52:54:00:00:00:02","network":"blue","ingress_allow":[{"protocol":"gre"}]})",
       422, "invalid", "ingress_allow[0].protocol"},
      {"POST", "/v1/migrations", R"({"port":"p1","to_host":"h9","carry_conntrack":"no"})", 422,
       "invalid", "carry_conntrack"},
      {"POST", "/v1/networks", R"({"id":"red","vni":16777216})", 422, "invalid", "vni"},
      {"POST", "/v1/networks", R"({"id":"red","vni":"7"})", 422, "invalid", "vni"},
      {"POST", "/v1/networks", R"({"id":"red","vni":100})", 409, "conflict", "vni"},
      {"POST", "/v1/hosts", R"({"id":"h2","underlay_ip":"10.0.0"})", 422, "invalid", "underlay_ip"},
      {"POST", "/v1/hosts", R"({"id":"bad id","underlay_ip":"10.0.0.2"})", 422, "invalid", "id"},
      {"PUT", "/v1/ports/p1", R"({"id":"p9","mac":"52:54:00:00:00:01","network":"blue"})", 422,
       "invalid", "id"},
      {"POST", "/v1/ports", std::string(RestApi::kMaxBody + 1, ' '), 413, "too_large", nullptr},
      {"GET", "/v1/ports/nope", "", 404, "not_found", nullptr},
      {"GET", "/v1/ports/bad%20id", "", 404, "not_found", nullptr},
      {"DELETE", "/v1/networks/blue", "", 409, "in_use", nullptr},
      {"GET", "/v1/migrations/m404", "", 404, "not_found", nullptr},
      {"POST", "/v1/migrations", R"({"port":"p1"})", 422, "invalid", "to_host"},
      {"POST", "/v1/migrations", R"({"port":"p1","to_host":"h1"})", 422, "invalid", "to_host"},
      {"POST", "/v1/migrations", R"({"port":"p1","to_host":"h1","now":true})", 422, "invalid",
       "now"},
      {"POST", "/v1/migrations", R"({"port":"p1","vm":"web","to_host":"h1"})", 422, "invalid",
       "vm"},
      {"POST", "/v1/migrations", R"({"vm":"","to_host":"h1"})", 422, "invalid", "vm"},
      {"POST", "/v1/migrations", R"({"vm":7,"to_host":"h1"})", 422, "invalid", "vm"},
      {"POST", "/v1/migrations", R"({"to_host":"h1"})", 422, "invalid", "port"},
      {"POST", "/v1/migrations", R"({"vm":"web","to_host":"h1"})", 422, "unknown_reference", "vm"},
      {"PATCH", "/v1/ports/p1", "", 405, "method_not_allowed", nullptr},
      {"GET", "/v2/ports", "", 404, "not_found", nullptr},
  };
  const auto generation = rig.state.generation();
  for (const auto& c : cases) {
    auto r = rig.call(c.method, c.target, c.body);
    SCOPED_TRACE(std::string(c.method) + " " + c.target + " " + c.body.substr(0, 80));
    EXPECT_EQ(r.status, c.status);
    auto e = rig.err(r);
    EXPECT_EQ(e.value("code", ""), c.code);
    if (c.field) {
      EXPECT_EQ(e["field"], c.field);
    } else {
      EXPECT_TRUE(e["field"].is_null()) << e.dump();
    }
    EXPECT_FALSE(e.value("message", "").empty());
  }
  EXPECT_EQ(rig.state.generation(), generation) << "a refused request changed the state";
  EXPECT_EQ(rig.state.ports().size(), 1u);
}

TEST(RestApi, CrudRoundTrip) {
  Rig rig;
  rig.call("POST", "/v1/networks", R"({"id":"blue","vni":100,"mtu":1400})");
  rig.call("POST", "/v1/hosts", R"({"id":"h1","underlay_ip":"10.0.0.1","labels":{"zone":"a"}})");
  auto p =
      rig.call("POST", "/v1/ports", R"({"id":"p1","mac":"52:54:00:00:00:01","network":"blue"})");
  EXPECT_EQ(p.status, 201);
  auto placed = rig.call("PUT", "/v1/ports/p1",
                         R"({"id":"p1","mac":"52:54:00:00:00:01","network":"blue","host":"h1"})");
  EXPECT_EQ(placed.status, 200);
  EXPECT_EQ(json::parse(rig.call("GET", "/v1/ports/p1").body)["host"], "h1");
  EXPECT_EQ(json::parse(rig.call("GET", "/v1/networks/blue").body)["mtu"], 1400);
  EXPECT_EQ(json::parse(rig.call("GET", "/v1/hosts/h1/desired-state").body)["ports"].size(), 1u);
  EXPECT_EQ(rig.call("DELETE", "/v1/ports/p1").status, 204);
  EXPECT_EQ(rig.call("DELETE", "/v1/networks/blue").status, 204);
  EXPECT_EQ(json::parse(rig.call("GET", "/v1/networks").body).size(), 0u);
  auto m = rig.call("GET", "/metrics", "", "");
  EXPECT_NE(m.body.find("cutover_generation 6"), std::string::npos) << m.body;
  EXPECT_EQ(m.content_type.rfind("text/plain", 0), 0u);
}

TEST(RestApi, RoutesAgreeWithOpenApiDocument) {
  std::ifstream in(CUTOVER_OPENAPI_PATH);
  ASSERT_TRUE(in) << CUTOVER_OPENAPI_PATH;
  std::set<std::pair<std::string, std::string>> documented;
  std::string line, path;
  const std::regex path_re(R"(^  (/[^:]*):\s*$)");
  const std::regex method_re(R"(^    (get|put|post|delete|patch):)");
  bool in_paths = false;
  while (std::getline(in, line)) {
    if (line == "paths:") in_paths = true;
    if (line.rfind("components:", 0) == 0) in_paths = false;
    if (!in_paths) continue;
    std::smatch m;
    if (std::regex_match(line, m, path_re)) path = m[1];
    if (std::regex_search(line, m, method_re)) documented.insert({m[1], path});
  }
  const auto& routes = RestApi::routes();
  std::set<std::pair<std::string, std::string>> served(routes.begin(), routes.end());
  EXPECT_EQ(documented, served);
  // And every served route answers something other than "no route".
  Rig rig;
  for (const auto& [method, tmpl] : served) {
    std::string target = std::regex_replace(tmpl, std::regex(R"(\{id\})"), "x1");
    std::string upper = method;
    for (auto& c : upper) c = static_cast<char>(std::toupper(c));
    auto r = rig.call(upper, target, "{}");
    if (r.status == 404) {
      EXPECT_NE(rig.err(r).value("message", "").find("no "), std::string::npos);
      EXPECT_EQ(rig.err(r).value("message", "").find("no route"), std::string::npos)
          << upper << " " << target;
    }
  }
}

TEST(RestApi, MigrationsAndAuditPageByIdAndSeq) {
  Rig rig;
  ASSERT_EQ(rig.call("POST", "/v1/networks", R"({"id":"blue","vni":100})").status, 201);
  for (const char* h : {"h1", "h2"}) {
    ASSERT_EQ(rig.call("POST", "/v1/hosts",
                       std::string(R"({"id":")") + h + R"(","underlay_ip":"10.0.0.)" +
                           (h[1] == '1' ? "1" : "2") + R"("})")
                  .status,
              201);
  }
  ASSERT_EQ(rig.call("POST", "/v1/ports",
                     R"({"id":"p1","mac":"52:54:00:00:00:01","network":"blue","host":"h1"})")
                .status,
            201);
  // Twelve migrations (created and cancelled in turn): m1..m12, where m10 < m2 as strings.
  for (int i = 1; i <= 12; ++i) {
    ASSERT_EQ(rig.call("POST", "/v1/migrations", R"({"port":"p1","to_host":"h2"})").status, 201);
    ASSERT_EQ(rig.call("POST", "/v1/migrations/m" + std::to_string(i) + "/cancel").status, 200);
  }
  auto ids = [&](const std::string& target) {
    std::vector<std::string> out;
    for (const auto& m : json::parse(rig.call("GET", target).body)) out.push_back(m["id"]);
    return out;
  };
  EXPECT_EQ(ids("/v1/migrations").size(), 12u) << "no limit: everything, as before";
  EXPECT_EQ(ids("/v1/migrations?limit=3"), (std::vector<std::string>{"m1", "m2", "m3"}));
  EXPECT_EQ(ids("/v1/migrations?limit=3&after=m8"), (std::vector<std::string>{"m9", "m10", "m11"}));
  EXPECT_EQ(ids("/v1/migrations?after=m11&limit=3"), (std::vector<std::string>{"m12"}));
  // Paging through gives every migration once, in order.
  std::vector<std::string> all, page;
  std::string after;
  do {
    page = ids("/v1/migrations?limit=5" + (after.empty() ? "" : "&after=" + after));
    all.insert(all.end(), page.begin(), page.end());
    if (!page.empty()) after = page.back();
  } while (page.size() == 5);
  EXPECT_EQ(all, ids("/v1/migrations"));

  auto seqs = [&](const std::string& target) {
    std::vector<int> out;
    for (const auto& e : json::parse(rig.call("GET", target).body)) out.push_back(e["seq"]);
    return out;
  };
  const auto every = seqs("/v1/audit");
  ASSERT_GE(every.size(), 24u);
  EXPECT_EQ(seqs("/v1/audit?limit=2"), (std::vector<int>{1, 2}));
  EXPECT_EQ(seqs("/v1/audit?limit=2&after=5"), (std::vector<int>{6, 7}));
  EXPECT_EQ(seqs("/v1/audit?limit=2&after=" + std::to_string(every.back())), std::vector<int>{});

  for (const char* bad : {"/v1/migrations?limit=0", "/v1/migrations?limit=10001",
                          "/v1/migrations?limit=x", "/v1/audit?limit=-1"}) {
    auto r = rig.call("GET", bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(rig.err(r)["field"], "limit") << bad;
  }
  auto r = rig.call("GET", "/v1/audit?limit=5&after=m3");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(rig.err(r)["field"], "after");
}

TEST(RestApi, AMigrationsLibvirtSettingsAreCheckedStoredAndShown) {
  Rig rig;
  ASSERT_EQ(rig.call("POST", "/v1/networks", R"({"id":"blue","vni":100})").status, 201);
  ASSERT_EQ(rig.call("POST", "/v1/hosts", R"({"id":"h1","underlay_ip":"10.0.0.1"})").status, 201);
  ASSERT_EQ(rig.call("POST", "/v1/hosts", R"({"id":"h2","underlay_ip":"10.0.0.2"})").status, 201);
  ASSERT_EQ(rig.call("POST", "/v1/ports",
                     R"({"id":"p1","mac":"52:54:00:00:00:01","network":"blue","host":"h1"})")
                .status,
            201);
  for (const auto& [body, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"port":"p1","to_host":"h2","libvirt":{"bandwidth_mib_s":0}})",
            "libvirt.bandwidth_mib_s"},
           {R"({"port":"p1","to_host":"h2","libvirt":{"persist":1}})", "libvirt.persist"},
           {R"({"port":"p1","to_host":"h2","libvirt":{"postcopy":"yes"}})", "libvirt.postcopy"},
           {R"({"port":"p1","to_host":"h2","libvirt":{"precopy":true}})", "libvirt.precopy"},
           {R"({"port":"p1","to_host":"h2","libvirt":"fast"})", "libvirt"}}) {
    const auto r = rig.call("POST", "/v1/migrations", body);
    EXPECT_EQ(r.status, 422) << body;
    EXPECT_EQ(rig.err(r).value("field", ""), field) << body;
  }
  EXPECT_TRUE(rig.state.migrations().empty()) << "nothing stored on refusal";
  const auto r = rig.call("POST", "/v1/migrations",
                          R"({"port":"p1","to_host":"h2","libvirt":{"persist":false,)"
                          R"("bandwidth_mib_s":300,"postcopy":true}})");
  ASSERT_EQ(r.status, 201) << r.body;
  const auto shown = json::parse(rig.call("GET", "/v1/migrations/m1").body)["libvirt"];
  EXPECT_EQ(shown, json::parse(R"({"persist":false,"bandwidth_mib_s":300,"postcopy":true})"));
  // Restarted, the controller still knows what was asked.
  ControllerState reloaded(rig.store);
  EXPECT_EQ(reloaded.migrations().begin()->second.libvirt.bandwidth_mib_s, 300);
}
