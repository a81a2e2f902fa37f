// bench_controller: N simulated agents on loopback, each a real WebSocket client on the agent
// channel (hello, then ACK every generation it receives), against a running cutover-controller.
// Creates one network and one port per agent, then moves one port back and forth between two
// hosts K times and measures, per change, the time from the REST write until every agent has
// received the new generation (the controller's own figure, sending to the last ACK, is in its
// /metrics). With a PKI directory (TLS), every agent speaks TLS with its own certificate (issued
// here, named after its host) and the REST client HTTPS. Prints JSON; never passes or fails on
// time.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http_client.hpp"
#include "pki.hpp"
#include "tls.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// One simulated agent after its handshake: a non-blocking socket speaking RFC 6455 frames
// directly. The fleet shares this machine's two cores with the controller, so an agent here costs
// one read and one write per generation and nothing else; real agents run on their own hosts.
struct Agent {
  int fd = -1;
  SSL* ssl = nullptr;  // with TLS: every byte goes through it
  int index = 0;
  std::string in;       // bytes read, not yet a whole frame
  std::string message;  // payload of a fragmented message so far
  std::atomic<uint64_t> generation{0};
  std::atomic<Clock::rep> seen_at{0};
  std::atomic<bool> closed{false};
  std::atomic<size_t> last_bytes{0};  // size of the last message (a delta, once changes run)
  uint32_t mask_state = 0;

  // A client frame: masked, as RFC 6455 5.3 requires of clients. Short ones (ACKs, pongs) are
  // built on the stack: the fleet shares the controller's two cores, and what it spends per
  // message delays every agent after it (bench_loopback_floor's answering side spends nothing).
  void send_frame(uint8_t opcode, std::string_view payload) {
    char stack[256];
    std::string heap;
    char* f = stack;
    if (payload.size() + 14 > sizeof stack) {
      heap.resize(payload.size() + 14);
      f = heap.data();
    }
    size_t len = 0;
    f[len++] = static_cast<char>(0x80 | opcode);
    if (payload.size() < 126) {
      f[len++] = static_cast<char>(0x80 | payload.size());
    } else if (payload.size() <= 0xffff) {
      f[len++] = static_cast<char>(0x80 | 126);
      f[len++] = static_cast<char>(payload.size() >> 8);
      f[len++] = static_cast<char>(payload.size() & 0xff);
    } else {
      f[len++] = static_cast<char>(0x80 | 127);
      for (int shift = 56; shift >= 0; shift -= 8) {
        f[len++] = static_cast<char>((uint64_t{payload.size()} >> shift) & 0xff);
      }
    }
    mask_state = mask_state * 1664525u + 1013904223u;
    char key[4];
    std::memcpy(key, &mask_state, 4);
    std::memcpy(f + len, key, 4);
    len += 4;
    for (size_t i = 0; i < payload.size(); ++i)
      f[len++] = static_cast<char>(payload[i] ^ key[i & 3]);
    for (size_t off = 0; off < len;) {
      const ssize_t n = write_some(f + off, len - off);
      if (n > 0) {
        off += static_cast<size_t>(n);
      } else if (n == -2 || (n < 0 && errno == EAGAIN)) {
        std::this_thread::yield();  // the controller is slow to read; an ACK is tiny
      } else {
        closed = true;
        return;
      }
    }
  }

