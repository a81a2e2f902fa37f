// HttpClient: a minimal synchronous HTTP/1.1 client (Boost.Beast) for cutoverctl and the tests:
// one keep-alive connection, bearer token, JSON in and out.
#pragma once

#include <string>

namespace cutover::cli {

struct HttpResult {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  // base: "http://HOST:PORT"; throws std::invalid_argument on anything else.
  HttpClient(const std::string& base, std::string token);
  ~HttpClient();
  // Throws std::runtime_error when the controller cannot be reached.
  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = "");

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace cutover::cli
