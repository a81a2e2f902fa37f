// Access: who a request is and what it may do. A bearer token maps to a role: the admin token
// (the shared one agents also use without TLS) may do everything; the read-only token may only
// read (GET), never write nor open the agent channel. Tokens are compared in constant time. With
// TLS a client certificate's OU grants the same roles.
// RestApi and the HTTP server ask here; refusals are named so that /metrics can count them.
#pragma once

#include <string>
#include <string_view>

#include "tls.hpp"

namespace cutover::controller {

enum class Role { none, reader, admin };

const char* to_string(Role r);

// Equal in time that depends only on the lengths, with no early return on a length mismatch.
bool constant_time_equal(std::string_view a, std::string_view b);

class Access {
 public:
  // An empty admin token: no authentication at all (--insecure-no-token, for tests). An empty
  // read token: no read-only role.
  Access(std::string admin_token, std::string read_token);

  // The role an Authorization header value ("Bearer T") grants.
  Role role_of(std::string_view authorization) const;
  // Why `role` may not make this request (HTTP 403), or nullptr when it may. `agent_channel`: the
  // WebSocket upgrade on /v1/agent.
  static const char* forbidden(Role role, std::string_view method, bool agent_channel);
  // The REST role a verified client certificate grants by its OU (admin or reader), else none.
  static Role certificate_role(const PeerIdentity& peer);

 private:
  std::string admin_, reader_;
};

}  // namespace cutover::controller
