// ControllerLink: what the agent core tells its controller - the narrow seam between the Agent
// (agent.hpp) and the agent channel (ControllerClient, which implements it over the WebSocket).
// Unit tests give the Agent a recording fake. Every call is made on the agent's io_context.
#pragma once

#include <string>
#include <vector>

#include "apply_report.hpp"
#include "wire.hpp"

namespace cutover::agent {

class ControllerLink {
 public:
  virtual ~ControllerLink() = default;
  // ACK/NACK of the report's generation, with what the agent says of its host.
  virtual void report(const ApplyReport& r) = 0;
  virtual void migration_failed(const std::string& migration, const std::string& error) = 0;
  virtual void aborted(const wire::Aborted& answer) = 0;
  virtual void announced(const wire::Announced& round) = 0;
  virtual void conntrack(const wire::Conntrack& ct) = 0;
  virtual void incoming(const std::vector<std::string>& iface_ids) = 0;
};

}  // namespace cutover::agent
