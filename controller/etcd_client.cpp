// EtcdClient implementation: each request runs Beast's asynchronous operations on a private
// io_context, so that every step (resolve, connect, handshake, write, read) has a deadline.
#include "etcd_client.hpp"

#include <openssl/evp.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "logging.hpp"

namespace cutover::controller {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

namespace {

struct Url {
  bool tls = false;
  std::string host, port, text;
};

Url parse_url(const std::string& text) {
  Url u;
  u.text = text;
  std::string rest;
  if (text.rfind("http://", 0) == 0) {
    rest = text.substr(7);
  } else if (text.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = text.substr(8);
  } else {
    throw std::invalid_argument("etcd endpoint '" + text + "': expected http://HOST:PORT or " +
                                "https://HOST:PORT");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size() ||
      rest.find('/') != std::string::npos) {
    throw std::invalid_argument("etcd endpoint '" + text +
                                "': expected HOST:PORT after the scheme");
  }
  u.host = rest.substr(0, colon);
  u.port = rest.substr(colon + 1);
  if (u.host.front() == '[' && u.host.back() == ']') u.host = u.host.substr(1, u.host.size() - 2);
  for (char c : u.port) {
    if (c < '0' || c > '9') throw std::invalid_argument("etcd endpoint '" + text + "': bad port");
  }
  return u;
}

// etcd's answers that mean "ask again later or elsewhere" rather than "no": gRPC's Canceled,
// DeadlineExceeded and Unavailable (a member without quorum gives up on the request), and
// whatever comes with a 5xx status.
bool unavailable_error(const json& j, unsigned http_status) {
  const auto c = j.find("code");
  const int64_t code = c != j.end() && c->is_number_integer() ? c->get<int64_t>() : 0;
  const auto m = j.find("message");
  const auto e = j.find("error");
  const std::string msg = m != j.end() && m->is_string()   ? m->get<std::string>()
                          : e != j.end() && e->is_string() ? e->get<std::string>()
                                                           : std::string();
  return http_status >= 500 || code == 1 || code == 4 || code == 14 ||
         msg.find("no leader") != std::string::npos || msg.find("timed out") != std::string::npos ||
         msg.find("leader changed") != std::string::npos ||
         msg.find("not capable") != std::string::npos;
}

}  // namespace

std::vector<std::string> parse_etcd_endpoints(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const auto comma = list.find(',', start);
    const std::string one =
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (one.empty()) throw std::invalid_argument("etcd endpoints '" + list + "': an empty entry");
    parse_url(one);
    out.push_back(one);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

struct EtcdClient::Impl {
  explicit Impl(EtcdOptions o) : options(std::move(o)) {
    if (options.endpoints.empty()) throw std::invalid_argument("etcd: no endpoint");
    for (const auto& e : options.endpoints) urls.push_back(parse_url(e));
    for (const auto& u : urls) {
      if (u.tls && !tls_ctx) {
        if (options.tls.ca.empty()) {
          throw std::invalid_argument("etcd endpoint " + u.text + " is https: --etcd-ca needed");
        }
        tls_ctx = make_client_tls(options.tls);
      }
    }
  }

  // Runs what was started on `io` until it finishes; the stream's deadline bounds each step.
  void run() {
    io.restart();
    io.run();
  }

  void disconnect() {
    beast::error_code ignored;
    if (tls_stream) beast::get_lowest_layer(*tls_stream).socket().close(ignored);
    if (plain) plain->socket().close(ignored);
    tls_stream.reset();
    plain.reset();
  }

  beast::tcp_stream& lowest() { return tls_stream ? beast::get_lowest_layer(*tls_stream) : *plain; }

  void connect(const Url& u, beast::error_code& ec) {
    disconnect();
    tcp::resolver resolver(io);
    tcp::resolver::results_type results;
    resolver.async_resolve(u.host, u.port, [&](beast::error_code e, tcp::resolver::results_type r) {
      ec = e;
      results = std::move(r);
    });
    run();
    if (ec) return;
    if (u.tls) {
      tls_stream.emplace(io, *tls_ctx);
      SSL_set_tlsext_host_name(tls_stream->native_handle(), u.host.c_str());
      tls_stream->set_verify_callback(asio::ssl::host_name_verification(u.host));
    } else {
      plain.emplace(io);
    }
    lowest().expires_after(options.timeout);
    lowest().async_connect(results, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    run();
    if (ec) return;
    beast::error_code ignored;
    lowest().socket().set_option(tcp::no_delay(true), ignored);
    if (tls_stream) {
      tls_stream->async_handshake(asio::ssl::stream_base::client,
                                  [&](beast::error_code e) { ec = e; });
      run();
    }
  }

  // One request on member `u`; false (and ec set) when it did not answer.
  bool exchange(const Url& u, const std::string& target, const std::string& body,
                http::response<http::string_body>& res, beast::error_code& ec) {
    if (!plain && !tls_stream) {
      connect(u, ec);
      if (ec) {
        disconnect();
        return false;
      }
    }
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, u.host + ":" + u.port);
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    beast::flat_buffer buffer;
    auto go = [&](auto& stream) {
      lowest().expires_after(options.timeout);
      http::async_write(stream, req, [&](beast::error_code e, size_t) {
        ec = e;
        if (e) return;
        http::async_read(stream, buffer, res, [&](beast::error_code e2, size_t) { ec = e2; });
      });
      run();
    };
    if (tls_stream) {
      go(*tls_stream);
    } else {
      go(*plain);
    }
    if (ec || !res.keep_alive()) disconnect();
    return !ec;
  }

  EtcdOptions options;
  std::vector<Url> urls;
  size_t current = 0;
  asio::io_context io;
  std::shared_ptr<asio::ssl::context> tls_ctx;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  std::chrono::steady_clock::time_point last_warn{};
};

EtcdClient::EtcdClient(EtcdOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
EtcdClient::~EtcdClient() = default;

const std::string& EtcdClient::endpoint() const { return impl_->urls[impl_->current].text; }

json EtcdClient::call(const std::string& path, const json& body) {
  auto& d = *impl_;
  const std::string text = body.dump();
  std::string last_error;
  // Every member once, starting with the one that answered last.
  for (size_t tried = 0; tried < d.urls.size(); ++tried) {
    const Url& u = d.urls[d.current];
    http::response<http::string_body> res;
    beast::error_code ec;
    if (!d.exchange(u, "/v3/" + path, text, res, ec)) {
      if (ec.category() == asio::error::get_ssl_category()) {
        // A certificate refused either way is a setting to fix, not a member to wait for.
        throw std::runtime_error("etcd " + u.text + ": TLS: " + ec.message() +
                                 " (check --etcd-ca, --etcd-cert, --etcd-key)");
      }
      last_error = u.text + ": " + ec.message();
      d.current = (d.current + 1) % d.urls.size();
      continue;
    }
    try {
      return answer(res.result_int(), res.body(), u.text + " /v3/" + path);
    } catch (const EtcdUnavailable& e) {
      last_error = e.what();
      d.disconnect();
      d.current = (d.current + 1) % d.urls.size();
    }
  }
  throw EtcdUnavailable("etcd unavailable (" + last_error + ")");
}

json EtcdClient::answer(unsigned http_status, const std::string& body, const std::string& what) {
  // A streamed answer (lease keepalive) is one {"result": ...} per line; one was asked for.
  std::string payload = body;
  if (const auto nl = payload.find('\n'); nl != std::string::npos) payload.resize(nl);
  json j = json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    if (http_status >= 500) throw EtcdUnavailable(what + ": HTTP " + std::to_string(http_status));
    throw std::runtime_error("etcd " + what + ": not a JSON object (HTTP " +
                             std::to_string(http_status) + ")");
  }
  if (j.contains("result")) {
    j = json(j["result"]);
    if (!j.is_object()) throw std::runtime_error("etcd " + what + ": result is not an object");
  }
  const auto text = [&](const char* field) {
    const auto it = j.find(field);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string message = !text("message").empty() ? text("message") : text("error");
  if (http_status == 200 && !j.contains("error")) return j;
  if (unavailable_error(j, http_status)) throw EtcdUnavailable(what + ": " + message);
  throw std::runtime_error("etcd " + what + ": " +
                           (message.empty() ? "HTTP " + std::to_string(http_status) : message));
}

std::vector<EtcdKv> EtcdClient::range(const std::string& key, const std::string& range_end,
                                      int64_t* revision) {
  json req = {{"key", b64(key)}};
  if (!range_end.empty()) req["range_end"] = b64(range_end);
  const json res = call("kv/range", req);
  return range_answer(res, revision);
}

std::vector<EtcdKv> EtcdClient::range_answer(const json& res, int64_t* revision) {
  if (revision) *revision = num(header(res), "revision");
  std::vector<EtcdKv> out;
  if (const auto it = res.find("kvs"); it != res.end()) {
    if (!it->is_array()) throw std::runtime_error("etcd: kvs is not an array");
    for (const auto& k : *it) out.push_back(kv(k));
  }
  return out;
}

std::pair<int64_t, int64_t> EtcdClient::grant(int64_t ttl_seconds) {
  const json res = call("lease/grant", {{"TTL", std::to_string(ttl_seconds)}});
  return {num(res, "ID"), num(res, "TTL")};
}

int64_t EtcdClient::keepalive(int64_t lease) {
  return num(call("lease/keepalive", {{"ID", std::to_string(lease)}}), "TTL");
}

void EtcdClient::revoke(int64_t lease) {
  try {
    call("lease/revoke", {{"ID", std::to_string(lease)}});
  } catch (const EtcdUnavailable&) {
    throw;
  } catch (const std::runtime_error&) {
    // already gone: what revoking wanted
  }
}

std::string EtcdClient::prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& c = end.back();
    if (static_cast<unsigned char>(c) < 0xff) {
      ++c;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

std::string EtcdClient::b64(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()),
                                static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string EtcdClient::unb64(const std::string& text) {
  if (text.empty()) return {};
  if (text.size() % 4 != 0) throw std::runtime_error("etcd: bad base64 in an answer");
  std::string out(3 * text.size() / 4 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) throw std::runtime_error("etcd: bad base64 in an answer");
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (text.back() == '=') --len;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

json EtcdClient::header(const json& res) {
  const auto it = res.find("header");
  return it != res.end() && it->is_object() ? *it : json::object();
}

int64_t EtcdClient::num(const json& j, const char* field) {
  if (!j.is_object()) return 0;
  const auto it = j.find(field);
  if (it == j.end() || it->is_null()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
    }
  }
  throw std::runtime_error(std::string("etcd: field ") + field + " is not an integer");
}

EtcdKv EtcdClient::kv(const json& j) {
  EtcdKv k;
  if (!j.is_object()) throw std::runtime_error("etcd: a key-value is not an object");
  const auto text = [&](const char* field) {
    const auto it = j.find(field);
    if (it == j.end()) return std::string();
    if (!it->is_string())
      throw std::runtime_error(std::string("etcd: field ") + field + " is not a string");
    return unb64(it->get<std::string>());
  };
  k.key = text("key");
  k.value = text("value");
  k.create_revision = num(j, "create_revision");
  k.mod_revision = num(j, "mod_revision");
  k.lease = num(j, "lease");
  return k;
}

}  // namespace cutover::controller
