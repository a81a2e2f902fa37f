// cutover-controller: REST API + agent channel + migration state machine over an embedded SQLite
// store, or over etcd among highly available controllers. Flags and environment are read only
// here; ControllerNode runs the rest from plain structs.
#include <cstdlib>
#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <sys/resource.h>

#include <boost/asio.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "agent_hub.hpp"
#include "asio_scheduler.hpp"
#include "controller_node.hpp"
#include "controller_state.hpp"
#include "etcd_store.hpp"
#include "http_server.hpp"
#include "leader_election.hpp"
#include "logging.hpp"
#include "migration_driver.hpp"
#include "options.hpp"
#include "rest_api.hpp"
#include "retrying_scheduler.hpp"
#include "sqlite_store.hpp"
#include "tls.hpp"

namespace cutover::controller {
extern const char* const kOpenApiYaml;
}

using namespace cutover;
using namespace cutover::controller;

namespace {

struct ControllerConfig {
  std::string listen = "127.0.0.1:8180";
  std::string db = "/var/lib/cutover/controller.db";
  std::string store;  // sqlite:PATH or etcd:URL[,URL...]; empty: sqlite:db
  std::string advertise_url;
  std::string etcd_prefix = "/cutover";
  std::string etcd_ca, etcd_cert, etcd_key;
  int64_t etcd_timeout_ms = 1000;
  int64_t etcd_max_txn_ops = 128;
  int64_t lease_ttl_s = 2;
  std::string token;
  std::string token_file;
  std::string read_token_file;
  TlsFiles tls;
  std::string read_token;  // from read_token_file
  bool insecure_no_token = false;
  bool insecure_clear_text = false;
  std::string port_file;
  bool require_approval = false;
  int64_t max_concurrent_per_host = 4;
  std::string forbid;  // "portlabel:hostlabel,..."
  int64_t prepare_timeout_ms = 30000;
  int64_t activation_timeout_ms = 300000;
  int64_t abort_timeout_ms = 30000;
  int64_t conntrack_carry_ttl_s = 600;
  int64_t forward_grace_ms = 2000;
  std::string log_level = "info";
  std::string log_format = "text";
  int64_t max_connections = 4096;
  int64_t max_unauthenticated = 256;
  int64_t header_timeout_ms = 10000;
  int64_t idle_timeout_ms = 120000;
  int64_t hello_timeout_ms = 10000;
  int64_t agent_send_queue_bytes = 16 << 20;
  int64_t retention_days = 30;
  int64_t retention_entries = 100000;
  bool no_inventory = false;
  int64_t inventory_retire_ms = 60000;
};

struct StoreChoice {
  bool etcd = false;
  std::string path;                    // sqlite
  std::vector<std::string> endpoints;  // etcd
};

StoreChoice parse_store(const ControllerConfig& cfg) {
  StoreChoice c;
  if (cfg.store.empty()) {
    c.path = cfg.db;
  } else if (cfg.store.rfind("sqlite:", 0) == 0 && cfg.store.size() > 7) {
    c.path = cfg.store.substr(7);
  } else if (cfg.store.rfind("etcd:", 0) == 0) {
    c.etcd = true;
    try {
      c.endpoints = parse_etcd_endpoints(cfg.store.substr(5));
    } catch (const std::invalid_argument& e) {
      throw ParseError("--store", e.what());
    }
  } else {
    throw ParseError("--store",
                     "expected sqlite:PATH or etcd:URL[,URL...], got '" + cfg.store + "'");
  }
  if (!c.etcd) return c;
  if (cfg.advertise_url.rfind("http://", 0) != 0 && cfg.advertise_url.rfind("https://", 0) != 0) {
    throw ParseError(
        "--advertise-url",
        "with --store etcd every controller needs the URL the others, agents and "
        "clients reach it at (http[s]://HOST:PORT), e.g. https://ctl1.example.net:8180");
  }
  if (cfg.etcd_prefix.empty() || cfg.etcd_prefix.front() != '/') {
    throw ParseError("--etcd-prefix", "must start with '/', e.g. /cutover");
  }
  return c;
}

int64_t in_range(int64_t v, int64_t lo, int64_t hi, const char* flag) {
  if (v < lo || v > hi) {
    throw ParseError(flag, "must be " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return v;
}

std::vector<PlacementRule> parse_forbid(const std::string& text) {
  std::vector<PlacementRule> rules;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    auto colon = item.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == item.size()) {
      throw ParseError("--forbid", "expected PORT_LABEL:HOST_LABEL, got '" + item + "'");
    }
    rules.push_back({item.substr(0, colon), item.substr(colon + 1)});
  }
  return rules;
}

boost::asio::ip::tcp::endpoint parse_listen(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) throw ParseError("--listen", "expected ADDRESS:PORT");
  boost::system::error_code ec;
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto addr = boost::asio::ip::make_address(host, ec);
  if (ec) throw ParseError("--listen", "bad address '" + host + "'");
  int port = -1;
  try {
    port = std::stoi(text.substr(colon + 1));
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) throw ParseError("--listen", "bad port in '" + text + "'");
  return {addr, static_cast<uint16_t>(port)};
}

}  // namespace

