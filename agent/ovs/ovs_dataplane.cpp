// OvsDataplane: the dedicated OVS thread and its wake-up rules.
#include "ovs_dataplane.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <stdexcept>

#include "logging.hpp"
#include "ovs_flow_switch.hpp"
#include "ovs_shim.h"
#include "ovsdb_idl_switch.hpp"

namespace cutover::agent {

using Clock = std::chrono::steady_clock;

OvsDataplane::OvsDataplane(OvsDataplaneConfig config) : config_(std::move(config)) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error("eventfd failed");
}

OvsDataplane::~OvsDataplane() {
  stop();
  close(wake_fd_);
}

void OvsDataplane::start(ReportFn on_report) {
  on_report_ = std::move(on_report);
  thread_ = std::thread([this] { run(); });
}

void OvsDataplane::set_desired(DesiredState state) {
  {
    std::lock_guard lock(mutex_);
    pending_ = std::move(state);
  }
  wake();
}

void OvsDataplane::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  wake();
  thread_.join();
}

void OvsDataplane::wake() {
  uint64_t one = 1;
  [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
}

void OvsDataplane::run() {
  auto log = logger("ovs");
  cov_init();
  cov_db* db = cov_db_create(config_.ovsdb_remote.c_str());
  OvsdbIdlSwitch ovsdb(db);
  OvsFlowSwitch flows(config_.openflow_target);
  OvsReconciler reconciler(config_.reconciler, flows, ovsdb);

  std::optional<DesiredState> desired;
  std::vector<OvsInterface> last_ifaces;
  bool dirty = false;
  bool was_connected = false;
  auto next_due = Clock::time_point::max();
  while (!stopping_) {
    cov_db_run(db);
    const bool connected = cov_db_connected(db) != 0;
    if (connected != was_connected) {
      log->info("OVSDB {} {}", config_.ovsdb_remote, connected ? "connected" : "disconnected");
      was_connected = connected;
      dirty = dirty || connected;
    }
    if (connected) {
      auto ifaces = ovsdb.interfaces();
      if (ifaces != last_ifaces) {
        last_ifaces = std::move(ifaces);
        dirty = true;
      }
    }
    {
      std::lock_guard lock(mutex_);
      if (pending_) {
        desired = std::move(pending_);
        pending_.reset();
        dirty = true;
      }
    }
    const auto now = Clock::now();
    if (now >= next_due) dirty = true;

    // Reconcile only once OVSDB's contents are loaded: reconciling against an empty view would
    // tear down flows of ports we simply have not heard about yet.
    if (dirty && connected && desired) {
      dirty = false;
      auto report = reconciler.reconcile(*desired);
      if (report.ok || report.rejected) {
        next_due = Clock::now() + config_.resync_interval;
      } else {
        next_due = Clock::now() + config_.retry_interval;
      }
      if (on_report_) on_report_(report);
      continue;  // re-run the IDL: our own transactions changed it
    }
    int timeout_ms = -1;
    if (next_due != Clock::time_point::max()) {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(next_due - now).count() + 1));
    }
    cov_db_wait(db, wake_fd_, timeout_ms);
    uint64_t drained;
    [[maybe_unused]] auto n = read(wake_fd_, &drained, sizeof drained);
  }
  cov_db_destroy(db);
}

}  // namespace cutover::agent
