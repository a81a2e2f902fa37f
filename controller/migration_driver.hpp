// MigrationDriver: the migration state machine, the heart of the controller. One screen:
//
//   requested ──policy──▶ rejected
//       │ └─approval required─▶ pending_approval ──approve──┐
//       ▼                                                   ▼
//   preparing: port gets migrating_to=D: D binds it held (delivers it only what S forwards by
//       │      tunnel), every VTEP of the VNI adds D (tunnel, flooding); traffic still goes to S.
//       │      Wait until S, D and every VTEP applied that generation completely
//       ▼
//   ready: wait for the port to come up on D (D's agent reports it bound; with libvirt: the
//       │  domain *running* on D). When S's VM pauses for the final copy, S itself forwards
//       │  the port's frames to D and relays what reached its tap unread - no controller in
//       │  that path; the pause only goes on the timeline:
//       ├──▶ migrating (S reported the pause)
//       ▼
//   cutting_over: port.host=D, migrating_to cleared, previous_host=S (S forwards what still
//       │         arrives there); wait until every host applied it
//       ▼
//   completed (previous_host cleared forward_grace later)
//
//   pending_approval / preparing / ready ──(NACK, agent gone, timeout, cancel)──▶ rolled_back
//       (migrating_to cleared, the port stays on S) - but first, when libvirt may be moving the
//       VM (cutover started it, or it was seen arriving), rolling_back: S aborts libvirt's job
//       and answers where the VM is; rolled_back if it stayed, cutting_over if it had left.
//   migrating (the VM paused for its final copy) is carried forward, never rolled back on a
//       timeout or a lost agent: cutting_over once D runs it or S's tap is gone, rolled_back
//       only when S reports it running again (libvirt's migration failed).
//
// A VM with several ports: one migration per port, one group (Migration::group): admitted and
// approved together, libvirt started (by the group's first) once every member is ready, rolled
// back together before the pause (finish_rollback: the VM stayed; rolling_back: one abort).
// The record follows the VM, never contradicts libvirt: once prepared, the hosts finish a
// cutover without the controller (S forwards from the pause on, D delivers what it forwards),
// and a controller that restarts carries every open migration on from the agents' reports.
// Every transition is logged once, timestamped in the migration's timeline and audited.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent_hub.hpp"
#include "controller_state.hpp"
#include "metrics.hpp"
#include "scheduler.hpp"

namespace cutover::controller {

struct PlacementRule {
  std::string port_label;  // a port with this label ...
  std::string host_label;  // ... must not land on a host with this label
};

struct MigrationPolicy {
  std::vector<PlacementRule> forbid;
  int64_t max_concurrent_per_host = 4;  // active migrations touching a host (as source or dest)
  bool require_approval = false;
  // How long the host a VM left keeps forwarding its frames (previous_host) after every VTEP
  // applied the new location: frames already in flight when they switched still get through.
  std::chrono::milliseconds forward_grace{2000};
  std::chrono::milliseconds prepare_timeout{30000};
  std::chrono::milliseconds activation_timeout{300000};
  std::chrono::milliseconds converge_timeout{30000};
  // How long an abort of libvirt's job may take before the reports decide (rolling_back).
  std::chrono::milliseconds abort_timeout{30000};
  // The destination's admission flows for connections carried from the source's conntrack go
  // this long after the migration ends: by then the VM's own packets (ACKs suffice) have
  // committed every connection that carried traffic there, and the admits would only keep
  // closed tuples admitted. A connection idle for the whole time is new afterwards.
  std::chrono::milliseconds carried_conns_ttl{600000};
};

class MigrationDriver {
 public:
  // Subscribes to the hub's agent reports (on_agent_update, on_migration_failed, on_aborted,
  // on_announced, on_conntrack, on_incoming).
  MigrationDriver(ControllerState& state, AgentHub& hub, Scheduler& scheduler, Metrics& metrics,
                  MigrationPolicy policy);

