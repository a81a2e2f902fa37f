// Preflight checks: OVSDB socket reachable, underlay IP present.
#include "preflight.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cerrno>
#include <cstring>

namespace cutover::agent {

namespace {

std::string check_unix_socket(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof sun.sun_path) {
    close(fd);
    return "path too long";
  }
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  std::string err;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) err = std::strerror(errno);
  close(fd);
  return err;
}

bool has_local_address(const IpAddress& ip) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return true;  // cannot tell: do not block the start
  bool found = false;
  for (ifaddrs* i = list; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (ip.is_v4() && i->ifa_addr->sa_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      found = std::memcmp(&a->sin_addr, ip.bytes().data(), 4) == 0;
    } else if (!ip.is_v4() && i->ifa_addr->sa_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      found = std::memcmp(&a->sin6_addr, ip.bytes().data(), 16) == 0;
    }
  }
  freeifaddrs(list);
  return found;
}

}  // namespace

std::vector<std::string> preflight(const PreflightConfig& config) {
  std::vector<std::string> problems;
  if (config.ovsdb_remote.rfind("unix:", 0) == 0) {
    const std::string path = config.ovsdb_remote.substr(5);
    if (auto err = check_unix_socket(path); !err.empty()) {
      problems.push_back("Open vSwitch not reachable: cannot connect to " + config.ovsdb_remote +
                         " (" + err + "); is openvswitch-switch running? (--ovs-rundir / --ovsdb)");
    }
  }
  if (config.underlay_ip && !has_local_address(*config.underlay_ip)) {
    problems.push_back("no local interface has the underlay IP " + config.underlay_ip->to_string() +
                       " (--underlay-ip); VXLAN tunnels would have no source");
  }
  if (!config.libvirt_uri.empty()) {
    virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});
    if (virConnectPtr conn = virConnectOpenReadOnly(config.libvirt_uri.c_str())) {
      virConnectClose(conn);
    } else {
      virErrorPtr err = virGetLastError();
      problems.push_back("libvirt not reachable at " + config.libvirt_uri + " (" +
                         (err && err->message ? err->message : "unknown error") +
                         "); is libvirtd running? (--libvirt-uri)");
    }
  }
  return problems;
}

}  // namespace cutover::agent
