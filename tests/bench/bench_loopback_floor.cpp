// bench_loopback_floor: what one fan-out costs this machine's kernel with no controller at all.
// N loopback TCP connections; a "server" thread writes one message to every connection and waits
// for a short reply on each; a "fleet" thread answers every message it reads. Times both until
// every reply is read (the issue's "every agent has ACKed") and until the last message was read
// (what bench_controller's p50/p99 time). Raw sockets and
// epoll, no framing, no JSON: the lower bound for bench_controller's figures on the same machine
// (scripts/bench-controller prints both). Prints JSON; never passes or fails.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

// This thread's CPU in user space and in the kernel, in ms.
struct Cpu {
  double user = 0;
  double kernel = 0;
  double total() const { return user + kernel; }
};
Cpu thread_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  auto ms = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3;
  };
  return {ms(u.ru_utime), ms(u.ru_stime)};
}

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

int epoll_of(const std::vector<int>& fds) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  check(ep >= 0, "epoll_create1");
  for (size_t i = 0; i < fds.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    check(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) == 0, "epoll_ctl");
  }
  return ep;
}

// Reads what `fd` has and calls `whole` once per complete unit of `unit` bytes (messages here
// have no framing: a fixed size each way).
template <typename Whole>
void read_units(int fd, std::vector<char>& buf, size_t& pending, size_t unit, Whole&& whole) {
  const ssize_t got = recv(fd, buf.data(), buf.size(), 0);
  if (got <= 0) return;
  for (pending += static_cast<size_t>(got); pending >= unit; pending -= unit) whole();
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1,
                    static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_loopback_floor CONNECTIONS ROUNDS [MESSAGE_BYTES]\n");
    return 2;
  }
  const int n = std::atoi(argv[1]);
  const int rounds = std::atoi(argv[2]);
  const size_t message_bytes = argc > 3 ? static_cast<size_t>(std::atoi(argv[3])) : 400;
  if (n < 1 || rounds < 1 || message_bytes < 1 || message_bytes > 4096) {
    // Up to 4 KiB a message always fits an empty socket buffer: one send, never a partial one.
    std::fprintf(stderr, "bench_loopback_floor: CONNECTIONS, ROUNDS >= 1, MESSAGE_BYTES 1..4096\n");
    return 2;
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  std::vector<int> server(n), fleet(n);
  try {
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    check(listener >= 0, "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // port 0: any free one
    check(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "bind");
    check(listen(listener, 4096) == 0, "listen");
    socklen_t len = sizeof addr;
    check(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname");
    const int one = 1;
    for (int i = 0; i < n; ++i) {
      fleet[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      check(fleet[i] >= 0, "socket");
      check(connect(fleet[i], reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "connect");
      server[i] = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      check(server[i] >= 0, "accept4");
      for (int fd : {fleet[i], server[i]}) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // as Beast's sockets
      }
      check(fcntl(fleet[i], F_SETFL, O_NONBLOCK) == 0, "fcntl");
    }
    close(listener);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loopback_floor: %s\n", e.what());
    return 1;
  }

  std::atomic<bool> stop{false};
  std::atomic<double> fleet_cpu{0};
  std::atomic<Clock::rep> last_seen{0};  // when the answering side last had a whole message
  const char reply[] = R"({"type":"ack","generation":123456})";
  const size_t reply_bytes = sizeof reply - 1;
  std::thread answering([&] {
    const int ep = epoll_of(fleet);
    const double cpu0 = thread_cpu_ms().total();
    std::vector<epoll_event> events(256);
    std::vector<char> buf(65536);
    std::vector<size_t> pending(fleet.size(), 0);  // bytes of a message not yet whole
    while (!stop) {
      const int k = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 5);
      for (int j = 0; j < k; ++j) {
        const auto i = events[j].data.u32;
        read_units(fleet[i], buf, pending[i], message_bytes, [&] {
          last_seen = Clock::now().time_since_epoch().count();
          send(fleet[i], reply, reply_bytes, MSG_NOSIGNAL);
        });
      }
    }
    fleet_cpu = thread_cpu_ms().total() - cpu0;
    close(ep);
  });

  const int ep = epoll_of(server);
  const std::string message(message_bytes, 'x');
  std::vector<epoll_event> events(256);
  std::vector<char> buf(65536);
  std::vector<double> samples, seen;
  std::vector<size_t> pending(server.size(), 0);
  const Cpu cpu0 = thread_cpu_ms();
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      if (send(server[i], message.data(), message.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(message.size())) {
        std::fprintf(stderr, "bench_loopback_floor: short send: %s\n", std::strerror(errno));
        stop = true;
        answering.join();
        return 1;
      }
    }
    int replies = 0;
    while (replies < n) {
      const int k = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
      if (k == 0) {
        std::fprintf(stderr, "bench_loopback_floor: round %d got %d of %d replies\n", r, replies,
                     n);
        stop = true;
        answering.join();
        return 1;
      }
      for (int j = 0; j < k; ++j) {
        const auto i = events[j].data.u32;
        read_units(server[i], buf, pending[i], reply_bytes, [&] { ++replies; });
      }
    }
    samples.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    seen.push_back(std::chrono::duration<double, std::milli>(
                       Clock::time_point(Clock::duration(last_seen.load())) - t0)
                       .count());
    std::this_thread::sleep_for(
        std::chrono::milliseconds(2));  // as bench_controller between changes
  }
  const Cpu cpu1 = thread_cpu_ms();  // sleeping costs none
  const double server_kernel = cpu1.kernel - cpu0.kernel;
  const double server_cpu = cpu1.total() - cpu0.total();
  stop = true;
  answering.join();
  std::printf(
      "{\"connections\": %d, \"rounds\": %d, \"message_bytes\": %zu, \"p50_ms\": %.2f, "
      "\"p99_ms\": %.2f, \"p50_seen_ms\": %.2f, \"p99_seen_ms\": %.2f, "
      "\"server_cpu_ms_per_round\": %.2f, \"server_kernel_ms_per_round\": %.2f, "
      "\"fleet_cpu_ms_per_round\": %.2f}\n",
      n, rounds, message_bytes, percentile(samples, 0.5), percentile(samples, 0.99),
      percentile(seen, 0.5), percentile(seen, 0.99), server_cpu / rounds, server_kernel / rounds,
      fleet_cpu.load() / rounds);
  return 0;
}
