// HttpClient implementation.
#include "http_client.hpp"

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <poll.h>
#include <sys/socket.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>
#include <stdexcept>
#include <variant>

namespace cutover::cli {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

struct HttpClient::Impl {
  using Plain = beast::tcp_stream;
  using Tls = beast::ssl_stream<beast::tcp_stream>;
  boost::asio::io_context io;
  std::variant<std::monostate, Plain, Tls> stream;
  std::shared_ptr<boost::asio::ssl::context> tls;  // https://
  std::string host, port, token;

  bool open() const { return !std::holds_alternative<std::monostate>(stream); }
  void close() { stream.emplace<std::monostate>(); }
  beast::tcp_stream& lowest() {
    if (auto* t = std::get_if<Tls>(&stream)) return beast::get_lowest_layer(*t);
    return std::get<Plain>(stream);
  }
  template <typename Fn>
  auto with_stream(Fn&& fn) {
    if (auto* t = std::get_if<Tls>(&stream)) return fn(*t);
    return fn(std::get<Plain>(stream));
  }

  void connect() {
    tcp::resolver resolver(io);
    if (tls) {
      stream.emplace<Tls>(io, *tls);
    } else {
      stream.emplace<Plain>(io);
    }
    beast::error_code ec;
    auto results = resolver.resolve(host, port, ec);
    if (ec) throw std::runtime_error("cannot resolve controller " + host + ": " + ec.message());
    lowest().expires_after(std::chrono::seconds(10));
    lowest().connect(results, ec);
    if (ec) {
      close();
      throw std::runtime_error("cannot reach controller at " + host + ":" + port + ": " +
                               ec.message());
    }
    if (auto* t = std::get_if<Tls>(&stream)) {
      // The controller's certificate must come from the CA and name the host dialled.
      SSL_set_tlsext_host_name(t->native_handle(), host.c_str());
      t->set_verify_callback(boost::asio::ssl::host_name_verification(host));
      t->handshake(boost::asio::ssl::stream_base::client, ec);
      if (ec) {
        close();
        throw std::runtime_error("TLS with controller " + host + ":" + port +
                                 " failed: " + ec.message());
      }
    }
  }

  // The server closed the idle connection (its FIN is waiting to be read).
  bool peer_closed() {
    const int fd = lowest().socket().native_handle();
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    char c;
    return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
  }
};

namespace {
bool idempotent(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS";
}

// "HOST:PORT" (nothing after it) into its parts; false when it is not that.
bool split_host_port(const std::string& text, std::string& host, std::string& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || text.find('/') != std::string::npos) {
    return false;
  }
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  return true;
}
}  // namespace

HttpClient::HttpClient(const std::string& base, std::string token,
                       std::shared_ptr<boost::asio::ssl::context> tls)
    : impl_(std::make_unique<Impl>()) {
  std::string rest = base;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.rfind("https://", 0) == 0) {
    if (!tls) throw std::invalid_argument("https:// needs the CA (--tls-ca)");
    rest = rest.substr(8);
    impl_->tls = std::move(tls);
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (!split_host_port(rest, impl_->host, impl_->port)) {
    throw std::invalid_argument("expected http://HOST:PORT or https://HOST:PORT, got '" + base +
                                "'");
  }
  impl_->token = std::move(token);
}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

HttpResult HttpClient::request(const std::string& method, const std::string& target,
                               const std::string& body) {
  const bool repeatable = idempotent(method);
  int redirects = 0;
  for (int attempt = 0;; ++attempt) {
    if (impl_->open() && !repeatable && impl_->peer_closed()) impl_->close();
    if (!impl_->open()) impl_->connect();
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, impl_->host);
    req.set(http::field::user_agent, "cutoverctl");
    if (!impl_->token.empty()) req.set(http::field::authorization, "Bearer " + impl_->token);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.keep_alive(true);
    req.prepare_payload();
    beast::error_code ec;
    impl_->lowest().expires_after(std::chrono::seconds(30));
    const size_t written = impl_->with_stream([&](auto& st) { return http::write(st, req, ec); });
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    if (!ec) impl_->with_stream([&](auto& st) { return http::read(st, buffer, res, ec); });
    if (ec) {
      impl_->close();
      // The server closed an idle keep-alive connection: again on a fresh one, if that cannot
      // apply the request twice.
      if (attempt == 0 && (repeatable || written == 0)) continue;
      throw std::runtime_error("request to controller failed: " + ec.message() +
                               (repeatable || written == 0
                                    ? ""
                                    : " (it was sent: the controller may have applied it; "
                                      "check before repeating it)"));
    }
    if (!res.keep_alive()) impl_->close();
    const auto status = res.result_int();
    if ((status == 307 || status == 308) && redirects < 3) {
      // A follower among highly available controllers names the leader: the same request
      // again there, on the same scheme (and so the same TLS settings).
      const std::string location(res[http::field::location]);
      const std::string scheme = impl_->tls ? "https://" : "http://";
      if (location.rfind(scheme, 0) == 0) {
        const std::string rest = location.substr(scheme.size());
        std::string host, port;
        if (split_host_port(rest.substr(0, rest.find('/')), host, port)) {
          impl_->close();
          impl_->host = std::move(host);
          impl_->port = std::move(port);
          ++redirects;
          attempt = -1;
          continue;
        }
      }
    }
    return {static_cast<int>(status), res.body()};
  }
}

}  // namespace cutover::cli
