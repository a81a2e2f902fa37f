// HttpServer: Beast plumbing for REST sessions and agent WebSocket sessions, and the accept loop
// that admits them through the ConnectionGate.
#include "http_server.hpp"

#include <sys/socket.h>
#include <sys/uio.h>
#include <algorithm>
#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cerrno>
#include <cstring>
#include <limits>

#include "ack_repeat.hpp"
#include "logging.hpp"
#include "readiness_poller.hpp"
#include "send_queue.hpp"
#include "tls.hpp"
#include "wire.hpp"
#include "ws_reader.hpp"

namespace cutover::controller {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

using Slot = ConnectionGate::Slot;

// A peer that was told to go away gets this long to finish the closing handshake.
constexpr std::chrono::seconds kCloseGrace{5};
// An agent connection that delivered no frame for this long is pinged; after a second such
// interval without even a pong it is closed (Beast's server default, 300 s in all).
constexpr std::chrono::seconds kIdleInterval{150};

std::string error_body(const char* code, const std::string& message) {
  return std::string(R"({"error":{"code":")") + code + R"(","message":")" + message +
         R"(","field":null}})";
}

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// A live connection whose peer proved itself with a certificate: asked again when the TLS
// settings are re-read (SIGHUP), so that a revoked agent does not stay connected.
class TlsPeer {
 public:
  virtual ~TlsPeer() = default;
  virtual void recheck(asio::ssl::context& ctx) = 0;
};

struct TlsPeers {
  std::vector<std::weak_ptr<TlsPeer>> live;
  void add(std::weak_ptr<TlsPeer> p) {
    std::erase_if(live, [](const auto& w) { return w.expired(); });
    live.push_back(std::move(p));
  }
  void recheck(asio::ssl::context& ctx) {
    std::erase_if(live, [](const auto& w) { return w.expired(); });
    for (const auto& w : std::vector<std::weak_ptr<TlsPeer>>(live)) {
      if (auto p = w.lock()) p->recheck(ctx);
    }
  }
};

