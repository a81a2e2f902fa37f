// ovs_appctl: JSON-RPC request/response over ovs-vswitchd's unixctl socket.
#include "ovs_appctl.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace cutover::agent {

std::string vswitchd_ctl_path(const std::string& rundir) {
  const std::string pidfile = rundir + "/ovs-vswitchd.pid";
  std::ifstream in(pidfile);
  long pid = 0;
  if (in >> pid && pid > 0) return rundir + "/ovs-vswitchd." + std::to_string(pid) + ".ctl";
  // Started with --unixctl=<rundir>/ovs-vswitchd.ctl and no pidfile (as the lab does).
  const std::string fixed = rundir + "/ovs-vswitchd.ctl";
  if (access(fixed.c_str(), F_OK) == 0) return fixed;
  throw std::runtime_error("no ovs-vswitchd control socket: neither a pid in " + pidfile + " nor " +
                           fixed);
}

std::string ovs_appctl(const std::string& ctl_path, const std::string& command,
                       const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (ctl_path.size() >= sizeof addr.sun_path)
    throw std::runtime_error(ctl_path + ": path too long");
  std::memcpy(addr.sun_path, ctl_path.c_str(), ctl_path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error(ctl_path + ": " + strerror(errno));
  }
  const std::string request =
      nlohmann::json{{"method", command}, {"params", args}, {"id", 0}}.dump();
  for (size_t off = 0; off < request.size();) {
    const ssize_t n = send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n < 0) throw std::runtime_error(ctl_path + ": send: " + strerror(errno));
    off += static_cast<size_t>(n);
  }
  // The reply is one JSON object: scan for its closing brace once, as bytes arrive (outside
  // strings, honouring escapes), and parse it once.
  std::string buf;
  size_t scanned = 0;
  int depth = 0;
  bool in_string = false, escaped = false, complete = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) throw std::runtime_error(ctl_path + ": " + command + " timed out");
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno != EINTR)
      throw std::runtime_error(ctl_path + ": poll: " + strerror(errno));
    if (ready <= 0) continue;
    char chunk[65536];
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0) throw std::runtime_error(ctl_path + ": recv: " + strerror(errno));
    if (n == 0) throw std::runtime_error(ctl_path + ": closed before replying to " + command);
    buf.append(chunk, static_cast<size_t>(n));
    for (; scanned < buf.size() && !complete; ++scanned) {
      const char c = buf[scanned];
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{') {
        ++depth;
      } else if (c == '}' && --depth == 0) {
        complete = true;
      }
    }
    if (!complete) continue;
    nlohmann::json reply;
    try {
      reply = nlohmann::json::parse(buf.substr(0, scanned));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(ctl_path + ": malformed reply to " + command + ": " + e.what());
    }
    if (reply.contains("error") && !reply["error"].is_null()) {
      const auto& e = reply["error"];
      throw std::runtime_error(command + ": " + (e.is_string() ? e.get<std::string>() : e.dump()));
    }
    if (!reply.contains("result") || !reply["result"].is_string()) {
      throw std::runtime_error(command + ": reply without a text result");
    }
    return reply["result"].get<std::string>();
  }
}

}  // namespace cutover::agent
