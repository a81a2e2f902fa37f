// Announcement frames and the arrival tracker (see announce.hpp).
#include "announce.hpp"

#include <algorithm>

namespace cutover::overlay {

namespace {
void put16(Frame& f, uint16_t v) {
  f.push_back(static_cast<uint8_t>(v >> 8));
  f.push_back(static_cast<uint8_t>(v));
}
template <typename Bytes>
void put(Frame& f, const Bytes& b, size_t n) {
  f.insert(f.end(), b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
}
void ethernet(Frame& f, const std::array<uint8_t, 6>& dst, const MacAddress& src, uint16_t type) {
  put(f, dst, 6);
  put(f, src.bytes(), 6);
  put16(f, type);
}
constexpr std::array<uint8_t, 6> kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

Frame arp_like(uint16_t ethertype, uint16_t op, const MacAddress& mac,
               const std::array<uint8_t, 4>& spa, const std::array<uint8_t, 6>& tha,
               const std::array<uint8_t, 4>& tpa) {
  Frame f;
  f.reserve(60);
  ethernet(f, kBroadcast, mac, ethertype);
  put16(f, 1);       // Ethernet
  put16(f, 0x0800);  // IPv4
  f.push_back(6);
  f.push_back(4);
  put16(f, op);
  put(f, mac.bytes(), 6);
  put(f, spa, 4);
  put(f, tha, 6);
  put(f, tpa, 4);
  f.resize(60, 0);  // minimum Ethernet frame without FCS
  return f;
}

std::array<uint8_t, 4> v4_bytes(const IpAddress& ip) {
  return {ip.bytes()[0], ip.bytes()[1], ip.bytes()[2], ip.bytes()[3]};
}

bool arriving_here(const Port& p, const HostId& self) {
  if (p.migrating_to && *p.migrating_to == self) return true;
  return p.host && *p.host != self;
}
}  // namespace

Frame garp_frame(const MacAddress& mac, const IpAddress& ipv4) {
  const auto ip = v4_bytes(ipv4);
  return arp_like(0x0806, 1, mac, ip, {}, ip);
}

Frame rarp_frame(const MacAddress& mac) { return arp_like(0x8035, 3, mac, {}, mac.bytes(), {}); }

Frame unsolicited_na_frame(const MacAddress& mac, const IpAddress& ipv6) {
  static constexpr std::array<uint8_t, 16> kAllNodes = {0xff, 0x02, 0, 0, 0, 0, 0, 0,
                                                        0,    0,    0, 0, 0, 0, 0, 1};
  Frame f;
  f.reserve(86);
  ethernet(f, {0x33, 0x33, 0, 0, 0, 1}, mac, 0x86dd);
  const size_t ip_start = f.size();
  put16(f, 0x6000);
  put16(f, 0);
  put16(f, 32);  // payload: ICMPv6 NA (24) + target link-layer address option (8)
  f.push_back(58);
  f.push_back(255);
  put(f, ipv6.bytes(), 16);
  put(f, kAllNodes, 16);
  const size_t icmp_start = f.size();
  f.push_back(136);  // neighbour advertisement
  f.push_back(0);
  put16(f, 0);        // checksum, below
  f.push_back(0x20);  // Override
  f.push_back(0);
  put16(f, 0);
  put(f, ipv6.bytes(), 16);
  f.push_back(2);  // target link-layer address
  f.push_back(1);  // 8 octets
  put(f, mac.bytes(), 6);

  // Checksum over the pseudo-header (src, dst, length, next header) and the ICMPv6 message.
  uint32_t sum = 0;
  auto add = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; i += 2) sum += (f[i] << 8) | (i + 1 < to ? f[i + 1] : 0);
  };
  add(ip_start + 8, ip_start + 40);
  sum += 32 + 58;
  add(icmp_start, f.size());
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t csum = static_cast<uint16_t>(~sum);
  f[icmp_start + 2] = static_cast<uint8_t>(csum >> 8);
  f[icmp_start + 3] = static_cast<uint8_t>(csum);
  return f;
}

bool delivered_here(const Port& p, const HostId& self) {
  return p.host && *p.host == self && !p.migrating_to;
}
std::vector<Frame> announcement_frames(const Port& port) {
  std::vector<Frame> out;
  for (const auto& ip : port.ips) {
    out.push_back(ip.is_v4() ? garp_frame(port.mac, ip) : unsolicited_na_frame(port.mac, ip));
  }
  out.push_back(rarp_frame(port.mac));
  return out;
}

void ArrivalTracker::changed(const Port* before, const Port* now, const HostId& self) {
  const PortId& id = now ? now->id : before->id;
  if (!now || !delivered_here(*now, self)) {
    waiting_.erase(id);
  } else if (before && arriving_here(*before, self)) {
    waiting_.insert(id);
  }
}

std::vector<PortId> ArrivalTracker::due(const std::set<std::string>& bound_ids) {
  std::vector<PortId> out;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (bound_ids.count(it->str())) {
      out.push_back(*it);
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<PortId> ArrivalTracker::observe(const DesiredState& state,
                                            const std::set<std::string>& bound_ids) {
  seen_.reset(state);
  for (const auto& c : seen_.take_changes()) {
    changed(c.before ? &*c.before : nullptr, c.now ? &*c.now : nullptr, state.host);
  }
  return due(bound_ids);
}

}  // namespace cutover::overlay