// An agent's WebSocket over the plain or the TLS stream. With TLS the agent proved a host id with
// its certificate (cert_host), and its hello must say the same.
//
// Beast accepts the upgrade; after that the frames are the session's own, both ways. Beast's
// composed read and write ops cost about as much CPU again as the kernel's send and receive,
// once per agent and change. A server frame is unmasked, so a message is its header and its bytes
// (server_frame), queued as one string; on a plain socket it leaves in one non-blocking send
// straight from the fan-out loop, with no asynchronous operation unless the kernel's buffer is
// full. A plain socket is read when the server's ReadinessPoller says it has bytes, one recv each
// time; a TLS one through Asio. Reads go through WsReader (several ACKs can come in one read).
// Pongs, the closing handshake and keep-alive pings (watch_idle) go through the same queue, so no
// frame is ever written into the middle of another.
template <typename Stream>
class AgentSession : public std::enable_shared_from_this<AgentSession<Stream>>,
                     public TlsPeer,
                     public ReadinessPoller::Reader {
  using std::enable_shared_from_this<AgentSession<Stream>>::shared_from_this;

 public:
  // `poller`: where a plain socket's readability comes from (none with TLS).
  AgentSession(Stream stream, Slot slot, AgentHub& hub, ControllerState& state,
               std::string cert_host, std::shared_ptr<ReadinessPoller> poller)
      : ws_(std::move(stream)),
        poller_(std::move(poller)),
        slot_(std::move(slot)),
        queue_(slot_.gate().limits().agent_send_queue_bytes),
        timer_(ws_.get_executor()),
        idle_timer_(ws_.get_executor()),
        hub_(hub),
        state_(state),
        cert_host_(std::move(cert_host)) {}

  void run(http::request<http::string_body> req) {
    // Only the handshake is Beast's: its timeout is the one that applies.
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::seconds(30);
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    // The token was on the upgrade; the hello must follow within the deadline, or the socket
    // would be held by a peer that never says which host it is.
    const auto deadline = slot_.gate().limits().hello_timeout;
    timer_.expires_after(deadline);
    timer_.async_wait([self = shared_from_this(), deadline](beast::error_code ec) {
      if (ec || self->session_ || self->closing_) return;
      self->slot_.gate().metrics().agent_closed("hello_timeout");
      logger("hub")->warn("agent connection from {}: no hello within {} ms, closing", self->peer(),
                          deadline.count());
      self->close(websocket::close_code::policy_error,
                  "no hello within " + std::to_string(deadline.count()) + " ms");
    });
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->end();  // Beast answered the bad upgrade; nothing more to wait for
        return;
      }
      self->read();
      self->watch_idle();
    });
  }

  // The certificate it connected with, checked against the re-read CA and CRL.
  void recheck(asio::ssl::context& ctx) override {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      if (closing_ || peer_still_valid(ws_.next_layer().native_handle(), ctx)) return;
      slot_.gate().metrics().auth_refused("certificate_revoked");
      logger("hub")->warn("agent {} ({}): its certificate is revoked or expired; closing",
                          host_.empty() ? cert_host_ : host_, peer());
      close(websocket::close_code::policy_error, "certificate revoked or expired");
    }
  }

  void send(const std::string& text) {
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      if (!closing_ && queue_.empty()) {
        send_now(text);
        return;
      }
    }
    send_frame(server_frame(WsOpcode::text, text));
  }

 private:
  std::string peer() {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(ws_).socket().remote_endpoint(ec);
    return ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  // Reads what the agent sent and acts on each whole message and control frame in it. A plain
  // socket joins the poller (readable() below), which holds the session until it leaves; Beast's
  // basic_stream would wrap each read in its timeout and rate bookkeeping, which the session does
  // not use (watch_idle is its timeout).
  void read() {
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      if (polled_) return;
      if (!poller_->add(socket_fd(), shared_from_this())) {
        logger("hub")->error("agent connection from {}: cannot watch its socket: {}", peer(),
                             std::strerror(errno));
        end();
        return;
      }
      polled_ = true;
    } else {
      ws_.next_layer().async_read_some(asio::buffer(read_buffer_),
                                       [self = shared_from_this()](beast::error_code ec, size_t n) {
                                         if (ec) {
                                           self->end();
                                         } else if (self->consume(n)) {
                                           self->read();
                                         }
                                       });
    }
  }

  // The poller says the plain socket has bytes (or the peer closed, or an error is pending). A
  // read that fills the buffer is followed by another at once (a long report), a short one ends
  // the turn: an ACK costs one recv.
  void readable() override {
    for (;;) {
      const ssize_t n = ::recv(socket_fd(), read_buffer_.data(), read_buffer_.size(), MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      if (n <= 0) {
        end();
        return;
      }
      if (!consume(static_cast<size_t>(n))) {
        stop_reading();
        return;
      }
      if (static_cast<size_t>(n) < read_buffer_.size() || !polled_) return;
    }
  }

  void stop_reading() {
    if (!polled_) return;
    polled_ = false;
    poller_->remove(socket_fd());
  }

  int socket_fd() { return beast::get_lowest_layer(ws_).socket().native_handle(); }

  // Acts on the n bytes read: each whole message and control frame in them. False when reading
  // is over (the peer's close frame came, or it broke the protocol).
  bool consume(size_t n) {
    ++reads_;
    std::vector<WsEvent> events;
    uint16_t refused = 0;
    std::string why;
    try {
      reader_.feed(std::string_view(read_buffer_.data(), n), events);
    } catch (const WsProtocolError& e) {
      refused = e.code;
      why = e.what();
    }
    for (auto& e : events) {
      if (e.kind == WsEvent::Kind::message) {
        if (!closing_) on_text(e.payload);
      } else if (e.kind == WsEvent::Kind::ping) {
        if (!closing_) queue_control(server_frame(WsOpcode::pong, e.payload));
      } else if (e.kind == WsEvent::Kind::close) {
        peer_closed(e.close_code);
        return false;
      }
    }
    if (refused) {
      // Failing the connection (RFC 6455 7.1.7): our close frame, then the socket.
      if (!closing_) {
        logger("hub")->warn("agent {} ({}) broke the WebSocket protocol, closing: {}",
                            host_.empty() ? "?" : host_, peer(), why);
        close(static_cast<websocket::close_code>(refused), why);
      }
      close_when_drained_ = true;
      if (queue_.empty()) end();
      return false;
    }
    return true;  // closing too: the peer's close frame is still to come
  }

  void on_text(const std::string& text) {
    try {
      if (session_) {
        if (auto again = ack_repeat_.match(text)) {
          hub_.on_repeated_ack(session_, again->generation);
          return;
        }
      }
      auto msg = wire::decode_agent_message(text);
      if (auto* hello = std::get_if<wire::Hello>(&msg)) {
        if (session_) throw ParseError("type", "hello sent twice");
        if (!cert_host_.empty() && hello->host.id.str() != cert_host_) {
          slot_.gate().metrics().auth_refused("certificate_names_another_host");
          logger("hub")->warn(
              "agent connection from {}: its certificate is for host {} but its hello says {}; "
              "closing",
              peer(), cert_host_, hello->host.id.str());
          close(websocket::close_code::policy_error,
                "certificate is for host " + cert_host_ + ", not " + hello->host.id.str());
          return;
        }
        state_.put_host(hello->host);
        host_ = hello->host.id.str();
        timer_.cancel();
        std::weak_ptr<AgentSession> weak = shared_from_this();
        session_ = hub_.attach(hello->host.id, [weak](const std::string& out) {
          if (auto s = weak.lock()) s->send(out);
        });
      } else if (!session_) {
        throw ParseError("type", "expected hello first");
      } else {
        hub_.on_message(session_, msg);
        if (auto* ack = std::get_if<wire::Ack>(&msg)) ack_repeat_.remember(text, *ack);
      }
    } catch (const ParseError& e) {
      logger("hub")->warn("agent {} sent a bad message, closing: {}", host_.empty() ? "?" : host_,
                          e.what());
      close(websocket::close_code::policy_error, e.what());
      return;
    } catch (const std::exception& e) {
      // Not the agent's fault (a store write failed, say): it reconnects, says hello again and
      // everything its messages drive is looked at once more.
      logger("hub")->error("handling a message from agent {} failed, closing so it resyncs: {}",
                           host_.empty() ? "?" : host_, e.what());
      close(websocket::close_code::internal_error, "controller error, reconnect");
      return;
    }
  }

  void send_frame(std::string frame) {
    if (closing_) return;
    const bool idle = queue_.empty();
    if (!queue_.push(std::move(frame))) {
      overflow();
      return;
    }
    if (idle) write_next();
  }

  // Plain socket, nothing queued: the frame's header and the caller's bytes leave in one
  // gathered send, with nothing copied or allocated (a fan-out hands every agent the same bytes).
  // Only what the kernel did not take is queued, as the rest of a whole frame.
  void send_now(std::string_view payload) {
    char header[kMaxServerFrameHeader];
    const size_t h = server_frame_header(WsOpcode::text, payload.size(), header);
    iovec iov[2] = {{header, h}, {const_cast<char*>(payload.data()), payload.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    const int fd = beast::get_lowest_layer(ws_).socket().native_handle();
    ssize_t n;
    do {
      n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      write_failed();
      return;
    }
    const size_t sent = n < 0 ? 0 : static_cast<size_t>(n);
    if (sent == h + payload.size()) return;
    queue_.push(server_frame(WsOpcode::text, payload));  // an empty queue takes any frame
    written_ = sent;
    write_next();
  }

  // Queues a control frame (a pong, the close frame), even while closing and past the bound.
  void queue_control(std::string frame) {
    const bool idle = queue_.empty();
    queue_.push_control(std::move(frame));
    if (idle) write_next();
  }

  // Writes the queue's frames in order until it is empty, or until the socket cannot take more
  // (then again once it is writable). written_ is how much of the front has left.
  void write_next() {
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      auto& socket = beast::get_lowest_layer(ws_).socket();
      while (!queue_.empty()) {
        const std::string& frame = queue_.front();
        const ssize_t n = ::send(socket.native_handle(), frame.data() + written_,
                                 frame.size() - written_, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) {
          write_failed();
          return;
        }
        written_ += static_cast<size_t>(n);
        if (written_ < frame.size()) break;
        written_ = 0;
        queue_.pop();
      }
      if (queue_.empty()) {
        drained();
        return;
      }
      socket.async_wait(tcp::socket::wait_write, [self = shared_from_this()](beast::error_code ec) {
        if (ec) {
          self->write_failed();
        } else {
          self->write_next();
        }
      });
    } else {
      asio::async_write(ws_.next_layer(), asio::buffer(queue_.front()),
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) {
                            self->write_failed();
                            return;
                          }
                          self->queue_.pop();
                          if (self->queue_.empty()) {
                            self->drained();
                          } else {
                            self->write_next();
                          }
                        });
    }
  }

  // The peer is gone (or the socket was closed under the write): nothing more can reach it. end()
  // stops the reading and detaches the session.
  void write_failed() {
    queue_.clear();
    written_ = 0;
    end();
  }

  void drained() {
    if (close_when_drained_) end();
  }

  // The connection is over: detached, out of the poller (a plain socket) and the socket closed (a
  // pending TLS read or a write then fails), the timers stopped, so that nothing holds the
  // session. The detach is posted: a failed write can end the session from inside
  // AgentHub::publish, which is iterating its sessions.
  void end() {
    closing_ = true;  // nothing more is sent, and watch_idle() does not re-arm
    asio::post(ws_.get_executor(), [self = shared_from_this()] { self->closed(); });
    idle_timer_.cancel();
    timer_.cancel();
    stop_reading();  // before the descriptor closes
    beast::get_lowest_layer(ws_).close();
  }

  // Beast's keep-alive, done here so that its pings do not land between our frames: an interval
  // with no frame from the agent gets a ping, and a second one closes the socket.
  void watch_idle() {
    idle_timer_.expires_after(kIdleInterval);
    idle_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closing_) return;
      if (self->reads_ != self->reads_at_last_check_) {
        self->reads_at_last_check_ = self->reads_;
        self->pinged_ = false;
      } else if (!self->pinged_) {
        self->pinged_ = true;
        self->send_frame(server_frame(WsOpcode::ping, {}));
      } else {
        self->slot_.gate().metrics().agent_closed("idle_timeout");
        logger("hub")->warn("agent {} ({}): no frame for {} s, not even a pong; closing",
                            self->host_.empty() ? "?" : self->host_, self->peer(),
                            2 * kIdleInterval.count());
        self->end();
        return;
      }
      self->watch_idle();
    });
  }

  // More queued for this agent than the bound: it is not keeping up. Drop the backlog and close;
  // it reconnects and gets one whole slice, which supersedes everything that was queued.
  void overflow() {
    slot_.gate().metrics().agent_closed("send_queue_full");
    logger("hub")->warn(
        "agent {}: {} bytes in {} messages queued, more would exceed {}: it is not keeping up; "
        "closing so that it reconnects and gets its whole slice",
        host_, queue_.bytes(), queue_.size(), slot_.gate().limits().agent_send_queue_bytes);
    queue_.drop_all_but_front();  // the front may be mid-write
    close(websocket::close_code::try_again_later, "send queue full: reconnect for a full resync");
  }

  // Detaches from the hub and sends the close frame after the frames already queued. The agent
  // answers with its own (read() sees it: peer_closed) and the socket is closed; if it does not
  // within kCloseGrace, the socket is simply closed.
  void close(websocket::close_code code, const std::string& reason) {
    if (closing_) return;
    closing_ = true;
    // Not from here: send() runs inside AgentHub::publish, which is iterating its sessions.
    asio::post(ws_.get_executor(), [self = shared_from_this()] { self->closed(); });
    close_within_grace();
    queue_control(close_frame(static_cast<uint16_t>(code), reason));
  }

  // The agent sent its close frame: in answer to ours, the handshake is done; otherwise it is
  // leaving, and gets ours (its code echoed) before the socket closes.
  void peer_closed(uint16_t code) {
    if (!closing_) {
      closing_ = true;
      close_within_grace();
      closed();
      queue_control(close_frame(code == 1005 ? 1000 : code));
    }
    close_when_drained_ = true;
    if (queue_.empty()) end();
  }

  void close_within_grace() {
    idle_timer_.cancel();
    timer_.cancel();
    timer_.expires_after(kCloseGrace);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->end();
    });
  }

  void closed() {
    if (session_) hub_.detach(session_);
    session_ = 0;
  }

  websocket::stream<Stream> ws_;
  std::shared_ptr<ReadinessPoller> poller_;
  bool polled_ = false;  // the plain socket is in poller_, which holds this session
  Slot slot_;
  WsReader reader_{16 << 20};   // the largest message an agent may send: 16 MiB
  wire::AckRepeat ack_repeat_;  // its last ACK's shape: a repeat skips the decode
  // Per session, so small: an ACK is ~100 bytes, and WsReader keeps the start of a longer frame.
  std::array<char, 4096> read_buffer_;
  SendQueue queue_;           // whole frames (server_frame)
  size_t written_ = 0;        // of the front frame
  asio::steady_timer timer_;  // the hello deadline, then the closing handshake's
  asio::steady_timer idle_timer_;
  uint64_t reads_ = 0;  // that brought bytes from the agent (watch_idle)
  uint64_t reads_at_last_check_ = 0;
  bool pinged_ = false;
  bool closing_ = false;
  bool close_when_drained_ = false;  // the handshake is over: close once the queue is out
  AgentHub& hub_;
  ControllerState& state_;
  uint64_t session_ = 0;
  std::string host_;
  std::string cert_host_;  // with TLS: the host id its certificate names
};

