// Announcements at cutover: the frames a destination sends for a port that has just become
// active on it (gratuitous ARP per IPv4 address, unsolicited neighbour advertisement per IPv6
// address, and a RARP for the MAC, as QEMU's own announce does), and the tracker that decides
// when a port has just arrived. Pure: bytes and sets, no sockets and no clocks of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "desired_index.hpp"
#include "desired_state.hpp"

namespace cutover::overlay {

using Frame = std::vector<uint8_t>;

// RFC 5227 ARP announcement: broadcast ARP request with sender = target = ip.
Frame garp_frame(const MacAddress& mac, const IpAddress& ipv4);
// RFC 903 reverse request with sender = target = mac (the frame QEMU announces with).
Frame rarp_frame(const MacAddress& mac);
// RFC 4861 unsolicited neighbour advertisement to ff02::1, Override set, target link-layer
// address option, ICMPv6 checksum filled in.
Frame unsolicited_na_frame(const MacAddress& mac, const IpAddress& ipv6);
// Every frame one announcement round sends for a port: GARP/NA per IP, then one RARP.
std::vector<Frame> announcement_frames(const Port& port);

// Whether the port is active here: hosted here and not leaving (the network sends its frames
// here). An arriving port becomes active at cutover.
bool delivered_here(const Port& port, const HostId& self);

// Pacing of the rounds after activation (the first goes out at once).
inline const std::vector<std::chrono::milliseconds> kAnnounceSchedule = {
    std::chrono::milliseconds(0), std::chrono::milliseconds(10), std::chrono::milliseconds(50),
    std::chrono::milliseconds(200)};

// Decides which ports just became active on this host: delivered here now (hosted here and not
// leaving) and bound by the dataplane, after having been arriving here (held) or placed on
// another host in an earlier state. A port newly placed here
// without a migration, or every port on the agent's first state, is not announced: nothing
// about its location changed for the network.
class ArrivalTracker {
 public:
  // A port of the state changed (before: none = new to the state; now: none = removed). A port
  // delivered here now that was arriving here or placed elsewhere before has arrived.
  void changed(const Port* before, const Port* now, const HostId& self);
  // The ports that arrived and are bound now, to announce (once per arrival), in id order.
  std::vector<PortId> due(const std::set<std::string>& bound_ids);
  // Whole states, each compared with the one before (for callers without a DesiredIndex).
  std::vector<PortId> observe(const DesiredState& state, const std::set<std::string>& bound_ids);

 private:
  std::set<PortId> waiting_;  // arrived, not bound yet
  DesiredIndex seen_{true};   // observe()'s states
};

}  // namespace cutover::overlay
