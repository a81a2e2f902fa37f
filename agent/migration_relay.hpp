// MigrationRelay: the frames a migration's switchover would otherwise lose, carried by the agents
// themselves. On the source, from the prepare on, it watches the egress of the leaving VM's tap
// (TapBacklog: every frame the switch handed to the VM, and how many of them QEMU read). When the
// VM stops for the final copy (libvirt; local, no controller involved) the frames that reached the
// tap but were not read, and every frame that still reaches it until the dataplane forwards them
// itself, go to the destination's agent over UDP. On the destination it takes such frames - from
// a VTEP of its desired state, for a port arriving or running here, unicast to that port's MAC -
// and writes them into the port's tap, where they queue until the VM resumes (the arriving tap's
// queue is lengthened for that). Runs on the agent's io_context.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "desired_state.hpp"
#include "relay_wire.hpp"
#include "tap_backlog.hpp"

namespace cutover::agent {

struct MigrationRelayConfig {
  uint16_t port = 4797;                  // UDP, on this host's underlay address; 0 = relay off
  uint32_t arriving_txqueuelen = 10000;  // frames an arriving tap can hold until the VM resumes
  std::chrono::milliseconds sample_interval{5};
};

class MigrationRelay {
 public:
  // What the relay did, for the agent's log and its reports to the controller.
  struct Counts {
    int64_t relayed = 0;   // frames this host sent for the port (source)
    int64_t backlog = 0;   // of which had reached the tap before the VM stopped, unread
    int64_t injected = 0;  // frames written into the port's tap here (destination)
    int64_t refused = 0;   // relay datagrams for it refused here
  };
  using LogFn = std::function<void(const std::string& port, const std::string& message)>;

  MigrationRelay(boost::asio::io_context& io, MigrationRelayConfig config, LogFn log);
  ~MigrationRelay();

  // The newest desired state, the taps the dataplane has bound (iface-id -> ifname) and the
  // iface-ids whose VM stopped here for an outgoing migration. Cheap when nothing changed.
  void update(const DesiredState& state, const std::map<std::string, std::string>& taps,
              const std::set<std::string>& departed);

  const std::map<std::string, Counts>& counts() const { return counts_; }

 private:
  struct Leaving {
    std::string port;
    std::string iface_id;
    MacAddress mac;
    IpAddress destination;
    std::string tap;
    std::unique_ptr<TapBacklog> backlog;
    std::unique_ptr<boost::asio::posix::stream_descriptor> readable;
    bool relaying = false;  // the VM stopped: everything captured is relayed
  };
  struct Local {  // a port whose tap takes relayed frames here (arriving or running)
    std::string port;
    MacAddress mac;
    std::string tap;
  };
  void start_watch(Leaving& l);
  void stop_watch(Leaving& l);
  void depart(Leaving& l);
  void drain(const std::string& iface_id);
  void arm_read(const std::string& iface_id);
  void arm_sampler();
  void send(Leaving& l, const std::vector<uint8_t>& frame, bool backlog);
  void bind(const IpAddress& self);
  void receive();
  void inject(const RelayFrame& f, const IpAddress& from);
  void lengthen_queue(const std::string& tap);

  boost::asio::io_context& io_;
  MigrationRelayConfig config_;
  LogFn log_;
  boost::asio::ip::udp::socket socket_;
  std::optional<IpAddress> bound_to_;
  boost::asio::ip::udp::endpoint from_;
  std::vector<uint8_t> rx_;
  boost::asio::steady_timer sampler_;
  bool sampling_ = false;
  int inject_fd_ = -1;
  std::map<std::string, Leaving> leaving_;  // by iface-id
  std::map<std::string, Local> local_;      // by iface-id
  std::set<IpAddress> peers_;
  std::set<std::string> lengthened_;      // taps whose queue was lengthened
  std::map<std::string, Counts> counts_;  // by port id
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cutover::agent