// A GET /v1/events client (the console): the response head, then the EventFeed's events as they
// come, close-delimited, with a comment line every kKeepalive so that a peer that went away is
// noticed and proxies keep the stream open (the keepalive timer's handler holds the session
// until it closes). Each write has kWriteTimeout. Its queue is bounded as an agent's is: a client
// that does not read is closed, and reconnects to a fresh snapshot.
template <typename Stream>
class EventStreamSession : public std::enable_shared_from_this<EventStreamSession<Stream>>,
                           public TlsPeer {
  using std::enable_shared_from_this<EventStreamSession<Stream>>::shared_from_this;

 public:
  static constexpr std::chrono::seconds kKeepalive{15};
  static constexpr std::chrono::seconds kWriteTimeout{30};

  EventStreamSession(Stream stream, Slot slot, EventFeed& feed, bool has_certificate)
      : stream_(std::move(stream)),
        slot_(std::move(slot)),
        queue_(slot_.gate().limits().agent_send_queue_bytes),
        timer_(stream_.get_executor()),
        feed_(feed),
        has_certificate_(has_certificate) {}

  void run() {
    beast::get_lowest_layer(stream_).expires_never();
    push(
        "HTTP/1.1 200 OK\r\nServer: cutover-controller\r\nContent-Type: text/event-stream\r\n"
        "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n");
    std::weak_ptr<EventStreamSession> weak = shared_from_this();
    id_ = feed_.subscribe([weak](const std::string& text) {
      if (auto s = weak.lock()) s->push(text);
    });
    keepalive();
  }

  void recheck(asio::ssl::context& ctx) override {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      if (closed_ || !has_certificate_ || peer_still_valid(stream_.native_handle(), ctx)) return;
      slot_.gate().metrics().auth_refused("certificate_revoked");
      close();
    }
  }

 private:
  void keepalive() {
    timer_.expires_after(kKeepalive);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      self->push(": keepalive\n\n");
      self->keepalive();
    });
  }

  void push(std::string text) {
    if (closed_) return;
    const bool idle = queue_.empty();
    if (!queue_.push(std::move(text))) {
      logger("http")->warn("event stream client: {} bytes queued and not read; closing it",
                           queue_.bytes());
      close();
      return;
    }
    if (idle) write_next();
  }

  void write_next() {
    beast::get_lowest_layer(stream_).expires_after(kWriteTimeout);
    asio::async_write(stream_, asio::buffer(queue_.front()),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec || self->closed_) {
                          self->close();
                          return;
                        }
                        self->queue_.pop();
                        if (!self->queue_.empty()) {
                          self->write_next();
                        } else {
                          beast::get_lowest_layer(self->stream_).expires_never();
                        }
                      });
  }

  // push() runs inside the feed's publish, in the very callback close() would unsubscribe: the
  // unsubscribing and the socket's end come after this returns. The pending keepalive is
  // cancelled; the last handler holding the session lets it go.
  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      self->feed_.unsubscribe(self->id_);
      beast::error_code ignored;
      beast::get_lowest_layer(self->stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
      beast::get_lowest_layer(self->stream_).close();
    });
  }

  Stream stream_;
  Slot slot_;
  SendQueue queue_;
  asio::steady_timer timer_;
  EventFeed& feed_;
  bool has_certificate_;
  uint64_t id_ = 0;
  bool closed_ = false;
};

