// ControllerClient: Beast WebSocket client with reconnect/backoff.
#include "controller_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <optional>
#include <variant>

#include "logging.hpp"
#include "parse_error.hpp"
#include "wire.hpp"

namespace cutover::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {
void parse_one_controller_url(const std::string& url, ControllerClientConfig& out);
}  // namespace

void parse_controller_url(const std::string& list, ControllerClientConfig& out) {
  out.controllers.clear();
  size_t start = 0;
  for (;;) {
    const auto comma = list.find(',', start);
    ControllerClientConfig one;
    parse_one_controller_url(
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start), one);
    if (!out.controllers.empty() && one.tls != out.tls) {
      throw ParseError("--controller", "every controller URL must be ws:// or every one wss://");
    }
    out.tls = one.tls;
    out.controllers.emplace_back(one.host, one.port);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  out.host = out.controllers.front().first;
  out.port = out.controllers.front().second;
}

namespace {
void parse_one_controller_url(const std::string& url, ControllerClientConfig& out) {
  std::string rest = url;
  out.tls = false;
  if (rest.rfind("ws://", 0) == 0) {
    rest = rest.substr(5);
  } else if (rest.rfind("wss://", 0) == 0) {
    rest = rest.substr(6);
    out.tls = true;
  }
  auto slash = rest.find('/');
  if (slash != std::string::npos) {
    if (rest.substr(slash) != "/v1/agent" && rest.substr(slash) != "/") {
      throw ParseError("--controller", "path must be /v1/agent");
    }
    rest = rest.substr(0, slash);
  }
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
    throw ParseError("--controller",
                     "expected ws://HOST:PORT or wss://HOST:PORT, got '" + url + "'");
  }
  out.host = rest.substr(0, colon);
  out.port = rest.substr(colon + 1);
}
}  // namespace

