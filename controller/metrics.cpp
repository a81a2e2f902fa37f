// Metrics rendering.
#include "metrics.hpp"

#include <cstdio>
#include <initializer_list>

#include "version.hpp"

namespace cutover::controller {

namespace {
std::string num(double v) { return prom_number(v); }
}  // namespace

void Metrics::observe_blackout(double seconds) { blackout_.observe(seconds); }
void Metrics::observe_convergence(double seconds) { convergence_.observe(seconds); }

std::string Metrics::render(const Gauges& g) const {
  std::string out;
  auto gauge = [&](const char* name, const char* help, double v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name +
           " " + num(v) + "\n";
  };
  gauge("cutover_generation", "Current desired-state generation.",
        static_cast<double>(g.generation));
  gauge("cutover_agents_connected", "Agents connected over the agent channel.",
        static_cast<double>(g.agents_connected));
  gauge("cutover_generation_lag_max",
        "Largest gap between the generation sent to a connected agent and the one it applied.",
        static_cast<double>(g.generation_lag));
  gauge("cutover_agents_waiting",
        "Connected agents that applied their latest generation only partially (objects such as "
        "tunnels still missing; GET /v1/agents says which).",
        static_cast<double>(g.agents_waiting));
  gauge("cutover_migrations_active", "Migrations not yet finished.",
        static_cast<double>(g.migrations_active));
  gauge("cutover_connections_open", "TCP connections open (REST clients and agents).",
        static_cast<double>(connections_open_));
  gauge("cutover_connections_unauthenticated",
        "Open connections that have not presented the bearer token yet.",
        static_cast<double>(connections_unauthenticated_));
  auto counter = [&](const char* name, const char* help, const char* label,
                     std::initializer_list<const char*> values,
                     const std::map<std::string, uint64_t>& counts) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
    for (const char* v : values) {
      auto it = counts.find(v);
      out += std::string(name) + "{" + label + "=\"" + v + "\"} " +
             std::to_string(it == counts.end() ? 0 : it->second) + "\n";
    }
  };
  counter("cutover_connections_refused_total",
          "Connections refused on accept, by the cap that was reached.", "reason",
          {"max_connections", "max_unauthenticated"}, refused_);
  counter("cutover_agent_sessions_closed_total",
          "Agent sessions the controller closed: no hello in time, or more queued for the agent "
          "than --agent-send-queue-bytes (it reconnects and gets a whole slice).",
          "reason", {"hello_timeout", "send_queue_full"}, agents_closed_);
  counter("cutover_auth_refusals_total",
          "Requests and agents refused for who they are or what they may do: no or a wrong "
          "token (401), a read-only role writing or opening the agent channel (403), an agent "
          "speaking of a migration it is not the source of (ignored), a failed TLS handshake "
          "(no, a foreign, an expired or a revoked certificate; or plain HTTP), the agent channel "
          "without an agent certificate (403), a hello for another host than the certificate's, a "
          "connected agent whose certificate was revoked (closed on SIGHUP).",
          "reason",
          {"bad_token", "read_only", "not_its_migration", "tls_handshake", "no_agent_certificate",
           "certificate_names_another_host", "certificate_revoked"},
          auth_refused_);
  out +=
      "# HELP cutover_accept_errors_total Failed accepts (e.g. out of file descriptors); each "
      "one backs the accept loop off.\n"
      "# TYPE cutover_accept_errors_total counter\n"
      "cutover_accept_errors_total " +
      std::to_string(accept_errors_) + "\n";
  out +=
      "# HELP cutover_migrations_total Finished migrations by outcome.\n"
      "# TYPE cutover_migrations_total counter\n";
  for (const char* outcome : {"completed", "rolled_back", "rejected"}) {
    auto it = migrations_.find(outcome);
    out += std::string("cutover_migrations_total{outcome=\"") + outcome + "\"} " +
           std::to_string(it == migrations_.end() ? 0 : it->second) + "\n";
  }
  out += std::string(
             "# HELP cutover_build_info The running controller's version.\n"
             "# TYPE cutover_build_info gauge\n"
             "cutover_build_info{version=\"") +
         kVersion + "\"} 1\n";
  PromText t;
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
  return out + t.text();
}

}  // namespace cutover::controller
