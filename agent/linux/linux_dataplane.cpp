// LinuxDataplane: thread, link-event subscription and wake-up rules.
#include "linux_dataplane.hpp"

#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <poll.h>

#include <linux/rtnetlink.h>

#include "libnl_tables.hpp"
#include "linux_plan.hpp"
#include "linux_reconciler.hpp"
#include "logging.hpp"
#include "packet_socket.hpp"
#include "reconcile_schedule.hpp"

namespace cutover::agent {

using Clock = std::chrono::steady_clock;

namespace {
// Announcements are transmitted on the network's bridge: the bridge floods them to its ports,
// the VXLAN device among them (which sends them to every VTEP of the VNI through the all-zero
// FDB entries).
class BridgeFrameSink : public FrameSink {
 public:
  void send(const Port&, uint32_t vni, const overlay::Frame& frame) override {
    writer_.send(overlay::linux_bridge_name(vni), frame.data(), frame.size());
  }

 private:
  FrameWriter writer_;
};
}  // namespace

void LinuxDataplane::run() {
  auto log = logger("linux");
  std::unique_ptr<LibnlTables> tables;
  nl_sock* events = nl_socket_alloc();
  nl_socket_disable_seq_check(events);
  int events_fd = -1;
  if (nl_connect(events, NETLINK_ROUTE) == 0 &&
      nl_socket_add_memberships(events, RTNLGRP_LINK, 0) == 0) {
    nl_socket_set_nonblocking(events);
    events_fd = nl_socket_get_fd(events);
  } else {
    log->warn("cannot subscribe to link events; relying on periodic resync");
  }

  BridgeFrameSink sink;
  overlay::DesiredIndex desired(true);  // recording changes for the announcer
  ReconcileSchedule schedule(config_.resync_interval, config_.retry_interval);
  while (!stopping()) {
    // The kernel backend reconciles the whole state each pass (its cost follows the state),
    // from the same index the announcer reads (errors name a port as the controller sent it).
    if (take_pending(desired)) schedule.changed();
    // The kernel dataplane needs nothing of a VM's pause: its tap stays on the bridge and the
    // agent relays what reaches it (MigrationRelay).
    take_departed();
    if (schedule.due(Clock::now()) && !desired.empty()) {
      ApplyReport report;
      try {
        if (!tables) tables = std::make_unique<LibnlTables>();
        LinuxReconciler reconciler(*tables);
        report = reconciler.reconcile(desired);
      } catch (const std::exception& e) {
        tables.reset();
        report.generation = desired.generation();
        report.error = e.what();
      }
      schedule.done(report, Clock::now());
      this->report(report);
      announce(desired, report, sink);
    }
    pollfd fds[2] = {{wake_fd(), POLLIN, 0}, {events_fd, POLLIN, 0}};
    const int n =
        poll(fds, events_fd >= 0 ? 2 : 1, announce_timeout(schedule.timeout_ms(Clock::now())));
    announce_due(sink);
    if (n > 0 && (fds[0].revents & POLLIN)) drain_wake();
    if (n > 0 && events_fd >= 0 && (fds[1].revents & POLLIN)) {
      char buf[16384];
      while (recv(events_fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
      }
      schedule.changed();  // a link appeared, vanished or changed: recompute
    }
  }
  nl_socket_free(events);
}

}  // namespace cutover::agent