  // Plain send/recv, or through TLS: bytes moved, -2 when it would block, else -1 (gone).
  ssize_t write_some(const char* p, size_t n) {
    if (!ssl) return ::send(fd, p, n, MSG_NOSIGNAL);
    const int w = SSL_write(ssl, p, static_cast<int>(n));
    if (w > 0) return w;
    const int e = SSL_get_error(ssl, w);
    return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? -2 : -1;
  }
  ssize_t read_some(char* p, size_t n) {
    if (!ssl) {
      const ssize_t r = ::recv(fd, p, n, 0);
      return r < 0 && errno == EAGAIN ? -2 : (r == 0 ? -1 : r);
    }
    const int r = SSL_read(ssl, p, static_cast<int>(n));
    if (r > 0) return r;
    const int e = SSL_get_error(ssl, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? -2 : -1;
  }

  // Like an agent with a fast dataplane: take the generation, ACK it.
  void on_message(std::string_view m) {
    static constexpr std::string_view kKey = "\"generation\":";
    const auto pos = m.find(kKey);
    if (pos == std::string_view::npos) return;
    uint64_t gen = 0;
    std::from_chars(m.data() + pos + kKey.size(), m.data() + m.size(), gen);
    seen_at = Clock::now().time_since_epoch().count();
    last_bytes = m.size();
    generation = gen;
    char ack[64];
    const int n = std::snprintf(ack, sizeof ack, R"({"type":"ack","generation":%llu})",
                                static_cast<unsigned long long>(gen));
    send_frame(0x1, std::string_view(ack, static_cast<size_t>(n)));
  }

  // Reads what is there and handles every whole frame; false once the connection is gone. A
  // plain socket's one read is parsed where it landed; only an unfinished frame is kept.
  bool readable() {
    char buf[65536];
    std::string_view data;
    for (;;) {
      const ssize_t n = read_some(buf, sizeof buf);
      if (n > 0) {
        const bool last = !ssl && static_cast<size_t>(n) < sizeof buf;
        if (last && in.empty()) {
          data = std::string_view(buf, static_cast<size_t>(n));
          break;
        }
        in.append(buf, static_cast<size_t>(n));
        // TLS may hold more decrypted bytes than the socket shows: read until it would block.
        if (last) break;
      } else if (n == -2) {
        break;
      } else {
        return false;
      }
    }
    if (data.empty()) data = in;
    size_t off = 0;
    for (;;) {
      const size_t avail = data.size() - off;
      if (avail < 2) break;
      const auto* b = reinterpret_cast<const uint8_t*>(data.data() + off);
      const bool fin = b[0] & 0x80;
      const uint8_t opcode = b[0] & 0x0f;
      if (b[1] & 0x80) return false;  // a server never masks
      uint64_t len = b[1] & 0x7f;
      size_t header = 2;
      if (len == 126) {
        if (avail < 4) break;
        len = (uint64_t{b[2]} << 8) | b[3];
        header = 4;
      } else if (len == 127) {
        if (avail < 10) break;
        len = 0;
        for (int i = 2; i < 10; ++i) len = (len << 8) | b[i];
        header = 10;
      }
      if (avail < header + len) break;
      const std::string_view payload(data.data() + off + header, len);
      off += header + len;
      if (opcode <= 0x2) {  // continuation, text, binary
        if (fin && message.empty()) {
          on_message(payload);
        } else {
          message.append(payload);
          if (fin) {
            on_message(message);
            message.clear();
          }
        }
      } else if (opcode == 0x8) {
        return false;
      } else if (opcode == 0x9) {
        send_frame(0xA, payload);  // pong
      }
    }
    if (data.data() == in.data()) {
      in.erase(0, off);
    } else {
      in.assign(data.substr(off));
    }
    return true;
  }
};

// The WebSocket handshake through Beast (a real client handshake with the bearer token), then
// the socket is handed over to the frame loop above.
int connect_agent(const tcp::endpoint& ep, int index, const std::string& token) {
  asio::io_context io;
  websocket::stream<tcp::socket> ws(io);
  ws.next_layer().connect(ep);
  ws.set_option(websocket::stream_base::decorator([&](websocket::request_type& r) {
    r.set(beast::http::field::authorization, "Bearer " + token);
  }));
  ws.handshake("127.0.0.1", "/v1/agent");
  char hello[256];
  std::snprintf(hello, sizeof hello,
                R"({"type":"hello","host":{"id":"h%d","underlay_ip":"10.%d.%d.%d"}})", index,
                100 + ((index >> 16) & 127), (index >> 8) & 255, index & 255);
  ws.text(true);
  ws.write(asio::buffer(std::string(hello)));
  const int fd = ::dup(ws.next_layer().native_handle());
  // Asio left the descriptor blocking for its synchronous calls: a read would wait for the rest
  // of a large slice instead of serving the other agents.
  if (fd < 0 || ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    throw std::runtime_error(std::string("cannot take over the socket: ") + std::strerror(errno));
  }
  return fd;  // the io_context and its socket close their copy; this one stays connected
}

// With TLS: the handshake (this host's certificate), the WebSocket upgrade and the hello written
// by hand over OpenSSL on a blocking socket, then the socket made non-blocking for the loop.
SSL* connect_agent_tls(SSL_CTX* ctx, int port, int index, const std::string& pki_dir, int& fd) {
  fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SSL* ssl = SSL_new(ctx);
  const std::string name = "h" + std::to_string(index);
  if (SSL_use_certificate_file(ssl, (pki_dir + "/" + name + ".pem").c_str(), SSL_FILETYPE_PEM) !=
          1 ||
      SSL_use_PrivateKey_file(ssl, (pki_dir + "/" + name + ".key").c_str(), SSL_FILETYPE_PEM) !=
          1) {
    throw std::runtime_error("cannot load the certificate of " + name);
  }
  SSL_set_fd(ssl, fd);
  SSL_set1_host(ssl, "127.0.0.1");
  if (SSL_connect(ssl) != 1) throw std::runtime_error("TLS handshake of " + name + " failed");
  const std::string req =
      "GET /v1/agent HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
      "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
      "13\r\n\r\n";
  SSL_write(ssl, req.data(), static_cast<int>(req.size()));
  std::string head;
  char c;
  while (head.find("\r\n\r\n") == std::string::npos && SSL_read(ssl, &c, 1) == 1) head += c;
  if (head.rfind("HTTP/1.1 101", 0) != 0) {
    throw std::runtime_error("agent " + name + ": upgrade refused: " + head.substr(0, 40));
  }
  return ssl;
}

// Runs a share of the agents on one thread until `stop`.
void run_agents(std::vector<Agent*> agents, const std::atomic<bool>& stop) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (auto* a : agents) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = a;
    epoll_ctl(ep, EPOLL_CTL_ADD, a->fd, &ev);
  }
  std::vector<epoll_event> events(256);
  while (!stop) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 5);
    for (int i = 0; i < n; ++i) {
      auto* a = static_cast<Agent*>(events[i].data.ptr);
      if (!a->readable()) {
        a->closed = true;
        epoll_ctl(ep, EPOLL_CTL_DEL, a->fd, nullptr);
      }
    }
  }
  ::close(ep);
}

