// Strongly typed identifiers for hosts, networks, ports and migrations. An id is 1..64 characters
// from [A-Za-z0-9._-], starting with a letter or digit, so it is safe in URLs, file names, log
// lines and OVSDB external_ids alike.
#pragma once

#include <compare>
#include <functional>
#include <string>
#include <string_view>

#include "parse_error.hpp"

namespace cutover {

bool is_valid_id(std::string_view text);

template <typename Tag>
class Id {
 public:
  Id() = default;
  // Throws ParseError (empty field) when text is not a valid id.
  static Id parse(std::string_view text) {
    if (!is_valid_id(text)) {
      throw ParseError("", "invalid id '" + std::string(text.substr(0, 80)) +
                               "': expected 1-64 characters of [A-Za-z0-9._-], "
                               "starting with a letter or digit");
    }
    Id id;
    id.value_ = std::string(text);
    return id;
  }
  const std::string& str() const { return value_; }
  bool empty() const { return value_.empty(); }
  auto operator<=>(const Id&) const = default;

 private:
  std::string value_;
};

struct HostTag {};
struct NetworkTag {};
struct PortTag {};
struct MigrationTag {};
using HostId = Id<HostTag>;
using NetworkId = Id<NetworkTag>;
using PortId = Id<PortTag>;
using MigrationId = Id<MigrationTag>;

}  // namespace cutover

template <typename Tag>
struct std::hash<cutover::Id<Tag>> {
  size_t operator()(const cutover::Id<Tag>& id) const { return std::hash<std::string>{}(id.str()); }
};
