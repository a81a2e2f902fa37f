// HttpServer: Boost.Beast HTTP/1.1 (keep-alive) in front of RestApi, plus the agent channel:
// a WebSocket upgrade on /v1/agent, authenticated by the same bearer token, whose sessions are
// registered with the AgentHub; and GET /v1/events, a Server-Sent Events stream from the
// EventFeed. Single-threaded on the controller's io_context. It cannot be
// exhausted from outside: connections are capped (ConnectionGate), the token is checked on the
// header before any body is read, every phase has a deadline, and an agent's send queue is
// bounded (SendQueue).
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "agent_hub.hpp"
#include "connection_gate.hpp"
#include "controller_state.hpp"
#include "event_feed.hpp"
#include "metrics.hpp"
#include "rest_api.hpp"

namespace cutover::controller {

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& listen,
             RestApi& api, AgentHub& hub, ControllerState& state, EventFeed& feed, Metrics& metrics,
             HttpLimits limits = {});
  ~HttpServer();
  uint16_t port() const;
  void start();
  // TLS for the connections accepted from now on (none: plain HTTP). Swapped on SIGHUP, when the
  // certificate or the revocation list changed; agent sessions already open are checked against
  // it, and one whose certificate is now revoked or expired is closed.
  void set_tls(std::shared_ptr<boost::asio::ssl::context> tls);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cutover::controller
