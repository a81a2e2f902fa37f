// HttpClient: a minimal synchronous HTTP/1.1 client (Boost.Beast) for cutoverctl and the tests:
// one keep-alive connection, bearer token, JSON in and out. A request is sent again on a fresh
// connection only when that cannot apply it twice: it is idempotent (GET, HEAD, PUT, DELETE,
// OPTIONS), or nothing of it was written. Before a non-idempotent one, a connection the server
// has closed while idle is replaced. Movable, not copyable.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

namespace cutover::cli {

struct HttpResult {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  // base: "http://HOST:PORT", or "https://HOST:PORT" with `tls` (make_client_tls: the CA, and a
  // client certificate to authenticate by instead of a token); throws std::invalid_argument on
  // anything else.
  HttpClient(const std::string& base, std::string token,
             std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  // Throws std::runtime_error when the controller cannot be reached.
  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = "");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cutover::cli
