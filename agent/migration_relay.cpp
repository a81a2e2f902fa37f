// MigrationRelay: source-side watches and relaying, destination-side injection.
#include "migration_relay.hpp"

#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "linux_plan.hpp"
#include "parse_error.hpp"

namespace cutover::agent {

namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {
asio::ip::address to_asio(const IpAddress& ip) { return asio::ip::make_address(ip.to_string()); }
bool dst_is(const std::vector<uint8_t>& frame, const MacAddress& mac) {
  return frame.size() >= 14 && std::equal(frame.begin(), frame.begin() + 6, mac.bytes().begin());
}
// Identifies a frame captured twice, on the tunnel and on the tap (its twin).
size_t frame_hash(const std::vector<uint8_t>& frame) {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(frame.data()), frame.size()));
}
// The tap's queue length (SIOCGIFTXQLEN) or, with `set`, sets it; nullopt when the tap is gone.
std::optional<uint32_t> queue_length(const std::string& tap, std::optional<uint32_t> set = {}) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, tap.c_str(), IFNAMSIZ - 1);
  int rc = 0;
  if (set) {
    ifr.ifr_qlen = static_cast<int>(*set);
    rc = ioctl(fd, SIOCSIFTXQLEN, &ifr);
  } else {
    rc = ioctl(fd, SIOCGIFTXQLEN, &ifr);
  }
  const int err = errno;
  close(fd);
  errno = err;
  if (rc != 0) return std::nullopt;
  return static_cast<uint32_t>(ifr.ifr_qlen);
}
}  // namespace

MigrationRelay::MigrationRelay(asio::io_context& io, MigrationRelayConfig config, LogFn log)
    : io_(io),
      config_(config),
      log_(std::move(log)),
      socket_(io),
      rx_(65536),
      sampler_(io),
      forward_timer_(io),
      preexisting_(interfaces_now()) {}

MigrationRelay::~MigrationRelay() {
  *alive_ = false;
  for (auto& [id, l] : leaving_) stop_watch(l);
  for (auto& [id, f] : forwards_) {
    boost::system::error_code ec;
    if (f.readable) f.readable->close(ec);
  }
}

void MigrationRelay::update(const DesiredState& state,
                            const std::map<std::string, std::string>& taps,
                            const std::set<std::string>& departed) {
  if (config_.port == 0) return;
  std::map<HostId, IpAddress> vtep;
  for (const auto& h : state.hosts) vtep[h.id] = h.underlay_ip;
  if (auto self = vtep.find(state.host); self != vtep.end() && bound_to_ != self->second) {
    bind(self->second);
  }
  peers_.clear();
  for (const auto& [id, ip] : vtep) {
    if (id != state.host) peers_.insert(ip);
  }
  std::map<std::string, Local> local;
  std::set<std::string> still_leaving;
  std::map<NetworkId, uint32_t> vni;
  for (const auto& n : state.networks) vni[n.id] = n.vni.value();
  forwarding_.clear();
  for (const auto& p : state.ports) {
    if (!p.host) continue;
    // The kernel dataplane's forwarding pointer: this host's VM stopped (or left at cutover).
    if (config_.forward_tunnel && vni.count(p.network)) {
      const auto dev = overlay::linux_vxlan_name(vni.at(p.network));
      if (*p.host == state.host && p.migrating_to && vtep.count(*p.migrating_to) &&
          departed.count(p.iface_id)) {
        want_forward(p.id.str(), p.iface_id, p.mac, vtep.at(*p.migrating_to), dev);
      } else if (p.previous_host == state.host && *p.host != state.host && vtep.count(*p.host)) {
        want_forward(p.id.str(), p.iface_id, p.mac, vtep.at(*p.host), dev);
      }
    }
    auto tap = taps.find(p.iface_id);
    const bool here = *p.host == state.host;
    if (here && p.migrating_to && vtep.count(*p.migrating_to)) {
      still_leaving.insert(p.iface_id);
      auto [it, fresh] = leaving_.try_emplace(p.iface_id);
      Leaving& l = it->second;
      const IpAddress dest = vtep.at(*p.migrating_to);
      if (!fresh && (l.destination != dest || (tap != taps.end() && l.tap != tap->second))) {
        stop_watch(l);  // another migration, or QEMU made a new tap: start over
      }
      l.port = p.id.str();
      l.iface_id = p.iface_id;
      l.mac = p.mac;
      l.destination = dest;
      if (!l.backlog && tap != taps.end() && !departed.count(p.iface_id)) {
        l.tap = tap->second;
        start_watch(l);
      }
      if (l.backlog && departed.count(p.iface_id) && !l.relaying) depart(l);
      if (l.relaying && !departed.count(p.iface_id)) {
        // The VM runs here again (its migration failed): watch afresh.
        log_(l.port, "VM resumed on this host; relay stopped after " +
                         std::to_string(counts_[l.port].relayed) + " frames");
        stop_watch(l);
        if (tap != taps.end()) start_watch(l);
      }
    } else if ((here || p.migrating_to == state.host) && tap != taps.end()) {
      local[p.iface_id] = Local{p.id.str(), p.mac, tap->second};
      // Held, nothing flows to it yet: lengthened even if it was there before the agent.
      if (p.migrating_to == state.host) settle_length(tap->second, true);
    }
  }
  for (auto it = leaving_.begin(); it != leaving_.end();) {
    if (still_leaving.count(it->first)) {
      ++it;
      continue;
    }
    // What the capture holds still unread reached the tap while this watch was the only path:
    // relay it now. (The forwarding pointer set up above captures only what arrives from now.)
    if (it->second.relaying) drain(it->first);
    const auto& c = counts_[it->second.port];
    if (c.relayed > 0) {
      log_(it->second.port, "migration over: relayed " + std::to_string(c.relayed) +
                                " frames to its destination (" + std::to_string(c.backlog) +
                                " from the tap's backlog)");
    }
    stop_watch(it->second);
    it = leaving_.erase(it);
  }
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    if (forwarding_.count(it->first)) {
      ++it;
      continue;
    }
    boost::system::error_code ec;
    if (it->second.readable) it->second.readable->close(ec);
    it = forwards_.erase(it);
  }
  local_ = std::move(local);
  for (const auto& [iface, name] : taps) settle_length(name, false);
  arm_sampler();
}

