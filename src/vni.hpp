// Vni: a VXLAN network identifier, 1..16777215 (24 bits; 0 is reserved here as "none").
#pragma once

#include <compare>
#include <cstdint>
#include <string>

#include "parse_error.hpp"

namespace cutover {

class Vni {
 public:
  static constexpr int64_t kMin = 1;
  static constexpr int64_t kMax = 16777215;

  Vni() = default;
  // Throws ParseError (empty field) outside 1..16777215.
  static Vni from(int64_t value) {
    if (value < kMin || value > kMax) {
      throw ParseError("", "VNI " + std::to_string(value) + " out of range 1..16777215");
    }
    Vni v;
    v.value_ = static_cast<uint32_t>(value);
    return v;
  }
  uint32_t value() const { return value_; }
  auto operator<=>(const Vni&) const = default;

 private:
  uint32_t value_ = 0;
};

}  // namespace cutover
