// MacAddress: a 48-bit Ethernet address parsed strictly from "aa:bb:cc:dd:ee:ff" (colon form only,
// either case) and printed lowercase. Used by ports, flows and FDB entries.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace cutover {

class MacAddress {
 public:
  MacAddress() = default;
  explicit MacAddress(const std::array<uint8_t, 6>& bytes) : bytes_(bytes) {}

  // Throws ParseError (empty field) on anything but six colon-separated two-digit hex octets.
  static MacAddress parse(std::string_view text);

  std::string to_string() const;
  const std::array<uint8_t, 6>& bytes() const { return bytes_; }
  bool is_multicast() const { return (bytes_[0] & 1) != 0; }
  bool is_zero() const;

  auto operator<=>(const MacAddress&) const = default;

 private:
  std::array<uint8_t, 6> bytes_{};
};

}  // namespace cutover