void MigrationRelay::start_watch(Leaving& l) {
  try {
    l.backlog = std::make_unique<TapBacklog>(l.tap);
  } catch (const std::exception& e) {
    log_(l.port, std::string("cannot watch its tap: ") + e.what() +
                     "; frames that reach it during the final copy will be lost");
    return;
  }
  l.relaying = false;
  counts_[l.port].relayed = counts_[l.port].backlog = 0;  // this migration's
  l.readable = std::make_unique<asio::posix::stream_descriptor>(io_, dup(l.backlog->fd()));
  arm_read(l.iface_id);
}

void MigrationRelay::stop_watch(Leaving& l) {
  if (l.readable) {
    boost::system::error_code ec;
    l.readable->cancel(ec);
    l.readable->close(ec);
    l.readable.reset();
  }
  l.backlog.reset();
  l.relaying = false;
}

void MigrationRelay::arm_read(const std::string& iface_id) {
  auto it = leaving_.find(iface_id);
  if (it == leaving_.end() || !it->second.readable) return;
  it->second.readable->async_wait(
      asio::posix::stream_descriptor::wait_read,
      [this, iface_id, alive = alive_](const boost::system::error_code& ec) {
        if (ec || !*alive) return;
        drain(iface_id);
        arm_read(iface_id);
      });
}

void MigrationRelay::drain(const std::string& iface_id) {
  auto it = leaving_.find(iface_id);
  if (it == leaving_.end() || !it->second.backlog) return;
  Leaving& l = it->second;
  if (!l.relaying) {
    l.backlog->sample();
    return;
  }
  for (const auto& f : l.backlog->drain()) relay_from_tap(l, f, false);
}

void MigrationRelay::relay_from_tap(Leaving& l, const Frame& frame, bool backlog) {
  if (!dst_is(frame, l.mac)) return;
  if (auto f = forwards_.find(l.iface_id); f != forwards_.end()) {
    const size_t h = frame_hash(frame);
    f->second.relayed_hashes.insert(h);
    f->second.relayed_recent.emplace_back(Clock::now(), h);
  }
  send(l.port, l.iface_id, l.destination, frame, backlog);
}

void MigrationRelay::want_forward(const std::string& port, const std::string& iface_id,
                                  const MacAddress& mac, const IpAddress& destination,
                                  const std::string& dev) {
  forwarding_.insert(iface_id);
  auto [it, fresh] = forwards_.try_emplace(iface_id);
  Forward& f = it->second;
  if (!fresh && f.destination == destination && f.capture && f.capture->dev() == dev) return;
  boost::system::error_code ec;
  if (f.readable) f.readable->close(ec);
  f = Forward{};
  f.port = port;
  f.iface_id = iface_id;
  f.destination = destination;
  try {
    f.capture = std::make_unique<TunnelCapture>(dev, mac);
  } catch (const std::exception& e) {
    log_(port, std::string("cannot forward what arrives from the tunnel: ") + e.what());
    return;
  }
  f.readable = std::make_unique<asio::posix::stream_descriptor>(io_, dup(f.capture->fd()));
  log_(port, "forwarding what arrives for it on " + dev + " to " + destination.to_string());
  arm_forward_read(iface_id);
}