struct ControllerClient::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, ControllerClientConfig cfg, DesiredFn fn)
      : io(io), resolver(io), timer(io), cfg(std::move(cfg)), on_desired(std::move(fn)) {}

  asio::io_context& io;
  tcp::resolver resolver;
  asio::steady_timer timer;
  ControllerClientConfig cfg;
  DesiredFn on_desired;
  using PlainWs = websocket::stream<beast::tcp_stream>;
  using TlsWs = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;
  std::variant<std::monostate, PlainWs, TlsWs> ws;
  // Calls fn(stream) with the channel's WebSocket, plain or over TLS (none before connect()).
  template <typename Fn>
  void with_ws(Fn&& fn) {
    std::visit(
        [&](auto& w) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(w)>, std::monostate>) fn(w);
        },
        ws);
  }
  beast::flat_buffer buffer;
  std::deque<std::string> queue;
  bool is_connected = false;
  bool stopping = false;
  std::chrono::milliseconds backoff{100};
  int64_t unreached = 0;  // failed attempts since the channel was last up
  std::string last_sent;
  bool have_state = false;  // a whole state came on this connection: deltas follow it
  bool started = false;
  bool connecting = false;  // resolve, connect or handshake under way
  MigrateFn on_migrate;
  PreparedFn on_prepared;
  AbortFn on_abort;
  // Outcomes of libvirt calls (migration_failed, aborted): the controller's decisions rest on
  // them, and it may be away when they happen. Sent again after every hello for a while; it
  // ignores what it has already settled.
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> outcomes;
  static constexpr size_t kMaxOutcomes = 32;
  static constexpr std::chrono::minutes kOutcomeLife{10};
  std::shared_ptr<spdlog::logger> log = logger("channel");
  size_t next_controller = 0;  // index in cfg.controllers of the one tried now

  void connect() {
    if (stopping) return;
    connecting = true;
    if (cfg.tls_context) {
      ws.emplace<TlsWs>(io, *cfg.tls_context);
    } else {
      ws.emplace<PlainWs>(io);
    }
    resolver.async_resolve(
        cfg.host, cfg.port,
        [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type r) {
          if (ec) return self->retry("resolve " + self->cfg.host + ": " + ec.message());
          self->with_ws([&](auto& w) {
            beast::get_lowest_layer(w).expires_after(std::chrono::seconds(5));
            beast::get_lowest_layer(w).async_connect(
                r, [self](beast::error_code ec, const tcp::endpoint&) {
                  if (ec) return self->retry("connect: " + ec.message());
                  self->secure();
                });
          });
        });
  }

  // TLS first when configured: the controller's certificate must be signed by the CA and name
  // the host in --controller (SNI is sent for it).
  void secure() {
    if (auto* w = std::get_if<TlsWs>(&ws)) {
      auto& tls = w->next_layer();
      SSL_set_tlsext_host_name(tls.native_handle(), cfg.host.c_str());
      tls.set_verify_callback(asio::ssl::host_name_verification(cfg.host));
      tls.async_handshake(asio::ssl::stream_base::client,
                          [self = shared_from_this()](beast::error_code ec) {
                            if (ec) return self->retry("TLS handshake: " + ec.message());
                            self->upgrade();
                          });
      return;
    }
    upgrade();
  }

  void upgrade() {
    with_ws([&](auto& w) {
      auto self = shared_from_this();
      beast::get_lowest_layer(w).expires_never();
      // Reports go out as they happen, often two in a row (a partial apply, then the rest;
      // conntrack, then a pause): without this, Nagle holds the second until the controller's
      // delayed ACK, ~40 ms.
      beast::get_lowest_layer(w).socket().set_option(tcp::no_delay(true));
      w.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
      w.set_option(websocket::stream_base::decorator([self](websocket::request_type& req) {
        if (!self->cfg.token.empty()) {
          req.set(beast::http::field::authorization, "Bearer " + self->cfg.token);
        }
      }));
      w.read_message_max(64 << 20);
      w.async_handshake(cfg.host + ":" + cfg.port, "/v1/agent", [self](beast::error_code ec) {
        if (ec) return self->retry("handshake: " + ec.message());
        self->on_open();
      });
    });
  }

  void on_open() {
    connecting = false;
    is_connected = true;
    have_state = false;
    backoff = std::chrono::milliseconds(100);
    unreached = 0;
    last_sent.clear();
    log->info("connected to controller {}:{} as {}", cfg.host, cfg.port, cfg.self.id.str());
    send(wire::encode(wire::AgentMessage{wire::Hello{cfg.self}}));
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(outcomes, [&](const auto& o) { return now - o.first > kOutcomeLife; });
    for (const auto& o : outcomes) send(o.second);
    read();
  }

  void read() {
    with_ws([&](auto& w) { w.async_read(buffer, on_read()); });
  }

  auto on_read() {
    return [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->retry("connection lost: " + ec.message());
      std::string text = beast::buffers_to_string(self->buffer.data());
      self->buffer.consume(self->buffer.size());
      try {
        auto msg = wire::decode_controller_message(text);
        if (auto* mig = std::get_if<wire::Migrate>(&msg)) {
          if (self->on_migrate) self->on_migrate(*mig);
          self->read();
          return;
        }
        if (auto* p = std::get_if<wire::Prepared>(&msg)) {
          if (self->on_prepared) self->on_prepared(*p);
          self->read();
          return;
        }
        if (auto* a = std::get_if<wire::Abort>(&msg)) {
          if (self->on_abort) self->on_abort(*a);
          self->read();
          return;
        }
        if (auto* d = std::get_if<wire::Desired>(&msg)) {
          self->have_state = true;
          self->on_desired(std::move(d->state));
        } else if (self->have_state) {
          self->on_desired(std::move(std::get<wire::Delta>(msg)));
        } else {
          throw ParseError("type", "delta before any full state");
        }
      } catch (const ParseError& e) {
        // The dataplane never sees it; the controller learns through the NACK of nothing: log.
        self->log->error("controller sent a message we cannot parse: {}", e.what());
      }
      self->read();
    };
  }

  void send_outcome(std::string text) {
    if (outcomes.size() == kMaxOutcomes) outcomes.pop_front();
    outcomes.emplace_back(std::chrono::steady_clock::now(), text);
    send(std::move(text));
  }

  void send(std::string text) {
    if (!is_connected) return;
    queue.push_back(std::move(text));
    if (queue.size() == 1) write_next();
  }

  void write_next() {
    with_ws([&](auto& w) {
      w.text(true);
      w.async_write(asio::buffer(queue.front()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      if (ec) {
                        self->queue.clear();
                        return;
                      }
                      self->queue.pop_front();
                      if (!self->queue.empty()) self->write_next();
                    });
    });
  }

  void retry(const std::string& why) {
    const bool was = is_connected;
    is_connected = false;
    connecting = false;
    queue.clear();
    if (stopping) return;
    // Among highly available controllers the next one may be the leader: within a round each
    // is tried 100 ms after the last; the backoff grows from round to round.
    bool round_done = true;
    if (cfg.controllers.size() > 1) {
      next_controller = (next_controller + 1) % cfg.controllers.size();
      std::tie(cfg.host, cfg.port) = cfg.controllers[next_controller];
      round_done = next_controller == 0;
    }
    if (was) {
      log->warn("controller channel down ({}); reconnecting", why);
    } else if (++unreached == 1 || unreached % 12 == 0) {
      // Said at warning (an agent with no controller applies nothing new), but not on every
      // retry: the first failure, then about once a minute at the longest back-off.
      log->warn("controller {}:{} not reachable ({}); {} attempt(s) so far, retrying", cfg.host,
                cfg.port, why, unreached);
    } else {
      log->debug("controller not reachable ({}); retrying in {} ms", why, backoff.count());
    }
    if (round_done) {
      timer.expires_after(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    } else {
      timer.expires_after(std::chrono::milliseconds(100));
    }
    timer.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->connect();
    });
  }

  // A channel that is down is tried again now. A live one, or an attempt under way, is left
  // alone: replacing the stream under its pending operations would pull it from under them.
  void reconnect_now() {
    if (stopping || is_connected || connecting) return;
    backoff = std::chrono::milliseconds(100);
    timer.cancel();  // the pending retry ends with operation_aborted and does not connect
    connect();
  }
};

