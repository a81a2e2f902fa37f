// EtcdClient: a small blocking client for etcd's v3 API through its JSON gateway (POST /v3/...,
// keys and values base64, 64-bit integers as strings), over Boost.Beast with one keep-alive
// connection. It knows every member's URL and moves to the next one when a member does not
// answer, so losing one member costs a retry, not an error. Used by EtcdStore (on the controller's
// event loop) and by LeaderElection (on its own thread, with its own client).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tls.hpp"

namespace cutover::controller {

// No member answered in time, or the cluster has no quorum (etcd's "no leader", "request timed
// out", gRPC Unavailable): nothing is known about whether a write happened unless retried.
struct EtcdUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct EtcdOptions {
  std::vector<std::string> endpoints;       // http://HOST:PORT or https://HOST:PORT
  std::chrono::milliseconds timeout{2000};  // per request and member
  TlsFiles tls;                             // for https:// endpoints: CA, and a client cert/key
};

// Parses "URL[,URL...]" (each http:// or https://HOST:PORT); throws std::invalid_argument naming
// the bad entry.
std::vector<std::string> parse_etcd_endpoints(const std::string& list);

struct EtcdKv {
  std::string key, value;
  int64_t create_revision = 0, mod_revision = 0, lease = 0;
};

class EtcdClient {
 public:
  explicit EtcdClient(EtcdOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // POSTs `body` to /v3/`path` on a member that answers; returns the reply. Throws
  // EtcdUnavailable (no member, no quorum) or std::runtime_error (etcd refused the request).
  nlohmann::json call(const std::string& path, const nlohmann::json& body);

  // Every key in [key, range_end) (range_end empty: just `key`) at one revision; `revision`
  // receives the store's revision the answer is from.
  std::vector<EtcdKv> range(const std::string& key, const std::string& range_end,
                            int64_t* revision = nullptr);
  // A lease of `ttl` (etcd may round it up to its minimum); returns {id, granted ttl}.
  std::pair<int64_t, int64_t> grant(int64_t ttl_seconds);
  // Refreshes the lease; returns the remaining TTL (0: the lease is gone).
  int64_t keepalive(int64_t lease);
  void revoke(int64_t lease);

  // What a member's HTTP answer says: the result object, or EtcdUnavailable (ask another member,
  // or later) or std::runtime_error (etcd refused the request). `what` names the request.
  static nlohmann::json answer(unsigned http_status, const std::string& body,
                               const std::string& what);
  // The end of the range of every key starting with `prefix`.
  static std::string prefix_end(const std::string& prefix);
  static std::string b64(const std::string& raw);
  static std::string unb64(const std::string& text);
  static int64_t num(const nlohmann::json& j, const char* field);  // "123", 123 or absent (0)
  static EtcdKv kv(const nlohmann::json& j);
  // A range answer's key-values (and its revision); throws std::runtime_error on a bad shape.
  static std::vector<EtcdKv> range_answer(const nlohmann::json& res, int64_t* revision);
  static nlohmann::json header(const nlohmann::json& res);  // {} when absent

  const std::string& endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cutover::controller
