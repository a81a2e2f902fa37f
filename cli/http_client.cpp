// HttpClient implementation.
#include "http_client.hpp"

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <poll.h>
#include <sys/socket.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <stdexcept>

namespace cutover::cli {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

struct HttpClient::Impl {
  boost::asio::io_context io;
  std::optional<beast::tcp_stream> stream;
  std::string host, port, token;

  void connect() {
    tcp::resolver resolver(io);
    stream.emplace(io);
    beast::error_code ec;
    auto results = resolver.resolve(host, port, ec);
    if (ec) throw std::runtime_error("cannot resolve controller " + host + ": " + ec.message());
    stream->expires_after(std::chrono::seconds(10));
    stream->connect(results, ec);
    if (ec) {
      throw std::runtime_error("cannot reach controller at " + host + ":" + port + ": " +
                               ec.message());
    }
  }

  // The server closed the idle connection (its FIN is waiting to be read).
  bool peer_closed() {
    const int fd = stream->socket().native_handle();
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
}  // namespace

HttpClient::HttpClient(const std::string& base, std::string token)
    : impl_(std::make_unique<Impl>()) {
  std::string rest = base;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || rest.find('/') != std::string::npos) {
    throw std::invalid_argument("expected http://HOST:PORT, got '" + base + "'");
  }
  impl_->host = rest.substr(0, colon);
  impl_->port = rest.substr(colon + 1);
  impl_->token = std::move(token);
}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

HttpResult HttpClient::request(const std::string& method, const std::string& target,
                               const std::string& body) {
  const bool repeatable = idempotent(method);
  for (int attempt = 0;; ++attempt) {
    if (impl_->stream && !repeatable && impl_->peer_closed()) impl_->stream.reset();
    if (!impl_->stream) impl_->connect();
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, impl_->host);
    req.set(http::field::user_agent, "cutoverctl");
    if (!impl_->token.empty()) req.set(http::field::authorization, "Bearer " + impl_->token);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.keep_alive(true);
    req.prepare_payload();
    beast::error_code ec;
    impl_->stream->expires_after(std::chrono::seconds(30));
    const size_t written = http::write(*impl_->stream, req, ec);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    if (!ec) http::read(*impl_->stream, buffer, res, ec);
    if (ec) {
      impl_->stream.reset();
      // The server closed an idle keep-alive connection: again on a fresh one, if that cannot
      // apply the request twice.
      if (attempt == 0 && (repeatable || written == 0)) continue;
      throw std::runtime_error("request to controller failed: " + ec.message() +
                               (repeatable || written == 0
                                    ? ""
                                    : " (it was sent: the controller may have applied it; "
                                      "check before repeating it)"));
    }
    if (!res.keep_alive()) impl_->stream.reset();
    return {static_cast<int>(res.result_int()), res.body()};
  }
}

}  // namespace cutover::cli
