// bench_controller: N simulated agents on loopback, each a real WebSocket client on the agent
// channel (hello, then ACK every generation it receives), against a running cutover-controller.
// Creates one network and one port per agent, then moves one port back and forth between two
// hosts K times and measures, per change, the time from the REST write until every agent has
// received and ACKed the new generation. Prints JSON; never passes or fails on time.
#include <sys/resource.h>

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Agent : std::enable_shared_from_this<Agent> {
  Agent(asio::io_context& io, int index, std::string token)
      : ws(asio::make_strand(io)), index(index), token(std::move(token)) {}
  websocket::stream<beast::tcp_stream> ws;
  beast::flat_buffer buffer;
  std::deque<std::string> queue;
  int index;
  std::string token;
  std::atomic<uint64_t> generation{0};
  std::atomic<Clock::rep> seen_at{0};
  bool connected = false;

  void start(const tcp::endpoint& ep) {
    beast::get_lowest_layer(ws).async_connect(
        ep, [self = shared_from_this()](beast::error_code ec) {
          if (ec) return;
          self->ws.set_option(websocket::stream_base::decorator([self](websocket::request_type& r) {
            r.set(beast::http::field::authorization, "Bearer " + self->token);
          }));
          self->ws.read_message_max(64 << 20);
          self->ws.async_handshake("127.0.0.1", "/v1/agent", [self](beast::error_code ec) {
            if (ec) return;
            self->connected = true;
            char hello[256];
            std::snprintf(hello, sizeof hello,
                          R"({"type":"hello","host":{"id":"h%d","underlay_ip":"10.%d.%d.%d"}})",
                          self->index, 100 + ((self->index >> 16) & 127), (self->index >> 8) & 255,
                          self->index & 255);
            self->send(hello);
            self->read();
          });
        });
  }
  void read() {
    ws.async_read(buffer, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        self->connected = false;
        return;
      }
      // Like an agent with a fast dataplane: take the generation, ACK it.
      const auto data = beast::buffers_to_string(self->buffer.data());
      self->buffer.consume(self->buffer.size());
      const auto pos = data.rfind("\"generation\":");
      if (pos != std::string::npos) {
        const uint64_t gen = std::strtoull(data.c_str() + pos + 13, nullptr, 10);
        self->seen_at = Clock::now().time_since_epoch().count();
        self->generation = gen;
        self->send(R"({"type":"ack","generation":)" + std::to_string(gen) + "}");
      }
      self->read();
    });
  }
  void send(std::string text) {
    queue.push_back(std::move(text));
    if (queue.size() == 1) write_next();
  }
  void write_next() {
    ws.text(true);
    ws.async_write(asio::buffer(queue.front()),
                   [self = shared_from_this()](beast::error_code ec, size_t) {
                     if (ec) return;
                     self->queue.pop_front();
                     if (!self->queue.empty()) self->write_next();
                   });
  }
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_controller PORT TOKEN AGENTS CHANGES [THREADS]\n");
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

  cutover::cli::HttpClient http("http://127.0.0.1:" + std::to_string(port), token);
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

  // The simulated agents run on `threads` threads (the main one included), each agent on its own
  // strand, so that the fleet is not limited to one core.
  const int threads = argc > 5 ? std::max(1, std::atoi(argv[5])) : 1;
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) workers.emplace_back([&io] { io.run(); });
  struct Join {
    asio::io_context& io;
    std::vector<std::thread>& w;
    ~Join() {
      io.stop();
      for (auto& t : w) t.join();
    }
  } join{io, workers};
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port));
  std::vector<std::shared_ptr<Agent>> agents;
  for (int i = 0; i < n; ++i) {
    agents.push_back(std::make_shared<Agent>(io, i, token));
    agents.back()->start(ep);
  }
  auto run_until = [&](auto&& done, std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!done() && Clock::now() < deadline) io.run_for(std::chrono::microseconds(200));
    return done();
  };
  const auto t_connect = Clock::now();
  if (!run_until(
          [&] {
            return std::all_of(agents.begin(), agents.end(),
                               [](auto& a) { return a->generation > 0; });
          },
          std::chrono::seconds(120))) {
    std::fprintf(stderr, "not every agent got its initial state\n");
    return 1;
  }
  const double connect_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - t_connect).count();

  std::vector<double> samples;
  std::vector<double> write_samples;  // the REST write alone (includes the store's commit)
  auto p0 = nlohmann::json::parse(http.request("GET", "/v1/ports/p0").body);
  for (int k = 0; k < changes; ++k) {
    p0["host"] = (k % 2 == 0) ? "h1" : "h0";
    const auto t0 = Clock::now();
    // The REST client runs on its own thread, like an operator's: the agents read and ACK while
    // the controller is still answering it.
    auto write = std::async(std::launch::async, [&, body = p0.dump()] {
      auto r = http.request("PUT", "/v1/ports/p0", body);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (r.status != 200) return std::make_pair(ms, uint64_t{0});
      return std::make_pair(
          ms, nlohmann::json::parse(http.request("GET", "/healthz").body)["generation"]
                  .get<uint64_t>());
    });
    while (write.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      io.run_for(std::chrono::microseconds(200));
    }
    const auto [write_ms, target] = write.get();
    if (target == 0) return 1;
    write_samples.push_back(write_ms);
    if (!run_until(
            [&] {
              return std::all_of(agents.begin(), agents.end(),
                                 [&](auto& a) { return a->generation >= target; });
            },
            std::chrono::seconds(60))) {
      std::fprintf(stderr, "change %d: not every agent reached generation %llu\n", k,
                   static_cast<unsigned long long>(target));
      return 1;
    }
    Clock::time_point last = t0;
    for (auto& a : agents) last = std::max(last, Clock::time_point(Clock::duration(a->seen_at)));
    samples.push_back(std::chrono::duration<double, std::milli>(last - t0).count());
    io.run_for(std::chrono::milliseconds(2));  // let the ACKs drain before the next change
  }
  std::printf(
      "{\"agents\": %d, \"changes\": %d, \"initial_sync_ms\": %.1f, \"p50_ms\": %.2f, "
      "\"p99_ms\": %.2f, \"max_ms\": %.2f, \"write_p50_ms\": %.2f, \"write_p99_ms\": %.2f}\n",
      n, changes, connect_ms, percentile(samples, 0.5), percentile(samples, 0.99),
      *std::max_element(samples.begin(), samples.end()), percentile(write_samples, 0.5),
      percentile(write_samples, 0.99));
  return 0;
}