// CPU seconds of a process in user space and in the kernel, from /proc; {0, 0} when it cannot
// be read.
struct Cpu {
  double user = 0;
  double kernel = 0;
};
Cpu process_cpu(int pid) {
  std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return {};
  char buf[1024];
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
  unsigned long utime = 0, stime = 0;
  if (!p || std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                        &stime) != 2) {
    return {};
  }
  const auto tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {static_cast<double>(utime) / tick, static_cast<double>(stime) / tick};
}

double self_cpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: bench_controller PORT TOKEN AGENTS CHANGES [THREADS [CONTROLLER_PID "
                 "[PKI_DIR]]]\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const std::string token = argv[2];
  const int n = std::atoi(argv[3]);
  const int changes = std::atoi(argv[4]);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  const std::string pki_dir = argc > 7 ? argv[7] : "";
  std::shared_ptr<asio::ssl::context> rest_tls;
  if (!pki_dir.empty()) rest_tls = cutover::make_client_tls({"", "", pki_dir + "/ca.pem", ""});
  cutover::cli::HttpClient http(
      (pki_dir.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(port), token,
      rest_tls);
  auto must = [&](const char* method, const std::string& path, const nlohmann::json& body) {
    auto r = http.request(method, path, body.dump());
    if (r.status >= 300) {
      std::fprintf(stderr, "%s %s -> %d %s\n", method, path.c_str(), r.status, r.body.c_str());
      std::exit(1);
    }
  };
  must("POST", "/v1/networks", {{"id", "shared"}, {"vni", 4242}});
  for (int i = 0; i < n; ++i) {
    char mac[32], ip[32];
    std::snprintf(mac, sizeof mac, "52:54:00:%02x:%02x:%02x", (i >> 16) & 255, (i >> 8) & 255,
                  i & 255);
    std::snprintf(ip, sizeof ip, "10.%d.%d.%d", 100 + ((i >> 16) & 127), (i >> 8) & 255, i & 255);
    must("PUT", "/v1/hosts/h" + std::to_string(i),
         {{"id", "h" + std::to_string(i)}, {"underlay_ip", ip}});
    must("POST", "/v1/ports",
         {{"id", "p" + std::to_string(i)},
          {"mac", mac},
          {"network", "shared"},
          {"host", "h" + std::to_string(i)}});
  }

  // The simulated agents run on `threads` threads of their own; this one makes the REST writes.
  const int threads = argc > 5 ? std::max(1, std::atoi(argv[5])) : 1;
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port));
  std::vector<std::unique_ptr<Agent>> agents;
  SSL_CTX* agent_tls = nullptr;
  if (!pki_dir.empty()) {
    cutover::cli::Pki pki(pki_dir);
    for (int i = 0; i < n; ++i) {
      const std::string name = "h" + std::to_string(i);
      if (!std::ifstream(pki_dir + "/" + name + ".pem")) pki.issue({name, "agent", {}, {}, 2});
    }
    agent_tls = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(agent_tls, (pki_dir + "/ca.pem").c_str(), nullptr);
    SSL_CTX_set_verify(agent_tls, SSL_VERIFY_PEER, nullptr);
  }
  const auto t_connect = Clock::now();
  for (int i = 0; i < n; ++i) {
    agents.push_back(std::make_unique<Agent>());
    auto& a = *agents.back();
    a.index = i;
    a.mask_state = static_cast<uint32_t>(std::random_device{}()) + i;
    if (!agent_tls) {
      a.fd = connect_agent(ep, i, token);
      continue;
    }
    a.ssl = connect_agent_tls(agent_tls, port, i, pki_dir, a.fd);
    char hello[256];
    std::snprintf(hello, sizeof hello,
                  R"({"type":"hello","host":{"id":"h%d","underlay_ip":"10.%d.%d.%d"}})", i,
                  100 + ((i >> 16) & 127), (i >> 8) & 255, i & 255);
    a.send_frame(0x1, hello);
    ::fcntl(a.fd, F_SETFL, ::fcntl(a.fd, F_GETFL) | O_NONBLOCK);
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    std::vector<Agent*> share;
    for (int i = t; i < n; i += threads) share.push_back(agents[i].get());
    workers.emplace_back(run_agents, std::move(share), std::cref(stop));
  }
  struct Join {
    std::atomic<bool>& stop;
    std::vector<std::thread>& w;
    ~Join() {
      stop = true;
      for (auto& t : w) t.join();
    }
  } join{stop, workers};
  // Waits (polling every 0.5 ms: the agents timestamp what they see themselves) until every
  // agent has seen `target`, or a connection is gone, or the limit passes.
  auto all_at = [&](uint64_t target, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      bool all = true;
      for (auto& a : agents) {
        if (a->closed) {
          std::fprintf(stderr, "agent h%d: the controller closed the connection\n", a->index);
          return false;
        }
        all = all && a->generation >= target;
      }
      if (all) return true;
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
  };
  if (!all_at(1, std::chrono::seconds(120))) {
    std::fprintf(stderr, "not every agent got its initial state\n");
    return 1;
  }
  const double connect_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - t_connect).count();

  std::vector<double> samples;
  // h0 holds only p0: moving p0 to h1 sends every agent the same delta (h0 leaves the VNI and gets
  // its small slice); moving it back makes h0 rejoin, and h0 gets the whole slice of n ports.
  std::vector<double> to_h1, to_h0;
  std::vector<double> write_samples;  // the REST write alone (includes the store's commit)
  auto p0 = nlohmann::json::parse(http.request("GET", "/v1/ports/p0").body);
  // CPU spent during the changes alone: the controller's (when its PID is given) and this
  // process's (the simulated fleet plus the REST client), per change.
  const int controller_pid = argc > 6 ? std::atoi(argv[6]) : 0;
  const Cpu controller_cpu0 = controller_pid ? process_cpu(controller_pid) : Cpu{};
  const double self_cpu0 = self_cpu();
  for (int k = 0; k < changes; ++k) {
    p0["host"] = (k % 2 == 0) ? "h1" : "h0";
    const auto t0 = Clock::now();
    auto r = http.request("PUT", "/v1/ports/p0", p0.dump());
    write_samples.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (r.status != 200) {
      std::fprintf(stderr, "PUT /v1/ports/p0 -> %d %s\n", r.status, r.body.c_str());
      return 1;
    }
    const auto target =
        nlohmann::json::parse(http.request("GET", "/healthz").body)["generation"].get<uint64_t>();
    if (!all_at(target, std::chrono::seconds(60))) {
      std::fprintf(stderr, "change %d: not every agent reached generation %llu\n", k,
                   static_cast<unsigned long long>(target));
      return 1;
    }
    Clock::time_point last = t0;
    for (auto& a : agents) last = std::max(last, Clock::time_point(Clock::duration(a->seen_at)));
    samples.push_back(std::chrono::duration<double, std::milli>(last - t0).count());
    (k % 2 == 0 ? to_h1 : to_h0).push_back(samples.back());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let the ACKs drain
  }
  const Cpu controller_cpu1 = controller_pid ? process_cpu(controller_pid) : Cpu{};
  const double per_change = 1000.0 / changes;
  const double controller_user_ms =
      controller_pid ? (controller_cpu1.user - controller_cpu0.user) * per_change : -1;
  const double controller_kernel_ms =
      controller_pid ? (controller_cpu1.kernel - controller_cpu0.kernel) * per_change : -1;
  const double controller_cpu_ms = controller_pid ? controller_user_ms + controller_kernel_ms : -1;
  const double fleet_cpu_ms = (self_cpu() - self_cpu0) * 1000 / changes;
  std::printf(
      "{\"agents\": %d, \"changes\": %d, \"initial_sync_ms\": %.1f, \"p50_ms\": %.2f, "
      "\"p99_ms\": %.2f, \"max_ms\": %.2f, \"write_p50_ms\": %.2f, \"write_p99_ms\": %.2f, "
      "\"controller_cpu_ms_per_change\": %.2f, \"controller_kernel_ms_per_change\": %.2f, "
      "\"controller_user_ms_per_change\": %.2f, \"fleet_cpu_ms_per_change\": %.2f, "
      "\"delta_bytes\": %zu, \"p50_ms_delta_only\": %.2f, \"p50_ms_rejoin\": %.2f}\n",
      n, changes, connect_ms, percentile(samples, 0.5), percentile(samples, 0.99),
      *std::max_element(samples.begin(), samples.end()), percentile(write_samples, 0.5),
      percentile(write_samples, 0.99), controller_cpu_ms, controller_kernel_ms, controller_user_ms,
      fleet_cpu_ms, agents.back()->last_bytes.load(), percentile(to_h1, 0.5),
      to_h0.empty() ? 0.0 : percentile(to_h0, 0.5));
  return 0;
}