  // Throws ApiError naming the field for bad requests; a policy refusal is not an error: the
  // migration is stored as rejected with the reason.
  // carry_conntrack=false leaves the source's connection tracking behind (for comparing cutovers
  // with and without carry-over; established flows to a stateful port then break on D).
  // libvirt: how the source's libvirt is to run it, if cutover drives it (sent with Migrate).
  Migration create(const PortId& port, const HostId& to, const std::string& requested_by = "",
                   bool carry_conntrack = true, const std::string& vm = "",
                   const LibvirtMigrationSettings& libvirt = {});
  // The ports of a libvirt domain by name, from what the agents report running (the domain's
  // <virtualport> interfaceid is a port's iface_id). Throws ApiError (field "vm") when no
  // connected host runs it (or two do), when none of its interfaces is a port, or when one of
  // its ports is placed elsewhere.
  std::vector<PortId> ports_of_vm(const std::string& vm) const;
  // POST {"vm"}: one libvirt migration moves every NIC, so every port of the VM migrates, as one
  // group when there are several (see Migration::group): checked and admitted all or none.
  // Returns the first port's migration (the group's id).
  Migration create_vm(const std::string& vm, const HostId& to, const std::string& requested_by = "",
                      bool carry_conntrack = true, const LibvirtMigrationSettings& libvirt = {});
  Migration approve(const MigrationId& id);
  Migration cancel(const MigrationId& id, const std::string& reason = "cancelled by request");
  // What a traffic test measured across a finished migration (PUT .../measurement): kept on the
  // migration (replacing an earlier one) and audited. 404 unknown, 409 not finished yet.
  Migration record_measurement(const MigrationId& id, const Measurement& measured);

  // Re-evaluates active migrations after an agent event.
  void on_agent_update(const HostId& host);
  // Whether on_agent_update(host) would do nothing for an ACK that repeats the host's last
  // report (most ACKs): no migration open, nothing arriving, and no foreign VM or pre-copy pass
  // in the report (following_). Such an ACK then costs the driver no look-up in the hub's agents
  // (and none at all while no host's report has anything to follow).
  bool nothing_to_follow(const HostId& host) const;
  // Notes whether `host`'s report, as it is now, has anything the driver follows.
  void judge_report(const HostId& host);
  // Stamps precopy_pass_<n> on the timeline of the source's migrations as libvirt reports each
  // pre-copy iteration (how many passes over memory before the VM paused).
  void note_precopy(const HostId& host);
  // The source agent's libvirt migration failed: the VM stays there (libvirt resumes it). Only
  // the migration's source is heard.
  void on_migration_failed(const HostId& host, const std::string& migration,
                           const std::string& error);
  // The source's answer to an abort (rolling_back): rolled back if the VM stayed, carried
  // forward if it had left. Only the migration's source is heard.
  void on_aborted(const HostId& host, const wire::Aborted& answer);
  // The destination sent a round of GARP/NA/RARP for a port that arrived there: counted on the
  // port's latest migration to that host; timeline garps_sent (first round), garps_done (last).
  void on_announced(const HostId& host, const wire::Announced& round);
  // The source reported the connections the port has in its conntrack: while its migration is
  // active (and carries conntrack) they go to the destination with the port (carried_conns).
  void on_conntrack(const HostId& host, const wire::Conntrack& ct);
  // The destination's libvirt hook holds an incoming migration: prepare it (as adopt_incoming)
  // and answer every interface, even one answered before.
  void on_incoming(const HostId& host, const wire::Incoming& in);
  // After a controller restart: carries every migration that was in flight on. cutting_over
  // completes; preparing waits for the agents' ACKs again; ready/migrating wait for the agents'
  // reports (D runs the VM, S's pause, S running it again); rolling_back asks S again.
  void recover();

  size_t active_count() const;

