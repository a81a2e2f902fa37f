// AgentMetrics (see agent_metrics.hpp).
#include "agent_metrics.hpp"

#include "version.hpp"

namespace cutover::agent {

void AgentMetrics::applied(const ApplyReport& r, bool nacked) {
  const char* outcome = r.rejected    ? "rejected"
                        : !r.ok       ? "failed"
                        : r.applied() ? "applied"
                                      : "partial";
  ++passes_[outcome];
  if (r.ok) apply_seconds_.observe(r.apply_ms / 1000.0);
  changed_["added"] += r.added;
  changed_["modified"] += r.modified;
  changed_["removed"] += r.removed;
  if (nacked) ++nacks_;
  if (r.ok) {
    installed_ = r.installed;
    generation_ = r.generation;
    bound_ = r.bound_ports.size();
    awaiting_ = r.awaiting_taps.size();
  }
}

void AgentMetrics::announced(const AnnounceRound& r) {
  announce_frames_ += r.frames;
  announce_failures_ += r.failed;
}

std::string AgentMetrics::render() const {
  PromText t;
  t.family("cutover_agent_build_info", "gauge", "The running agent's version and dataplane.");
  t.sample("cutover_agent_build_info", {{"version", kVersion}, {"backend", backend_}}, 1);
  apply_seconds_.render(t, "cutover_agent_apply_seconds",
                        "Reconcile passes that ran: from start to the switch's or kernel's "
                        "confirmation of what they changed.");
  t.counter("cutover_agent_reconcile_passes_total",
            "Reconcile passes by outcome: applied, partial (objects still missing), failed (the "
            "dataplane refused or was unreachable; retried), rejected (a bad desired state).",
            "outcome", {"applied", "partial", "failed", "rejected"}, passes_);
  t.counter("cutover_agent_objects_changed_total",
            "Dataplane objects (flows, meters, ports, QoS rows; links, FDB entries, qdiscs) the "
            "agent added, modified or removed.",
            "op", {"added", "modified", "removed"}, changed_);
  t.family("cutover_agent_installed_objects", "gauge",
           "What the dataplane holds of ours after the last pass, by kind (OVS: flows, meters, "
           "tunnels; Linux: links, fdb_entries, rate_limited_taps).");
  for (const auto& [kind, n] : installed_) {
    t.sample("cutover_agent_installed_objects", {{"kind", kind}}, static_cast<double>(n));
  }
  t.gauge("cutover_agent_applied_generation", "The last generation a pass applied.",
          static_cast<double>(generation_));
  t.gauge("cutover_agent_ports_bound", "Local ports bound to their VM's tap.",
          static_cast<double>(bound_));
  t.gauge("cutover_agent_ports_awaiting_tap",
          "Local ports whose VM tap is not here yet (e.g. a migration's destination before "
          "QEMU starts).",
          static_cast<double>(awaiting_));
  t.counter("cutover_agent_nacks_total", "Generations the agent rejected to the controller.",
            static_cast<double>(nacks_));
  t.counter("cutover_agent_announcement_frames_total",
            "GARP, NA and RARP frames sent for ports that arrived here.",
            static_cast<double>(announce_frames_));
  t.counter("cutover_agent_announcement_failures_total", "Announcement frames that failed.",
            static_cast<double>(announce_failures_));
  t.family("cutover_agent_connected", "gauge",
           "1 while the agent is connected to the peer (controller, ovsdb, libvirt); only the "
           "peers it is set up to use.");
  for (auto [name, v] : {std::pair{"controller", controller_.load()},
                         {"ovsdb", ovsdb_.load()},
                         {"libvirt", libvirt_.load()}}) {
    if (v >= 0) t.sample("cutover_agent_connected", {{"peer", name}}, v);
  }
  return t.take();
}

}  // namespace cutover::agent