// One HTTP connection over the plain or the TLS stream; with TLS, `peer` is what the client's
// certificate proved (if it showed one). A session whose certificate gave it a role is a TlsPeer:
// a keep-alive connection must not outlive its certificate's revocation.
template <typename Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>>, public TlsPeer {
  using std::enable_shared_from_this<HttpSession<Stream>>::shared_from_this;

 public:
  HttpSession(Stream stream, Slot slot, std::shared_ptr<std::array<char, 65536>> scratch,
              RestApi& api, AgentHub& hub, ControllerState& state, EventFeed& feed,
              std::shared_ptr<ReadinessPoller> poller, PeerIdentity peer = {},
              std::shared_ptr<TlsPeers> peers = nullptr)
      : stream_(std::move(stream)),
        slot_(std::move(slot)),
        scratch_(std::move(scratch)),
        api_(api),
        hub_(hub),
        state_(state),
        feed_(feed),
        poller_(std::move(poller)),
        peer_(std::move(peer)),
        peers_(std::move(peers)) {}

  // Reads the next request's header: within header_timeout while the connection has not shown
  // the token, idle_timeout once it has. The body is read only after the header passed.
  void read() {
    const auto& limits = slot_.gate().limits();
    parser_.emplace();
    parser_->header_limit(8192);
    // Checked on the header, after the token (on_header). Not boost::none: Beast 1.74 compares a
    // Content-Length with an empty limit as exceeding it.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    lowest().expires_after(slot_.is_authenticated() ? limits.idle_timeout : limits.header_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void recheck(asio::ssl::context& ctx) override {
    if constexpr (kTls) {
      if (handed_over_ || !peer_.verified || peer_still_valid(stream_.native_handle(), ctx)) return;
      slot_.gate().metrics().auth_refused("certificate_revoked");
      logger("http")->warn("REST client {}: its certificate is revoked or expired; closing",
                           peer_.name);
      peer_ = {};  // whatever is still in flight is answered as for a client without one
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      lowest().cancel();
    }
  }

 private:
  void on_header(beast::error_code ec) {
    if (ec) return;  // closed, timed out or garbage: drop the connection
    const auto& req = parser_->get();
    const std::string auth(req[http::field::authorization]);
    const bool has_body = !parser_->is_done();
    const bool upgrade = websocket::is_upgrade(req);
    const bool agent_channel = upgrade && req.target() == "/v1/agent";
    if (kTls && agent_channel) {
      // With TLS an agent is who its certificate says; a token does not make one.
      if (!peer_.verified || peer_.role != "agent") {
        slot_.gate().metrics().auth_refused("no_agent_certificate");
        reply(403,
              error_body("forbidden",
                         "the agent channel needs an agent certificate from the "
                         "cluster CA (cutoverctl pki issue HOST)"),
              false);
        return;
      }
      if (auto elsewhere = api_.not_here("GET", std::string(req.target()), true)) {
        reply(elsewhere->status, std::move(elsewhere->body), false, 0, {}, elsewhere->content_type,
              std::move(elsewhere->headers));
        return;
      }
      slot_.authenticated();
      on_request();
      return;
    }
    if (auto refused =
            api_.refusal(std::string(req.method_string()), std::string(req.target()), auth,
                         agent_channel, has_body, Access::certificate_role(peer_))) {
      // Refused on the header: whatever body follows is never buffered (the open endpoints take
      // none, so no body is ever read without a role that may send it). With a body the
      // connection closes; a little of the body is read and dropped first so that a small
      // request's sender reads the refusal rather than a reset.
      reply(refused->status, std::move(refused->body), !has_body && !upgrade && req.keep_alive(),
            has_body ? 64 << 10 : 0, std::chrono::seconds(2), refused->content_type,
            std::move(refused->headers));
      return;
    }
    if (api_.role_of(auth) != Role::none || Access::certificate_role(peer_) != Role::none) {
      slot_.authenticated();
    }
    if (has_body) {
      if (parser_->content_length() && *parser_->content_length() > RestApi::kMaxBody) {
        too_large();
        return;
      }
      parser_->body_limit(RestApi::kMaxBody);  // a chunked body is counted as it comes
      lowest().expires_after(slot_.gate().limits().idle_timeout);
      if (beast::iequals(req[http::field::expect], "100-continue")) {
        auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
        http::async_write(stream_, *cont,
                          [self = shared_from_this(), cont](beast::error_code ec, size_t) {
                            if (!ec) self->read_body();
                          });
        return;
      }
      read_body();
      return;
    }
    on_request();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec == http::error::body_limit) {
                         self->too_large();
                       } else if (!ec) {
                         self->on_request();
                       }
                     });
  }

  // Answers 413 and keeps reading (and discarding) what the client is still sending, so that it
  // can finish its write and read the 413 instead of hitting a reset. Only for a client that
  // showed the token.
  void too_large() {
    reply(413, error_body("too_large", "request body over 1 MiB"), false, 64u << 20,
          std::chrono::seconds(10));
  }

  void on_request() {
    auto req = parser_->release();
    const std::string auth(req[http::field::authorization]);
    if (websocket::is_upgrade(req)) {
      if (req.target() != "/v1/agent") {
        reply(404, error_body("not_found", "WebSocket only on /v1/agent"), false);
      } else {
        lowest().expires_never();  // the WebSocket keeps its own deadlines
        handed_over_ = true;
        auto agent = std::make_shared<AgentSession<Stream>>(
            std::move(stream_), std::move(slot_), hub_, state_, kTls ? peer_.name : "", poller_);
        if (peers_) peers_->add(agent);
        agent->run(std::move(req));
      }
      return;
    }
    HttpRequest r{std::string(req.method_string()), std::string(req.target()), req.body(), auth,
                  Access::certificate_role(peer_)};
    HttpResponse res;
    try {
      res = api_.handle(r);
    } catch (const std::exception& e) {
      // handle() answers every error itself; this is the last line, so that no request can
      // unwind through the event loop and end the process.
      logger("http")->error("{} {}: {}", r.method, r.target, e.what());
      res = {
          500, error_body("internal", "the controller failed to answer"), "application/json", {}};
    }
    if (res.event_stream) {
      handed_over_ = true;
      auto events = std::make_shared<EventStreamSession<Stream>>(
          std::move(stream_), std::move(slot_), feed_, peer_.verified);
      if (peers_ && peer_.verified) peers_->add(events);
      events->run();
      return;
    }
    reply(res.status, std::move(res.body), req.keep_alive(), 0, {}, res.content_type,
          std::move(res.headers));
  }

  // Writes the response; then reads the next request, or (not keep_alive) shuts the connection
  // down after reading and dropping up to `drain` bytes the client may still be sending.
  void reply(int status, std::string body, bool keep_alive, size_t drain = 0,
             std::chrono::seconds drain_for = {}, const std::string& type = "application/json",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto res =
        std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    res->set(http::field::server, "cutover-controller");
    for (auto& [name, value] : headers) res->set(name, std::move(value));
    if (!body.empty() || status != 204) res->set(http::field::content_type, type);
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep_alive, drain, drain_for](
                          beast::error_code ec, size_t) {
                        if (ec || !keep_alive) {
                          beast::error_code ignored;
                          self->lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
                          if (drain > 0 && !ec) {
                            self->lowest().expires_after(drain_for);
                            self->drain(drain);
                          }
                          return;
                        }
                        self->read();
                      });
  }

  void drain(size_t left) {
    stream_.async_read_some(asio::buffer(*scratch_),
                            [self = shared_from_this(), left](beast::error_code ec, size_t n) {
                              if (!ec && n < left) self->drain(left - n);
                            });
  }

  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  Stream stream_;
  Slot slot_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  // The server's, shared: what is drained is dropped unread.
  std::shared_ptr<std::array<char, 65536>> scratch_;
  RestApi& api_;
  AgentHub& hub_;
  ControllerState& state_;
  EventFeed& feed_;
  std::shared_ptr<ReadinessPoller> poller_;  // for a plain agent session (none with TLS)
  PeerIdentity peer_;                        // with TLS: what the client's certificate proved
  std::shared_ptr<TlsPeers> peers_;  // with TLS: where a session with a certificate registers
  bool handed_over_ = false;         // the stream went to an AgentSession or EventStreamSession
};