 private:
  // state_.open_migrations(): all an agent's report can still affect, without the history.
  std::vector<const Migration*> open_migrations() const;
  void transition(Migration& m, MigrationState to, const std::string& reason = "");
  void stamp(Migration& m, const std::string& phase);
  void save(const Migration& m);
  std::string policy_refusal(const Port& p, const HostId& to) const;
  void start_prepare(Migration m);
  // Prepared (every VTEP ACKed): ready once the destination also reports the port's volumes
  // attached; a storage failure there rolls back. Called again on the destination's updates.
  void finish_prepare(const MigrationId& id);
  // Stamps storage_released once the host the VM no longer uses stopped reporting its volumes.
  void check_released(const HostId& host);
  void check_activation(const MigrationId& id);
  // When the destination publishes a migration URI, cutover itself starts the live migration:
  // the source agent calls libvirt (peer-to-peer) once every VTEP is ready.
  // Returns whether it asked (m stamped migration_started: save it).
  bool drive(Migration& m);
  // A VM is arriving on `host` by a live migration cutover did not start (virsh, Nova: the
  // agent saw its tap appear, or libvirt's hook asked): prepare it as if it had been asked for,
  // policy included; a refused one is recorded and left to libvirt.
  void adopt_incoming(const HostId& host);
  // asked: the hook asked (answer whatever happens); else a tap was seen (one the VM just left
  // behind on its previous host is no arrival).
  void adopt_incoming(const HostId& host, const std::string& iface_id, bool asked);
  // Tells the destination's agent (and a libvirt hook waiting there) how its prepare went.
  void tell_prepared(const HostId& host, const std::string& iface_id, const std::string& migration,
                     const std::string& error);
  // A VM runs on `host` although its port is placed elsewhere and no migration is under way:
  // someone migrated it outside cutover and it was not seen arriving. Follow it: record the
  // migration and cut over at once.
  void adopt_external(const HostId& host);
  // A migration cutover did not start, recorded as `phase` (detected_incoming/_external).
  Migration detected(const Port& port, const HostId& to, const std::string& phase,
                     const std::string& detail);
  void cut_over(Migration m);
  // The way out of every failure before cutover: rolled back at once, through rolling_back when
  // libvirt may be moving the VM, or carried forward when the VM has paused for its final copy.
  // A VM's group goes back together (rollback_one for each member).
  void rollback(const MigrationId& id, const std::string& reason);
  void rollback_one(const MigrationId& id, const std::string& reason);
  // The other open migrations of m's VM group (none on its own).
  std::vector<MigrationId> group_of(const Migration& m) const;
  // The group's lead drives libvirt once every member is ready.
  void drive_group(const std::string& group);
  // A migration of the port to `to`, stamped requested (not stored: admit() does).
  Migration new_migration(const PortId& port, const HostId& to, bool carry_conntrack,
                          const std::string& vm, const LibvirtMigrationSettings& libvirt);
  // Rejected with `refusal` if there is one, else admitted: pending approval, or preparing.
  void admit(Migration m, const std::string& refusal);
  // Throws ApiError naming the field unless the port can start migrating to `to`.
  void check_can_migrate(const PortId& port, const HostId& to) const;
  // The network goes back to S (migrating_to cleared): rolled_back.
  void finish_rollback(Migration m, const std::string& reason);
  // Asks S to abort libvirt's job of the migration (again, after a reconnect); true if sent.
  bool send_abort(const Migration& m);
  // rolling_back waits this long for S's answer; then the reports decide (rolled back if S runs
  // the VM), or it waits again.
  void arm_abort_deadline(const MigrationId& id);
  // What S and D report decides a migration that waits on the VM: cut over when D runs it or S's
  // tap is gone after its pause, rolled back when S runs it again after its pause. Returns true
  // when it moved the migration on.
  bool settle_from_reports(const MigrationId& id);
  // The wait for S, D and every VTEP to apply the prepare (start_prepare, recover).
  void wait_prepared(const MigrationId& id, const Port& p);
  // Whether `host`'s agent was connected to this controller process and is no longer (an agent
  // not seen since a restart is not lost).
  bool lost(const HostId& host) const;
  // The migration named in an agent's report, if `host` is its source (else logged: "agent H
  // <what> migration M, which it is not the source of").
  const Migration* of_source(const HostId& host, const std::string& migration,
                             const char* what) const;
  // The source's agent, on its current session, reports the VM running there (libvirt).
  bool runs_on_source(const Migration& m) const;
  std::vector<HostId> hosts_involved(const Port& p) const;
  void arm_timer(const MigrationId& id, std::chrono::milliseconds d, const std::string& what);
  void disarm_timer(const MigrationId& id);
  // with_next_save: the entry describes the state change the caller saves next, and is stored in
  // the same transaction (ControllerState::stage_audit); else it is stored at once.
  void audit(const Migration& m, const std::string& event, const std::string& detail,
             bool with_next_save = false);

  ControllerState& state_;
  AgentHub& hub_;
  Scheduler& scheduler_;
  Metrics& metrics_;
  MigrationPolicy policy_;
  std::map<MigrationId, uint64_t> timers_;
  // rolling_back migrations whose source has not been asked (again) on its current session.
  std::set<MigrationId> abort_unsent_;
  // The source's session each Migrate was sent on (this process only).
  std::map<MigrationId, uint64_t> migrate_session_;
  // (host, iface-id) incoming reports already acted on, until the host stops reporting them.
  std::set<std::pair<HostId, std::string>> incoming_seen_;
  // Hosts whose last report lists a foreign VM, an incoming one or pre-copy passes (or that have
  // no report): judged on every report or connection change, which an ACK that only moves the
  // generation on is not.
  std::set<HostId> following_;
  // Runs fn after delay, replacing the port's timer in `timers` if it had one.
  void per_port_after(std::map<PortId, uint64_t>& timers, const PortId& port,
                      std::chrono::milliseconds delay, std::function<void()> fn);
  // Drops the port's carried_conns after policy_.carried_conns_ttl (one timer per port).
  void expire_carried_later(const PortId& port);
  std::map<PortId, uint64_t> carried_timers_;
  // Clears the port's previous_host after policy_.forward_grace (one timer per port).
  void end_forwarding_later(const PortId& port);
  std::map<PortId, uint64_t> forward_timers_;
};

}  // namespace cutover::controller