void MigrationRelay::arm_forward_read(const std::string& iface_id) {
  auto it = forwards_.find(iface_id);
  if (it == forwards_.end() || !it->second.readable) return;
  it->second.readable->async_wait(
      asio::posix::stream_descriptor::wait_read,
      [this, iface_id, alive = alive_](const boost::system::error_code& ec) {
        if (ec || !*alive) return;
        auto f = forwards_.find(iface_id);
        if (f == forwards_.end() || !f->second.capture) return;
        const auto now = Clock::now();
        for (auto& frame : f->second.capture->drain()) {
          f->second.pending.emplace_back(now, std::move(frame));
        }
        settle_forwards();
        arm_forward_read(iface_id);
      });
}

// A frame from the tunnel that the bridge also handed to the VM's tap (still there) shows up
// in both captures, the tunnel's first: it waits a moment for its twin from the tap, which the
// tap's watch relays; without one it is relayed from here.
void MigrationRelay::settle_forwards() {
  constexpr auto kTwinWait = std::chrono::milliseconds(2);
  const auto now = Clock::now();
  bool waiting = false;
  for (auto& [iface, f] : forwards_) {
    auto l = leaving_.find(iface);
    if (l != leaving_.end() && l->second.relaying) drain(iface);  // the tap's side first
    while (!f.pending.empty() && now - f.pending.front().first >= kTwinWait) {
      const Frame& frame = f.pending.front().second;
      const size_t h = frame_hash(frame);
      bool twin = false;
      if (auto t = f.relayed_hashes.find(h); t != f.relayed_hashes.end()) {
        f.relayed_hashes.erase(t);
        twin = true;
      }
      if (!twin) send(f.port, f.iface_id, f.destination, frame, false);
      f.pending.pop_front();
    }
    waiting |= !f.pending.empty();
    // Twins older than this will not come.
    while (!f.relayed_recent.empty() &&
           now - f.relayed_recent.front().first > std::chrono::milliseconds(200)) {
      if (auto t = f.relayed_hashes.find(f.relayed_recent.front().second);
          t != f.relayed_hashes.end()) {
        f.relayed_hashes.erase(t);
      }
      f.relayed_recent.pop_front();
    }
  }
  if (waiting && !forward_timer_armed_) {
    forward_timer_armed_ = true;
    forward_timer_.expires_after(kTwinWait);
    forward_timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
      if (ec || !*alive) return;
      forward_timer_armed_ = false;
      settle_forwards();
    });
  }
}

void MigrationRelay::depart(Leaving& l) {
  auto unread = l.backlog->depart();
  l.relaying = true;
  if (!unread) {
    log_(l.port, "its tap " + l.tap +
                     " was gone when the VM's pause was seen: the frames it held are lost");
    return;
  }
  const auto drops = l.backlog->capture_drops();
  int64_t n = 0;
  for (const auto& f : *unread) {
    if (!dst_is(f, l.mac)) continue;  // flooded traffic stays behind (see README)
    relay_from_tap(l, f, true);
    ++n;
  }
  log_(l.port, "VM stopped for the final copy: relayed the " + std::to_string(n) +
                   " frames it had not read from its tap to " + l.destination.to_string() + " (" +
                   l.backlog->describe() + ")" +
                   (drops ? "; the capture dropped " + std::to_string(drops) + " frames" : ""));
}

void MigrationRelay::send(const std::string& port, const std::string& iface_id,
                          const IpAddress& destination, const Frame& frame, bool backlog) {
  if (!socket_.is_open()) return;
  const auto datagram = encode_relay(iface_id, frame);
  boost::system::error_code ec;
  socket_.send_to(asio::buffer(datagram), udp::endpoint(to_asio(destination), config_.port), 0, ec);
  auto& c = counts_[port];
  if (ec) {
    if (c.relayed == 0) log_(port, "relay to " + destination.to_string() + ": " + ec.message());
    return;
  }
  ++c.relayed;
  if (backlog) ++c.backlog;
}

