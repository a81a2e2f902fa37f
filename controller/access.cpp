// Access: roles from bearer tokens, compared in constant time (see access.hpp).
#include "access.hpp"

#include <algorithm>

namespace cutover::controller {

const char* to_string(Role r) {
  switch (r) {
    case Role::none:
      return "none";
    case Role::reader:
      return "reader";
    case Role::admin:
      return "admin";
  }
  return "none";
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Walk the longer of the two whole, so the time says nothing of where they first differ nor
  // (beyond the lengths themselves) of how much of a prefix matched.
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

Access::Access(std::string admin_token, std::string read_token)
    : admin_(admin_token.empty() ? "" : "Bearer " + admin_token),
      reader_(read_token.empty() ? "" : "Bearer " + read_token) {}

Role Access::role_of(std::string_view authorization) const {
  if (admin_.empty()) return Role::admin;  // authentication off (--insecure-no-token)
  // Both compared, whichever matches: the time does not tell which role a guess came close to.
  const bool admin = constant_time_equal(authorization, admin_);
  const bool reader = !reader_.empty() && constant_time_equal(authorization, reader_);
  if (admin) return Role::admin;
  if (reader) return Role::reader;
  return Role::none;
}

const char* Access::forbidden(Role role, std::string_view method, bool agent_channel) {
  if (role == Role::admin) return nullptr;
  if (role == Role::none) return "no role";
  if (agent_channel) return "read-only: the agent channel is not for readers";
  if (method != "GET" && method != "HEAD")
    return "read-only: this token or certificate may only read (GET)";
  return nullptr;
}

Role Access::certificate_role(const PeerIdentity& peer) {
  if (!peer.verified) return Role::none;
  if (peer.role == "admin") return Role::admin;
  if (peer.role == "reader") return Role::reader;
  return Role::none;
}

}  // namespace cutover::controller
