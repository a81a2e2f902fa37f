// cutover-libvirt-hook: libvirt's qemu hook (/etc/libvirt/hooks/qemu, or called from it) on a
// destination host. For "GUEST migrate begin -" (the start of an incoming live migration, before
// QEMU starts; the domain XML on stdin) it asks the local cutover-agent to have the controller
// prepare the guest's ports - destination bound, every VTEP ready - and waits for that, at most
// --timeout-ms. Every other operation returns at once. It never fails a migration: if cutover
// cannot prepare in time it says so on stderr (libvirt's log) and lets libvirt go on; the agent
// then still sees the migration at its start and prepares it while the memory copies. It prints
// nothing on stdout, which libvirt takes as "the domain XML unchanged".
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "libvirt/domain_xml.hpp"
#include "options.hpp"
#include "parse_error.hpp"

using namespace cutover;

namespace {

// One request line to the agent, one answer line back; "" on failure (errno-style text in why).
std::string ask_agent(const std::string& path, const std::string& request, int64_t timeout_ms,
                      std::string& why) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::strerror(errno);
    return "";
  }
  timeval tv{static_cast<time_t>(timeout_ms / 1000),
             static_cast<suseconds_t>(timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_un at{};
  at.sun_family = AF_UNIX;
  std::strncpy(at.sun_path, path.c_str(), sizeof at.sun_path - 1);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0) {
    why = "cannot reach the agent at " + path + ": " + std::strerror(errno);
  } else if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    why = std::string("cannot write to the agent: ") + std::strerror(errno);
  } else {
    char buf[4096];
    ssize_t n;
    while (answer.find('\n') == std::string::npos && (n = read(fd, buf, sizeof buf)) > 0) {
      answer.append(buf, static_cast<size_t>(n));
    }
    if (answer.empty()) why = "no answer from the agent in time";
  }
  close(fd);
  return answer;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket_path = "/run/cutover/agent.sock";
  int64_t timeout_ms = 5000;
  Options opts("cutover-libvirt-hook",
               "Usage: cutover-libvirt-hook [--socket PATH] [--timeout-ms N] GUEST OPERATION "
               "SUB-OPERATION EXTRA < domain.xml\n\n"
               "libvirt's qemu hook on a destination: holds an incoming live migration (GUEST "
               "migrate begin) until cutover has prepared the guest's ports, at most "
               "--timeout-ms; never fails it.");
  opts.add("socket", &socket_path, "the local cutover-agent's --control-socket");
  opts.add("timeout-ms", &timeout_ms, "the longest the migration is held (1-60000)");
  try {
    if (!opts.parse(argc, argv)) return 0;
    if (timeout_ms < 1 || timeout_ms > 60000) {
      throw ParseError("--timeout-ms", "must be 1 to 60000");
    }
  } catch (const ParseError& e) {
    std::fprintf(stderr, "cutover-libvirt-hook: %s\n", e.what());
    return 0;  // a hook that fails would cancel the operation: complain, never block
  }
  const auto& args = opts.positional();
  if (args.size() < 2 || args[1] != "migrate" || (args.size() > 2 && args[2] != "begin")) {
    return 0;  // prepare, start, started, stopped, release, ...: nothing to do
  }
  const std::string& guest = args[0];
  const std::string xml((std::istreambuf_iterator<char>(std::cin)), {});
  nlohmann::json request = {{"op", "incoming"}, {"domain", guest}, {"timeout_ms", timeout_ms}};
  try {
    const auto ids = agent::domain_interface_ids(xml);
    if (ids.empty()) return 0;  // no interface cutover could know: nothing to wait for
    request["iface_ids"] = ids;
  } catch (const ParseError& e) {
    std::fprintf(stderr, "cutover-libvirt-hook: %s: domain XML: %s; not waiting\n", guest.c_str(),
                 e.what());
    return 0;
  }
  std::string why;
  const auto answer = ask_agent(socket_path, request.dump() + "\n", timeout_ms + 1000, why);
  if (answer.empty()) {
    std::fprintf(stderr, "cutover-libvirt-hook: %s: %s; the migration goes on unprepared\n",
                 guest.c_str(), why.c_str());
    return 0;
  }
  const auto j = nlohmann::json::parse(answer, nullptr, false);
  const bool understood = !j.is_discarded() && j.is_object() && j.contains("prepared") &&
                          j["prepared"].is_array() && j.contains("refused") &&
                          j["refused"].is_object();
  if (!understood) {
    std::fprintf(stderr, "cutover-libvirt-hook: %s: not prepared (%s); the migration goes on\n",
                 guest.c_str(), answer.substr(0, answer.find('\n')).c_str());
    return 0;
  }
  // One line for what was prepared, one for what cutover will not prepare, one for silence.
  const auto waited = static_cast<long long>(j.value("waited_ms", int64_t{0}));
  if (!j["prepared"].empty()) {
    std::fprintf(stderr, "cutover-libvirt-hook: %s: prepared in %lld ms (%s)\n", guest.c_str(),
                 waited, j["prepared"].dump().c_str());
  }
  for (const auto& [iface, why] : j["refused"].items()) {
    std::fprintf(stderr, "cutover-libvirt-hook: %s: %s not prepared: %s; the migration goes on\n",
                 guest.c_str(), iface.c_str(),
                 why.is_string() ? why.get<std::string>().c_str() : "");
  }
  if (j.contains("unanswered") && j["unanswered"].is_array() && !j["unanswered"].empty()) {
    std::fprintf(stderr,
                 "cutover-libvirt-hook: %s: no word from cutover on %s after %lld ms; the "
                 "migration goes on unprepared\n",
                 guest.c_str(), j["unanswered"].dump().c_str(), waited);
  }
  return 0;
}
