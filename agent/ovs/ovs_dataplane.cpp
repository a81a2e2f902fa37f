// OvsDataplane: the dedicated OVS thread and its wake-up rules.
#include "ovs_dataplane.hpp"

#include <unistd.h>

#include <stdexcept>

#include "logging.hpp"
#include "ovs_flow_switch.hpp"
#include "ovs_shim.h"
#include "ovsdb_idl_switch.hpp"
#include "reconcile_schedule.hpp"

namespace cutover::agent {

using Clock = std::chrono::steady_clock;

namespace {
// Announcements leave as if the VM sent them: a packet-out with in_port = the VM's ofport through
// the pipeline, so they reach local ports and every VTEP of the network like its own broadcast.
class OvsFrameSink : public FrameSink {
 public:
  OvsFrameSink(FlowSwitch& flows, OvsdbIdlSwitch& db, std::string bridge)
      : flows_(flows), db_(db), bridge_(std::move(bridge)) {}
  void send(const Port& port, uint32_t, const overlay::Frame& frame) override {
    const auto map = OvsReconciler::port_map(db_.interfaces(), bridge_);
    auto it = map.vm_ofports.find(port.iface_id);
    if (it == map.vm_ofports.end()) throw std::runtime_error(port.iface_id + " is not bound");
    flows_.packet_out(it->second, frame);
  }

 private:
  FlowSwitch& flows_;
  OvsdbIdlSwitch& db_;
  std::string bridge_;
};
}  // namespace

void OvsDataplane::run() {
  auto log = logger("ovs");
  cov_init();
  cov_db* db = cov_db_create(config_.ovsdb_remote.c_str());
  OvsdbIdlSwitch ovsdb(db);
  OvsFlowSwitch flows(config_.openflow_target);
  OvsReconciler reconciler(config_.reconciler, flows, ovsdb);
  OvsFrameSink sink(flows, ovsdb, config_.reconciler.bridge);

  overlay::DesiredIndex desired(true);  // recording changes for the announcer
  std::set<std::string> departed;
  ReconcileSchedule schedule(config_.resync_interval, config_.retry_interval);
  std::vector<OvsInterface> last_ifaces;
  bool was_connected = false;
  set_backend_connected(false);
  while (!stopping()) {
    cov_db_run(db);
    const bool connected = cov_db_connected(db) != 0;
    if (connected != was_connected) {
      log->info("OVSDB {} {}", config_.ovsdb_remote, connected ? "connected" : "disconnected");
      was_connected = connected;
      set_backend_connected(connected);
      schedule.reconnected();
    }
    if (connected) {
      auto ifaces = ovsdb.interfaces();
      if (ifaces != last_ifaces) {
        last_ifaces = std::move(ifaces);
        schedule.changed();
      }
    }
    if (take_pending(desired)) schedule.changed();
    if (auto d = take_departed()) {
      if (*d != departed) schedule.changed();
      departed = std::move(*d);
    }
    // Reconcile only once OVSDB's contents are loaded: reconciling against an empty view would
    // tear down flows of ports we simply have not heard about yet.
    if (schedule.due(Clock::now()) && connected && !desired.empty()) {
      auto report = reconciler.reconcile(desired, departed, schedule.verify());
      schedule.done(report, Clock::now());
      this->report(report);
      announce(desired, report, sink);
      continue;  // re-run the IDL: our own transactions changed it
    }
    cov_db_wait(db, wake_fd(), announce_timeout(schedule.timeout_ms(Clock::now())));
    drain_wake();
    if (connected) announce_due(sink);
  }
  cov_db_destroy(db);
}

}  // namespace cutover::agent
