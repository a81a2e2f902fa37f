// IpAddress: an IPv4 or IPv6 address (no prefix length), parsed strictly with inet_pton and
// printed in canonical form. Used for port addresses (GARP / neighbour advertisements) and for
// hypervisor underlay addresses (VXLAN tunnel endpoints).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace cutover {

class IpAddress {
 public:
  enum class Family : uint8_t { v4 = 4, v6 = 6 };

  IpAddress() = default;

  // Throws ParseError (empty field) unless text is a dotted quad or an RFC 4291 IPv6 address.
  static IpAddress parse(std::string_view text);
  static IpAddress v4(uint32_t host_order);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::v4; }
  // First 4 bytes for v4, all 16 for v6.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  uint32_t v4_host_order() const;
  std::string to_string() const;

  auto operator<=>(const IpAddress&) const = default;

 private:
  Family family_ = Family::v4;
  std::array<uint8_t, 16> bytes_{};
};

}  // namespace cutover
