// MigrationRelay: the frames a migration's switchover would otherwise lose, carried by the agents
// themselves. On the source, from the prepare on, it watches the egress of the leaving VM's tap
// (TapBacklog: every frame the switch handed to the VM, and how many of them QEMU read). When the
// VM stops for the final copy (libvirt; local, no controller involved) the frames that reached the
// tap but were not read, and every frame that still reaches it until the dataplane forwards them
// itself, go to the destination's agent over UDP. On the destination it takes such frames - from
// a VTEP of its desired state, for a port arriving or running here, unicast to that port's MAC -
// and writes them into the port's tap, where they queue until the VM resumes. VM taps that appear
// while the agent runs get a long queue at once: an arriving one holds what comes until the
// resume, a leaving one what comes while QEMU, finishing the copy, reads nothing (the default
// 1,000 frames last 250 ms at 4 kpps, less than a loaded host's stall before the pause; the tap
// drops the rest). Taps there before the agent keep their length (changing it drops frames) until
// their VM's first migration; with the relay off (port 0) nothing is lengthened. On the Linux
// dataplane (forward_tunnel) it also forwards what arrives from the tunnel for a MAC this host
// forwards (TunnelCapture), which OVS does with a flow. Runs on the agent's io_context.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "desired_state.hpp"
#include "packet_socket.hpp"
#include "relay_wire.hpp"
#include "tap_backlog.hpp"
#include "tunnel_capture.hpp"

namespace cutover::agent {

struct MigrationRelayConfig {
  uint16_t port = 4797;         // UDP, on this host's underlay address; 0 = relay off
  uint32_t txqueuelen = 10000;  // frames a VM's tap can hold unread (0 = leave the length)
  std::chrono::milliseconds sample_interval{5};
  // Linux dataplane: forward frames arriving from the tunnel for MACs whose VM stopped here or
  // left at cutover (the bridge cannot send them back out of the VXLAN port).
  bool forward_tunnel = false;
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
  using Clock = std::chrono::steady_clock;
  using Frame = std::vector<uint8_t>;
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
  struct Forward {  // forward_tunnel: frames for a MAC arriving on the VXLAN device
    std::string port;
    std::string iface_id;
    IpAddress destination;
    std::unique_ptr<TunnelCapture> capture;
    std::unique_ptr<boost::asio::posix::stream_descriptor> readable;
    std::deque<std::pair<Clock::time_point, Frame>> pending;  // waiting for the tap's verdict
    // What the tap's watch relayed lately (hashes): their tunnel twins went to the tap as well
    // and must not be relayed twice. Kept here, beyond the tap's watch: cutover ends that watch
    // while twins may still be pending.
    std::multiset<size_t> relayed_hashes;
    std::deque<std::pair<Clock::time_point, size_t>> relayed_recent;
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
  void send(const std::string& port, const std::string& iface_id, const IpAddress& destination,
            const Frame& frame, bool backlog);
  // Relays a frame the tap's watch captured (remembering it: its tunnel twin is not relayed).
  void relay_from_tap(Leaving& l, const Frame& frame, bool backlog);
  void want_forward(const std::string& port, const std::string& iface_id, const MacAddress& mac,
                    const IpAddress& destination, const std::string& dev);
  void arm_forward_read(const std::string& iface_id);
  void settle_forwards();
  void bind(const IpAddress& self);
  void receive();
  void inject(const RelayFrame& f, const IpAddress& from);
  // Gives a VM tap config_.txqueuelen frames of queue, once, if it is new (see the .cpp).
  void settle_length(const std::string& tap, bool even_if_preexisting);
  static std::set<std::pair<std::string, unsigned>> interfaces_now();  // (name, ifindex)

  boost::asio::io_context& io_;
  MigrationRelayConfig config_;
  LogFn log_;
  boost::asio::ip::udp::socket socket_;
  std::optional<IpAddress> bound_to_;
  boost::asio::ip::udp::endpoint from_;
  std::vector<uint8_t> rx_;
  boost::asio::steady_timer sampler_;
  bool sampling_ = false;
  FrameWriter injector_;
  std::map<std::string, Leaving> leaving_;   // by iface-id
  std::map<std::string, Forward> forwards_;  // by iface-id
  std::set<std::string> forwarding_;         // iface-ids wanted by the current update()
  boost::asio::steady_timer forward_timer_;
  bool forward_timer_armed_ = false;
  std::map<std::string, Local> local_;  // by iface-id
  std::set<IpAddress> peers_;
  // Interfaces there when the agent started, and taps whose length was settled since.
  std::set<std::pair<std::string, unsigned>> preexisting_;
  std::map<std::pair<std::string, unsigned>, bool> settled_;  // -> lengthened
  std::map<std::string, Counts> counts_;                      // by port id
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cutover::agent
