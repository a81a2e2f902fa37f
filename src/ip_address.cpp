// IpAddress parsing and formatting via inet_pton/inet_ntop.
#include "ip_address.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "parse_error.hpp"

namespace cutover {

IpAddress IpAddress::parse(std::string_view text) {
  const std::string s(text);
  IpAddress ip;
  if (s.find(':') != std::string::npos) {
    ip.family_ = Family::v6;
    if (inet_pton(AF_INET6, s.c_str(), ip.bytes_.data()) == 1) return ip;
  } else {
    ip.family_ = Family::v4;
    if (inet_pton(AF_INET, s.c_str(), ip.bytes_.data()) == 1) return ip;
  }
  throw ParseError("", "invalid IP address '" + s + "': expected IPv4 dotted quad or IPv6");
}

IpAddress IpAddress::v4(uint32_t host_order) {
  IpAddress ip;
  const uint32_t n = htonl(host_order);
  std::memcpy(ip.bytes_.data(), &n, 4);
  return ip;
}

uint32_t IpAddress::v4_host_order() const {
  uint32_t n;
  std::memcpy(&n, bytes_.data(), 4);
  return ntohl(n);
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

}  // namespace cutover
