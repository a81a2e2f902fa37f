// Metrics rendering.
#include "metrics.hpp"

#include "version.hpp"

namespace cutover::controller {

void Metrics::observe_blackout(double seconds) { blackout_.observe(seconds); }
void Metrics::observe_convergence(double seconds) { convergence_.observe(seconds); }

std::string Metrics::render(const Gauges& g) const {
  PromText t;
  t.gauge("cutover_generation", "Current desired-state generation.",
          static_cast<double>(g.generation));
  t.gauge("cutover_agents_connected", "Agents connected over the agent channel.",
          static_cast<double>(g.agents_connected));
  t.gauge("cutover_generation_lag_max",
          "Largest gap between the generation sent to a connected agent and the one it applied.",
          static_cast<double>(g.generation_lag));
  t.gauge("cutover_agents_waiting",
          "Connected agents that applied their latest generation only partially (objects such as "
          "tunnels still missing; GET /v1/agents says which).",
          static_cast<double>(g.agents_waiting));
  t.gauge("cutover_migrations_active", "Migrations not yet finished.",
          static_cast<double>(g.migrations_active));
  t.gauge("cutover_connections_open", "TCP connections open (REST clients and agents).",
          static_cast<double>(connections_open_));
  t.gauge("cutover_connections_unauthenticated",
          "Open connections that have not presented the bearer token yet.",
          static_cast<double>(connections_unauthenticated_));
  t.counter("cutover_connections_refused_total",
            "Connections refused on accept, by the cap that was reached.", "reason",
            {"max_connections", "max_unauthenticated"}, refused_);
  t.counter("cutover_agent_sessions_closed_total",
            "Agent sessions the controller closed: no hello in time, more queued for the agent "
            "than --agent-send-queue-bytes (it reconnects and gets a whole slice), or no frame "
            "from it for 300 s, not even a pong.",
            "reason", {"hello_timeout", "send_queue_full", "idle_timeout"}, agents_closed_);
  t.counter("cutover_auth_refusals_total",
            "Requests and agents refused for who they are or what they may do: no or a wrong "
            "token (401), a read-only role writing or opening the agent channel (403), an agent "
            "speaking of a migration it is not the source of (ignored), a failed TLS handshake "
            "(no, a foreign, an expired or a revoked certificate; or plain HTTP), the agent "
            "channel without an agent certificate (403), a hello for another host than the "
            "certificate's, a connected agent whose certificate was revoked (closed on SIGHUP).",
            "reason",
            {"bad_token", "read_only", "not_its_migration", "tls_handshake", "no_agent_certificate",
             "certificate_names_another_host", "certificate_revoked"},
            auth_refused_);
  t.counter("cutover_accept_errors_total",
            "Failed accepts (e.g. out of file descriptors); each one backs the accept loop off.",
            static_cast<double>(accept_errors_));
  t.counter("cutover_migrations_total", "Finished migrations by outcome.", "outcome",
            {"completed", "rolled_back", "rejected"}, migrations_);
  t.family("cutover_build_info", "gauge", "The running controller's version.");
  t.sample("cutover_build_info", {{"version", kVersion}}, 1);
  t.family("cutover_agent_generation_lag", "gauge",
           "Per connected agent: generations sent to it that it has not applied yet.");
  for (const auto& [host, lag] : g.lag_by_host) {
    t.sample("cutover_agent_generation_lag", {{"host", host}}, static_cast<double>(lag));
  }
  blackout_.render(t, "cutover_blackout_seconds",
                   "From the source's reported pause to the destination's reported resume.");
  convergence_.render(t, "cutover_convergence_seconds",
                      "Cutover to every remote VTEP having applied the new location.");
  fanout_.render(t, "cutover_generation_ack_seconds",
                 "From sending a generation to the last ACK of the agents it was sent to.");
  return t.take();
}

}  // namespace cutover::controller
