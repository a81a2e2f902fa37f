// Agent: the core of cutover-agent, between the controller (or a desired-state file), the
// dataplane backend, libvirt, the storage thread and the control socket. It keeps the desired
// index and the host's facts, turns the dataplane's reports into ACKs, runs libvirt migrations
// and aborts on bounded workers, holds incoming migrations for the libvirt hook, and relays frames
// and carries conntrack when a VM pauses here. Everything runs on one io_context; main()
// (agent_main.cpp) reads the flags, builds the backends and hands each input to its on_*() call.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <optional>
#include <string>

#include "agent_metrics.hpp"
#include "announcer.hpp"
#include "blocking_jobs.hpp"
#include "conntrack_carrier.hpp"
#include "control_request.hpp"
#include "control_server.hpp"
#include "controller_link.hpp"
#include "dataplane.hpp"
#include "host_facts.hpp"
#include "incoming_waits.hpp"
#include "migration_relay.hpp"
#include "status_file.hpp"
#include "storage/storage_coordinator.hpp"

namespace cutover::agent {

struct AgentSettings {
  // With a controller: this host. A whole state for another host is refused, and so is what
  // follows it until a whole state for this host comes.
  std::optional<HostId> self;
  std::string desired_state_file;  // file mode: read by reload()
  std::string status_file;         // "" = none
  bool carry_conntrack = true;     // a migrating port's connections go to its destination
  MigrationRelayConfig relay;      // port 0 = off
  size_t max_libvirt_calls = 8;
};

// libvirt as the Agent uses it; both block, so they run on the Agent's bounded workers. Empty =
// no --libvirt-uri (migrations and aborts asked of this host are answered with why not).
struct LibvirtCalls {
  // "" when libvirt finished the migration, else why it did not. `settings`: the request's
  // (unset fields take the agent's defaults).
  std::function<std::string(const std::string& iface_id, const std::string& destination_uri,
                            const LibvirtMigrationSettings& settings)>
      migrate;
  std::function<wire::Aborted(const std::string& migration, const std::string& iface_id)> abort;
};

class Agent {
 public:
  using Answer = ControlServer::Answer;

  Agent(boost::asio::io_context& io, AgentSettings settings, Dataplane& dataplane,
        ConntrackCarrier::DumpFn dump_conntrack, LibvirtCalls libvirt);
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;
  ~Agent();

  // The controller's channel once it exists (never set: file mode). Not owned.
  void set_controller(ControllerLink* link) { link_ = link; }
  // The storage thread, when this host attaches volumes. Not owned.
  void set_storage(StorageThread* storage) { storage_ = storage; }
  // Where passes, NACKs and announcements are counted (--metrics-listen). Not owned.
  void set_metrics(AgentMetrics* metrics) { metrics_ = metrics; }
  // libvirt is watched: a port counts as up here only while its domain runs here.
  void watching_libvirt() { facts_.watching_libvirt(); }

  // Inputs; each is called on the io_context's thread.
  void on_desired(overlay::DesiredChange change);  // from the controller
  void on_applied(const ApplyReport& report);      // the dataplane's report of an attempt
  void on_announced(const AnnounceRound& round);
  void on_storage(const StorageReport& report);
  void on_domains(LibvirtDomainEvents::DomainsNow now);
  void on_migrate(const wire::Migrate& m);
  void on_abort(const wire::Abort& a);
  void on_prepared(const wire::Prepared& p) { waits_.resolved(p); }
  void on_control(const ControlRequest& req, Answer answer);
  // File mode: reads the desired-state file (at start and on SIGHUP); a bad file is logged and
  // the previous state kept.
  void reload();

  const ApplyReport& last_report() const { return last_; }
  // What the controller is told of this host now.
  ApplyReport for_controller() const { return facts_.for_controller(last_); }

 private:
  void remember(const overlay::DesiredChange& change);
  void carry();
  void paused_changed();
  void send_report();
  void arm_waits();

  boost::asio::io_context& io_;
  AgentSettings settings_;
  Dataplane& dataplane_;
  LibvirtCalls libvirt_;
  ControllerLink* link_ = nullptr;
  StorageThread* storage_ = nullptr;
  AgentMetrics* metrics_ = nullptr;
  StatusFile status_;
  ApplyReport last_;
  HostFacts facts_;
  // The newest desired state handed to the dataplane; what the parts here need of it is its
  // local slice (the ports this host programs), which costs what the change costs.
  overlay::DesiredIndex desired_;
  bool refused_ = false;  // the last whole state was for another host
  MigrationRelay relay_;
  ConntrackCarrier carrier_;
  IncomingWaits waits_;  // libvirt hooks holding incoming migrations
  boost::asio::steady_timer waits_timer_;
  // Last: joined first on destruction, while what its jobs use is still there.
  BlockingJobs libvirt_jobs_;
};

}  // namespace cutover::agent
