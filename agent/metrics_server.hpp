// MetricsServer: the agent's GET /metrics over plain HTTP on a local address (--metrics-listen,
// off unless set). One request per connection, a 5 s deadline on each, anything but GET
// /metrics answered 404/405. Runs on the agent's io_context; render() is called there.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>

namespace cutover::agent {

// "HOST:PORT" or "[V6]:PORT" -> an endpoint; throws ParseError(field) naming what is wrong.
boost::asio::ip::tcp::endpoint parse_listen(const std::string& text, const std::string& field);

class MetricsServer {
 public:
  // Throws std::runtime_error when it cannot listen there.
  MetricsServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& at,
                std::function<std::string()> render);
  unsigned short port() const { return acceptor_.local_endpoint().port(); }

 private:
  void accept();
  boost::asio::ip::tcp::acceptor acceptor_;
  std::function<std::string()> render_;
};

}  // namespace cutover::agent