int main(int argc, char** argv) {
  ControllerConfig cfg;
  Options opts("cutover-controller",
               "Holds cutover's versioned desired state, serves the REST API and the agent "
               "channel, and drives migrations.");
  opts.add("listen", &cfg.listen, "ADDRESS:PORT for REST and agents (port 0 = pick one)");
  opts.add("db", &cfg.db, "SQLite database file (created if missing); same as --store sqlite:PATH");
  opts.add("store", &cfg.store,
           "where the desired state lives: sqlite:PATH (one controller) or etcd:URL[,URL...] "
           "(highly available: every controller on the same etcd cluster, one leads)");
  opts.add("advertise-url", &cfg.advertise_url,
           "with etcd: this controller's URL as agents and clients reach it (followers redirect "
           "to the leader's)");
  opts.add("etcd-prefix", &cfg.etcd_prefix, "with etcd: the key prefix cutover owns");
  opts.add("etcd-ca", &cfg.etcd_ca, "with https:// etcd endpoints: PEM CA of etcd's certificates");
  opts.add("etcd-cert", &cfg.etcd_cert, "PEM client certificate for etcd (with --etcd-key)");
  opts.add("etcd-key", &cfg.etcd_key, "PEM key of --etcd-cert");
  opts.add("etcd-timeout-ms", &cfg.etcd_timeout_ms,
           "how long one etcd member gets to answer before the next one is asked");
  opts.add("etcd-max-txn-ops", &cfg.etcd_max_txn_ops,
           "etcd's --max-txn-ops (operations per transaction); a larger change is refused");
  opts.add("lease-ttl", &cfg.lease_ttl_s,
           "with etcd: seconds a leader's lease outlives its last keepalive; failover takes about "
           "this long (etcd rounds it up to 1.5 x its election timeout)");
  opts.add_secret("token", &cfg.token,
                  "shared bearer token for agents and REST (prefer --token-file)");
  opts.add("token-file", &cfg.token_file, "file whose first line is the shared token");
  opts.add("tls-cert", &cfg.tls.cert,
           "PEM certificate for HTTPS and wss:// (cutoverctl pki issue NAME --role controller); "
           "with --tls-key and --tls-ca. Without TLS everything travels in clear text");
  opts.add("tls-key", &cfg.tls.key, "PEM key of --tls-cert");
  opts.add("tls-ca", &cfg.tls.ca,
           "PEM CA that signs agents' and clients' certificates; with TLS an agent must show one "
           "naming its host id (role agent)");
  opts.add("tls-crl", &cfg.tls.crl,
           "PEM revocation list (cutoverctl pki revoke), re-read on SIGHUP");
  opts.add("read-token-file", &cfg.read_token_file,
           "file whose first line is a read-only REST token: GET only, never the agent channel");
  opts.add("insecure-clear-text", &cfg.insecure_clear_text,
           "listen on a non-loopback address without TLS (tokens and state in clear text; "
           "never in production)");
  opts.add("insecure-no-token", &cfg.insecure_no_token,
           "accept unauthenticated requests (tests only)");
  opts.add("port-file", &cfg.port_file, "write the port actually listened on here");
  opts.add("require-approval", &cfg.require_approval,
           "migrations wait in pending_approval until POST /v1/migrations/{id}/approve");
  opts.add("max-concurrent-per-host", &cfg.max_concurrent_per_host,
           "active migrations allowed per host (source or destination)");
  opts.add("forbid", &cfg.forbid, "placement rules PORT_LABEL:HOST_LABEL,... (e.g. pci:public)");
  opts.add("prepare-timeout-ms", &cfg.prepare_timeout_ms,
           "roll back when the destination and VTEPs have not ACKed the prepare by then");
  opts.add("activation-timeout-ms", &cfg.activation_timeout_ms,
           "roll back when the port has not come up on the destination by then (before the "
           "VM's pause; after it the migration is carried forward)");
  opts.add("abort-timeout-ms", &cfg.abort_timeout_ms,
           "how long a rolling_back migration waits for the source's answer to the abort of "
           "libvirt's job before the agents' reports decide");
  opts.add("conntrack-carry-ttl", &cfg.conntrack_carry_ttl_s,
           "seconds after a migration ends that the destination keeps admitting the connections "
           "carried from the source's conntrack (by then the VM's own packets have committed "
           "them there)");
  opts.add("forward-grace-ms", &cfg.forward_grace_ms,
           "how long the host a VM left keeps forwarding its frames to the new host after every "
           "VTEP applied the new location (frames in flight when they switched)");
  opts.add("max-connections", &cfg.max_connections,
           "open connections (REST clients and agents together) beyond which new ones are "
           "answered 503 and closed; kept below the open-file limit");
  opts.add("max-unauthenticated", &cfg.max_unauthenticated,
           "connections that have not presented the token yet beyond which new ones are refused");
  opts.add("header-timeout-ms", &cfg.header_timeout_ms,
           "a connection that has not shown the token must send each request's header within "
           "this");
  opts.add("idle-timeout-ms", &cfg.idle_timeout_ms,
           "an authenticated keep-alive connection is closed after this long without a request "
           "(also the limit for receiving a body)");
  opts.add("hello-timeout-ms", &cfg.hello_timeout_ms,
           "an agent WebSocket must send its hello within this after the upgrade");
  opts.add("agent-send-queue-bytes", &cfg.agent_send_queue_bytes,
           "bytes queued for one agent beyond which it is disconnected (it reconnects and gets "
           "its whole slice); keep it several times the largest slice");
  opts.add("no-inventory", &cfg.no_inventory,
           "make no ports from the VMs the agents report (libvirt's domain XML); ports are then "
           "only made by hand");
  opts.add("inventory-retire-ms", &cfg.inventory_retire_ms,
           "a port made from a VM's definition is retired this long after no host runs the VM "
           "any more (0: never)");
  opts.add("retention-days", &cfg.retention_days,
           "audit entries and finished migrations older than this many days are dropped "
           "(checked hourly)");
  opts.add("retention-entries", &cfg.retention_entries,
           "the audit log, and the finished migrations, keep at most this many entries each "
           "(the oldest go first; the newest migration always stays)");
  opts.add("log-level", &cfg.log_level, "trace, debug, info, warn, error");
  opts.add("log-format", &cfg.log_format, "text or json");

  LogConfig log_cfg;
  boost::asio::ip::tcp::endpoint listen;
  MigrationPolicy policy;
  HttpLimits limits;
  Retention retention;
  InventoryPolicy inventory;
  StoreChoice store;
  try {
    if (!opts.parse(argc, argv)) return 0;
    store = parse_store(cfg);
    in_range(cfg.etcd_timeout_ms, 10, 60000, "--etcd-timeout-ms");
    in_range(cfg.etcd_max_txn_ops, 16, 1000000, "--etcd-max-txn-ops");
    in_range(cfg.lease_ttl_s, 1, 60, "--lease-ttl");
    log_cfg.level = parse_log_level(cfg.log_level, "--log-level");
    log_cfg.format = parse_log_format(cfg.log_format, "--log-format");
    log_cfg.journal = stderr_is_journal(std::getenv("JOURNAL_STREAM"));
    listen = parse_listen(cfg.listen);
    if (store.etcd && listen.port() == 0) {
      throw ParseError("--listen",
                       "with --store etcd give a fixed port (--advertise-url names it)");
    }
    if (!cfg.tls.any() && !listen.address().is_loopback() && !cfg.insecure_clear_text) {
      throw ParseError("--listen",
                       "without TLS the controller listens on loopback only (" + cfg.listen +
                           " is not): give --tls-cert, --tls-key and --tls-ca (cutoverctl pki; "
                           "docs/install.md, TLS), or listen on 127.0.0.1");
    }
    if (!cfg.token_file.empty()) cfg.token = read_token_file(cfg.token_file);
    if (!cfg.read_token_file.empty()) {
      cfg.read_token = read_token_file(cfg.read_token_file, "--read-token-file");
    }
    if (cfg.token.empty() && !cfg.insecure_no_token) {
      throw ParseError("--token",
                       "a shared token is required (--token-file FILE or --token T); "
                       "--insecure-no-token disables authentication for tests");
    }
    if (!cfg.read_token.empty() && constant_time_equal(cfg.read_token, cfg.token)) {
      throw ParseError("--read-token-file", "the read-only token must differ from the shared one");
    }
    policy.forbid = parse_forbid(cfg.forbid);
    policy.require_approval = cfg.require_approval;
    if (cfg.max_concurrent_per_host < 1)
      throw ParseError("--max-concurrent-per-host", "must be >= 1");
    policy.max_concurrent_per_host = cfg.max_concurrent_per_host;
    policy.prepare_timeout = std::chrono::milliseconds(cfg.prepare_timeout_ms);
    policy.activation_timeout = std::chrono::milliseconds(cfg.activation_timeout_ms);
    policy.abort_timeout = std::chrono::milliseconds(
        in_range(cfg.abort_timeout_ms, 100, 3600000, "--abort-timeout-ms"));
    if (cfg.conntrack_carry_ttl_s < 1 || cfg.conntrack_carry_ttl_s > 30 * 86400) {
      throw ParseError("--conntrack-carry-ttl", "must be 1 to 2592000 (30 days)");
    }
    policy.carried_conns_ttl = std::chrono::seconds(cfg.conntrack_carry_ttl_s);
    if (cfg.forward_grace_ms < 0 || cfg.forward_grace_ms > 3600000) {
      throw ParseError("--forward-grace-ms", "must be 0 to 3600000 (an hour)");
    }
    policy.forward_grace = std::chrono::milliseconds(cfg.forward_grace_ms);
    limits.max_connections =
        static_cast<size_t>(in_range(cfg.max_connections, 1, 1 << 20, "--max-connections"));
    limits.max_unauthenticated =
        static_cast<size_t>(in_range(cfg.max_unauthenticated, 1, 1 << 20, "--max-unauthenticated"));
    limits.header_timeout = std::chrono::milliseconds(
        in_range(cfg.header_timeout_ms, 100, 3600000, "--header-timeout-ms"));
    limits.idle_timeout = std::chrono::milliseconds(
        in_range(cfg.idle_timeout_ms, 100, 86400000, "--idle-timeout-ms"));
    limits.hello_timeout = std::chrono::milliseconds(
        in_range(cfg.hello_timeout_ms, 100, 3600000, "--hello-timeout-ms"));
    limits.agent_send_queue_bytes = static_cast<size_t>(in_range(
        cfg.agent_send_queue_bytes, 1 << 16, int64_t{1} << 34, "--agent-send-queue-bytes"));
    retention.max_age_us =
        in_range(cfg.retention_days, 1, 36500, "--retention-days") * 86400 * int64_t{1000000};
    retention.max_entries =
        static_cast<size_t>(in_range(cfg.retention_entries, 1, 100000000, "--retention-entries"));
    inventory.enabled = !cfg.no_inventory;
    inventory.retire_after = std::chrono::milliseconds(
        in_range(cfg.inventory_retire_ms, 0, 30LL * 86400000, "--inventory-retire-ms"));
  } catch (const ParseError& e) {
    std::fprintf(stderr, "cutover-controller: %s\n", e.what());
    return 2;
  }
  setup_logging(log_cfg);
  auto log = logger("controller");
  // One socket per agent: allow as many as the hard limit does, and keep the connection cap below
  // it, with room for the store's files, so that the cap answers before accept() runs out.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    if (nofile.rlim_cur < nofile.rlim_max) {
      nofile.rlim_cur = nofile.rlim_max;
      setrlimit(RLIMIT_NOFILE, &nofile);
      getrlimit(RLIMIT_NOFILE, &nofile);
    }
    constexpr rlim_t kReserved = 64;
    if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur > kReserved &&
        limits.max_connections > nofile.rlim_cur - kReserved) {
      log->warn("--max-connections {} lowered to {}: the open-file limit is {}",
                limits.max_connections, nofile.rlim_cur - kReserved, nofile.rlim_cur);
      limits.max_connections = nofile.rlim_cur - kReserved;
    }
  }

  try {
    NodeConfig node{
        listen,         cfg.port_file, "",     cfg.tls,   cfg.insecure_no_token ? "" : cfg.token,
        cfg.read_token, policy,        limits, retention, inventory};
    if (store.etcd) {
      EtcdOptions eo{store.endpoints,
                     std::chrono::milliseconds(cfg.etcd_timeout_ms),
                     {cfg.etcd_cert, cfg.etcd_key, cfg.etcd_ca, ""}};
      EtcdStore etcd(std::make_unique<EtcdClient>(eo), cfg.etcd_prefix,
                     static_cast<size_t>(cfg.etcd_max_txn_ops));
      // The election's own connection, on its own thread: a slow store write never delays the
      // lease's keepalive.
      LeaderElection election(
          std::make_unique<EtcdClient>(eo),
          {cfg.etcd_prefix + "/leader", cfg.advertise_url, std::chrono::seconds(cfg.lease_ttl_s)});
      node.store_name = "etcd " + cfg.store.substr(5) + " prefix " + cfg.etcd_prefix;
      election.start();
      ControllerNode(node, etcd, &etcd, &election).run();
    } else {
      SqliteStore sqlite(store.path);
      node.store_name = store.path;
      ControllerNode(node, sqlite, nullptr, nullptr).run();
    }
  } catch (const std::exception& e) {
    log->critical("{}", e.what());
    return 1;
  }
  return 0;
}