ControllerClient::ControllerClient(asio::io_context& io, ControllerClientConfig config,
                                   DesiredFn fn)
    : impl_(std::make_shared<Impl>(io, std::move(config), std::move(fn))) {}

ControllerClient::~ControllerClient() { stop(); }

void ControllerClient::start() {
  if (impl_->started) return impl_->reconnect_now();
  impl_->started = true;
  impl_->connect();
}

void ControllerClient::reconnect() { impl_->reconnect_now(); }

void ControllerClient::stop() {
  impl_->stopping = true;
  impl_->timer.cancel();
  if (impl_->is_connected) {
    impl_->with_ws([](auto& w) {
      beast::error_code ec;
      beast::get_lowest_layer(w).socket().close(ec);
    });
  }
}

bool ControllerClient::connected() const { return impl_->is_connected; }

void ControllerClient::on_migrate(MigrateFn fn) { impl_->on_migrate = std::move(fn); }

void ControllerClient::on_prepared(PreparedFn fn) { impl_->on_prepared = std::move(fn); }

void ControllerClient::on_abort(AbortFn fn) { impl_->on_abort = std::move(fn); }

void ControllerClient::aborted(const wire::Aborted& answer) {
  impl_->send_outcome(wire::encode(wire::AgentMessage{answer}));
}

void ControllerClient::announced(const wire::Announced& round) {
  impl_->send(wire::encode(wire::AgentMessage{round}));
}

void ControllerClient::conntrack(const wire::Conntrack& ct) {
  impl_->send(wire::encode(wire::AgentMessage{ct}));
}

void ControllerClient::incoming(const std::vector<std::string>& iface_ids) {
  impl_->send(wire::encode(wire::AgentMessage{wire::Incoming{iface_ids}}));
}

void ControllerClient::migration_failed(const std::string& migration, const std::string& error) {
  impl_->send_outcome(wire::encode(wire::AgentMessage{wire::MigrationFailed{migration, error}}));
}

void ControllerClient::report(const ApplyReport& r) {
  // The key is the message without apply_ms, which differs every time. Everything else
  // (storage, which changes on its own thread, libvirt's domains and pre-copy passes) must reach
  // the controller when it changes, even within one generation.
  std::string text, key;
  if (r.ok) {
    // A partially applied generation goes out too (with what it waits for): the controller
    // learns the rest of the report (bound ports, libvirt's domains) and does not count it.
    wire::Ack ack;
    static_cast<AgentReport&>(ack) = r;
    ack.generation = r.generation;
    key = wire::encode(wire::AgentMessage{ack});
    ack.apply_ms = r.apply_ms;
    text = wire::encode(wire::AgentMessage{ack});
  } else if (r.rejected) {
    text = key = wire::encode(wire::AgentMessage{wire::Nack{r.generation, r.error, r.error_field}});
  } else {
    return;
  }
  if (key == impl_->last_sent) return;
  impl_->last_sent = key;
  impl_->send(std::move(text));
}

}  // namespace cutover::agent