void MigrationRelay::arm_sampler() {
  if (sampling_) return;
  const bool watching = std::any_of(leaving_.begin(), leaving_.end(), [](const auto& kv) {
    return kv.second.backlog && !kv.second.relaying;
  });
  if (!watching) return;
  sampling_ = true;
  sampler_.expires_after(config_.sample_interval);
  sampler_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    sampling_ = false;
    // Samples taken while no frame is in flight find the tap's queue empty: they fix q0.
    for (auto& [id, l] : leaving_) {
      if (l.backlog && !l.relaying) l.backlog->sample();
    }
    arm_sampler();
  });
}

void MigrationRelay::bind(const IpAddress& self) {
  boost::system::error_code ec;
  if (socket_.is_open()) socket_.close(ec);
  const udp::endpoint at(to_asio(self), config_.port);
  socket_.open(at.protocol(), ec);
  if (!ec) socket_.bind(at, ec);
  if (ec) {
    log_("", "cannot listen for relayed frames on " + self.to_string() + ":" +
                 std::to_string(config_.port) + ": " + ec.message());
    socket_.close(ec);
    bound_to_ = self;  // do not retry on every update
    return;
  }
  bound_to_ = self;
  // A backlog of thousands of frames arrives within milliseconds: the default buffer (~200
  // datagrams) dropped part of it while this thread was busy.
  raise_receive_buffer(socket_.native_handle(), 16 << 20);
  receive();
}

void MigrationRelay::receive() {
  socket_.async_receive_from(asio::buffer(rx_), from_,
                             [this, alive = alive_](const boost::system::error_code& ec, size_t n) {
                               if (!*alive || ec == asio::error::operation_aborted) return;
                               if (!ec) {
                                 try {
                                   const auto from = IpAddress::parse(from_.address().to_string());
                                   inject(decode_relay(rx_.data(), n), from);
                                 } catch (const ParseError&) {
                                   // Not ours or malformed: nothing to act on (and nothing to
                                   // answer).
                                 }
                               }
                               receive();
                             });
}

void MigrationRelay::inject(const RelayFrame& f, const IpAddress& from) {
  auto it = local_.find(f.iface_id);
  if (it == local_.end() || !peers_.count(from) || !dst_is(f.frame, it->second.mac)) {
    if (it != local_.end()) ++counts_[it->second.port].refused;
    return;
  }
  auto& c = counts_[it->second.port];
  try {
    injector_.send(it->second.tap, f.frame.data(), f.frame.size(), MSG_DONTWAIT);
  } catch (const std::runtime_error&) {
    ++c.refused;  // the tap is gone, or its queue is full
    return;
  }
  if (c.injected++ == 0) {
    log_(it->second.port,
         "relayed frames from " + from.to_string() + " go into its tap " + it->second.tap);
  }
}

std::set<std::pair<std::string, unsigned>> MigrationRelay::interfaces_now() {
  std::set<std::pair<std::string, unsigned>> out;
  if (auto* list = if_nameindex()) {
    for (auto* i = list; i->if_index != 0 && i->if_name; ++i) out.emplace(i->if_name, i->if_index);
    if_freenameindex(list);
  }
  return out;
}

// A tap is known by its name and ifindex: libvirt reuses vnetN names for new taps.
void MigrationRelay::settle_length(const std::string& tap, bool even_if_preexisting) {
  const unsigned index = if_nametoindex(tap.c_str());
  if (index == 0) return;  // gone already
  const auto key = std::make_pair(tap, index);
  if (auto it = settled_.find(key); it != settled_.end() && (it->second || !even_if_preexisting)) {
    return;
  }
  // Drop what is gone (a name now on another index, or on none).
  std::erase_if(settled_, [](const auto& kv) {
    return if_nametoindex(kv.first.first.c_str()) != kv.first.second;
  });
  // A tap that carries traffic keeps its length: changing it briefly deactivates the tap's
  // qdisc, which drops what is sent meanwhile (3 frames at 1 kpps, measured). One that appeared
  // after the agent started is new - its VM starting or arriving - and is lengthened at once.
  const bool lengthen =
      config_.txqueuelen != 0 && (!preexisting_.count(key) || even_if_preexisting);
  settled_[key] = lengthen;
  if (!lengthen) return;
  const auto before = queue_length(tap);
  if (!before || *before >= config_.txqueuelen) return;
  if (!queue_length(tap, config_.txqueuelen)) {
    const int err = errno;
    log_("", "cannot lengthen the queue of tap " + tap + " to " +
                 std::to_string(config_.txqueuelen) + " frames: " + std::strerror(err));
  }
}

}  // namespace cutover::agent