// A connection over a cap: told so in one write that cannot block (a fresh socket's send buffer
// is empty), then closed. Whatever request already arrived is dropped first, so the close is a
// FIN the client can read the 503 before, rather than a reset.
void refuse(tcp::socket& socket, const char* why) {
  static constexpr char kHead[] =
      "HTTP/1.1 503 Service Unavailable\r\nServer: cutover-controller\r\nConnection: close\r\n"
      "Retry-After: 1\r\nContent-Type: application/json\r\nContent-Length: ";
  const std::string body = error_body("unavailable", std::string("connection refused: ") + why);
  const std::string res = kHead + std::to_string(body.size()) + "\r\n\r\n" + body;
  beast::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(asio::buffer(res), ec);
  std::array<char, 4096> sink;
  socket.read_some(asio::buffer(sink), ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

}  // namespace

struct HttpServer::Impl {
  Impl(asio::io_context& io, const tcp::endpoint& ep, RestApi& api, AgentHub& hub,
       ControllerState& state, EventFeed& feed, Metrics& metrics, HttpLimits limits)
      : acceptor(io, ep),
        backoff_timer(io),
        gate(std::make_shared<ConnectionGate>(limits, metrics)),
        scratch(std::make_shared<std::array<char, 65536>>()),
        poller(std::make_shared<ReadinessPoller>(io)),
        api(api),
        hub(hub),
        state(state),
        feed(feed) {}

  ~Impl() { poller->close(); }

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // EMFILE, ENFILE, ENOBUFS...: the pending connection stays in the backlog, and accepting
        // again at once would spin. Back off (10 ms doubling to 1 s) until an accept succeeds.
        backoff =
            std::clamp(backoff * 2, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
        gate->metrics().accept_failed();
        ++failed_accepts;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_accept_log >= std::chrono::seconds(10)) {
          logger("http")->error(
              "accept failed ({} times since the last report): {}; retrying in {} ms",
              failed_accepts, ec.message(), backoff.count());
          last_accept_log = now;
          failed_accepts = 0;
        }
        backoff_timer.expires_after(backoff);
        backoff_timer.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) accept();
        });
        return;
      }
      backoff = std::chrono::milliseconds(0);
      admit(std::move(socket));
      accept();
    });
  }

  void admit(tcp::socket socket) {
    if (const char* why = gate->refusal()) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_refusal_log >= std::chrono::seconds(10)) {
        logger("http")->warn("refusing connections: {} reached ({} open, {} without the token)",
                             why, gate->open(), gate->unauthenticated());
        last_refusal_log = now;
      }
      refuse(socket, why);
      return;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (!tls) {
      std::make_shared<HttpSession<PlainStream>>(PlainStream(std::move(socket)), Slot(gate),
                                                 scratch, api, hub, state, feed, poller)
          ->read();
      return;
    }
    // TLS first, within the header deadline; the session starts with what the client's
    // certificate proved. A certificate the CA did not sign, expired or revoked fails here.
    struct Handshake {
      TlsStream stream;
      Slot slot;
    };
    auto h = std::make_shared<Handshake>(Handshake{TlsStream(std::move(socket), *tls), Slot(gate)});
    beast::get_lowest_layer(h->stream).expires_after(gate->limits().header_timeout);
    h->stream.async_handshake(asio::ssl::stream_base::server, [this, h](beast::error_code ec) {
      if (ec) {
        gate->metrics().auth_refused("tls_handshake");
        const auto now = std::chrono::steady_clock::now();
        if (now - last_handshake_log >= std::chrono::seconds(10)) {
          logger("http")->warn("TLS handshake refused: {}", ec.message());
          last_handshake_log = now;
        }
        return;
      }
      const auto peer = peer_identity(h->stream.native_handle());
      auto session = std::make_shared<HttpSession<TlsStream>>(
          std::move(h->stream), std::move(h->slot), scratch, api, hub, state, feed, nullptr, peer,
          tls_peers);
      if (peer.verified) tls_peers->add(session);
      session->read();
    });
  }

  tcp::acceptor acceptor;
  asio::steady_timer backoff_timer;
  std::chrono::milliseconds backoff{0};
  uint64_t failed_accepts = 0;
  std::chrono::steady_clock::time_point last_accept_log{}, last_refusal_log{}, last_handshake_log{};
  std::shared_ptr<asio::ssl::context> tls;  // none: plain HTTP
  std::shared_ptr<TlsPeers> tls_peers = std::make_shared<TlsPeers>();
  std::shared_ptr<ConnectionGate> gate;
  // Shared by every session that drains a refused body: dropped bytes need no buffer of their own.
  std::shared_ptr<std::array<char, 65536>> scratch;
  // The plain agent sessions' reads. It holds them and they hold it: ~Impl ends that.
  std::shared_ptr<ReadinessPoller> poller;
  RestApi& api;
  AgentHub& hub;
  ControllerState& state;
  EventFeed& feed;
};

HttpServer::HttpServer(asio::io_context& io, const tcp::endpoint& listen, RestApi& api,
                       AgentHub& hub, ControllerState& state, EventFeed& feed, Metrics& metrics,
                       HttpLimits limits)
    : impl_(std::make_unique<Impl>(io, listen, api, hub, state, feed, metrics, limits)) {}

HttpServer::~HttpServer() = default;

void HttpServer::set_tls(std::shared_ptr<boost::asio::ssl::context> tls) {
  impl_->tls = std::move(tls);
  if (impl_->tls) impl_->tls_peers->recheck(*impl_->tls);  // revoked since: closed now
}

uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

void HttpServer::start() { impl_->accept(); }

}  // namespace cutover::controller
