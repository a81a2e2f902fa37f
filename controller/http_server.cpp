// HttpServer: Beast plumbing for REST sessions and agent WebSocket sessions.
#include "http_server.hpp"

#include <array>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>

#include "logging.hpp"
#include "wire.hpp"

namespace cutover::controller {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

class AgentSession : public std::enable_shared_from_this<AgentSession> {
 public:
  AgentSession(tcp::socket socket, AgentHub& hub, ControllerState& state)
      : ws_(std::move(socket)), hub_(hub), state_(state) {}

  void run(http::request<http::string_body> req) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(16 << 20);
    // A host joining a busy VNI gets its whole slice (a few hundred KB per thousand ports). As
    // one frame it goes out in as few writes as the kernel's (autotuned) send buffer allows; in
    // 4 KiB fragments it took dozens of trips through the event loop while every other agent's
    // ACK queued ahead of it.
    ws_.auto_fragment(false);
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->read();
    });
  }

  void send(std::string text) {
    queue_.push_back(std::move(text));
    if (queue_.size() == 1) write_next();
  }

 private:
  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        self->closed();
        return;
      }
      std::string text = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      self->on_text(text);
    });
  }

  void on_text(const std::string& text) {
    try {
      auto msg = wire::decode_agent_message(text);
      if (auto* hello = std::get_if<wire::Hello>(&msg)) {
        if (session_) throw ParseError("type", "hello sent twice");
        state_.put_host(hello->host);
        host_ = hello->host.id.str();
        std::weak_ptr<AgentSession> weak = shared_from_this();
        session_ = hub_.attach(hello->host.id, [weak](const std::string& out) {
          if (auto s = weak.lock()) s->send(out);
        });
      } else if (!session_) {
        throw ParseError("type", "expected hello first");
      } else {
        hub_.on_message(session_, msg);
      }
    } catch (const std::exception& e) {
      logger("hub")->warn("agent {} sent a bad message, closing: {}", host_.empty() ? "?" : host_,
                          e.what());
      ws_.async_close(websocket::close_reason(websocket::close_code::policy_error, e.what()),
                      [self = shared_from_this()](beast::error_code) { self->closed(); });
      return;
    }
    read();
  }

  void write_next() {
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      if (ec) {
                        self->queue_.clear();
                        return;
                      }
                      self->queue_.pop_front();
                      if (!self->queue_.empty()) self->write_next();
                    });
  }

  void closed() {
    if (session_) hub_.detach(session_);
    session_ = 0;
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  AgentHub& hub_;
  ControllerState& state_;
  uint64_t session_ = 0;
  std::string host_;
};

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, RestApi& api, AgentHub& hub, ControllerState& state)
      : stream_(std::move(socket)), api_(api), hub_(hub), state_(state) {}

  void read() {
    parser_.emplace();
    parser_->body_limit(RestApi::kMaxBody);
    stream_.expires_after(std::chrono::seconds(120));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      // Answer, then keep reading (and discarding) what the client is still sending, so that it
      // can finish its write and read the 413 instead of hitting a reset.
      draining_ = true;
      reply(413,
            R"({"error":{"code":"too_large","message":"request body over 1 MiB","field":null}})",
            "application/json", false);
      return;
    }
    if (ec) return;  // closed, timed out or garbage: drop the connection
    auto req = parser_->release();
    const std::string auth(req[http::field::authorization]);
    if (websocket::is_upgrade(req)) {
      if (req.target() != "/v1/agent") {
        reply(
            404,
            R"({"error":{"code":"not_found","message":"WebSocket only on /v1/agent","field":null}})",
            "application/json", false);
      } else if (!api_.authorized(auth)) {
        reply(
            401,
            R"({"error":{"code":"unauthenticated","message":"missing or wrong bearer token","field":null}})",
            "application/json", false);
      } else {
        std::make_shared<AgentSession>(stream_.release_socket(), hub_, state_)->run(std::move(req));
      }
      return;
    }
    HttpRequest r{std::string(req.method_string()), std::string(req.target()), req.body(), auth};
    auto res = api_.handle(r);
    reply(res.status, std::move(res.body), res.content_type, req.keep_alive());
  }

  void reply(int status, std::string body, const std::string& type, bool keep_alive) {
    auto res =
        std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    res->set(http::field::server, "cutover-controller");
    if (!body.empty() || status != 204) res->set(http::field::content_type, type);
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                        if (ec || !keep_alive) {
                          beast::error_code ignored;
                          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                          if (self->draining_ && !ec) self->drain(0);
                          return;
                        }
                        self->read();
                      });
  }

  void drain(size_t total) {
    if (total > (64u << 20)) return;
    stream_.expires_after(std::chrono::seconds(10));
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this(), total](beast::error_code ec, size_t n) {
                              if (!ec) self->drain(total + n);
                            });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool draining_ = false;
  std::array<char, 65536> scratch_;
  RestApi& api_;
  AgentHub& hub_;
  ControllerState& state_;
};

}  // namespace

struct HttpServer::Impl {
  Impl(asio::io_context& io, const tcp::endpoint& ep, RestApi& api, AgentHub& hub,
       ControllerState& state)
      : acceptor(io, ep), api(api), hub(hub), state(state) {}
  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        socket.set_option(tcp::no_delay(true));
        std::make_shared<HttpSession>(std::move(socket), api, hub, state)->read();
      }
      accept();
    });
  }
  tcp::acceptor acceptor;
  RestApi& api;
  AgentHub& hub;
  ControllerState& state;
};

HttpServer::HttpServer(asio::io_context& io, const tcp::endpoint& listen, RestApi& api,
                       AgentHub& hub, ControllerState& state)
    : impl_(std::make_unique<Impl>(io, listen, api, hub, state)) {}

HttpServer::~HttpServer() = default;

uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

void HttpServer::start() { impl_->accept(); }

}  // namespace cutover::controller
