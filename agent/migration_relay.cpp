// MigrationRelay: source-side watches and relaying, destination-side injection.
#include "migration_relay.hpp"

#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "parse_error.hpp"

namespace cutover::agent {

namespace asio = boost::asio;
using udp = asio::ip::udp;

namespace {
asio::ip::address to_asio(const IpAddress& ip) { return asio::ip::make_address(ip.to_string()); }
bool dst_is(const std::vector<uint8_t>& frame, const MacAddress& mac) {
  return frame.size() >= 14 && std::equal(frame.begin(), frame.begin() + 6, mac.bytes().begin());
}
}  // namespace

MigrationRelay::MigrationRelay(asio::io_context& io, MigrationRelayConfig config, LogFn log)
    : io_(io), config_(config), log_(std::move(log)), socket_(io), rx_(65536), sampler_(io) {}

MigrationRelay::~MigrationRelay() {
  *alive_ = false;
  for (auto& [id, l] : leaving_) stop_watch(l);
  if (inject_fd_ >= 0) close(inject_fd_);
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
  for (const auto& p : state.ports) {
    if (!p.host) continue;
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
      if (p.migrating_to == state.host && !lengthened_.count(tap->second)) {
        lengthen_queue(tap->second);
      }
    }
  }
  for (auto it = leaving_.begin(); it != leaving_.end();) {
    if (still_leaving.count(it->first)) {
      ++it;
      continue;
    }
    const auto& c = counts_[it->second.port];
    if (c.relayed > 0) {
      log_(it->second.port, "migration over: relayed " + std::to_string(c.relayed) +
                                " frames to its destination (" + std::to_string(c.backlog) +
                                " from the tap's backlog)");
    }
    stop_watch(it->second);
    it = leaving_.erase(it);
  }
  local_ = std::move(local);
  std::erase_if(lengthened_, [&](const std::string& tap) {
    return std::none_of(local_.begin(), local_.end(),
                        [&](const auto& kv) { return kv.second.tap == tap; });
  });
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
  for (const auto& f : l.backlog->drain()) send(l, f, false);
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
    send(l, f, true);
    ++n;
  }
  log_(l.port, "VM stopped for the final copy: relayed the " + std::to_string(n) +
                   " frames it had not read from its tap to " + l.destination.to_string() + " (" +
                   l.backlog->describe() + ")" +
                   (drops ? "; the capture dropped " + std::to_string(drops) + " frames" : ""));
}

void MigrationRelay::send(Leaving& l, const std::vector<uint8_t>& frame, bool backlog) {
  if (!dst_is(frame, l.mac) || !socket_.is_open()) return;
  const auto datagram = encode_relay(l.iface_id, frame);
  boost::system::error_code ec;
  socket_.send_to(asio::buffer(datagram), udp::endpoint(to_asio(l.destination), config_.port), 0,
                  ec);
  auto& c = counts_[l.port];
  if (ec) {
    if (c.relayed == 0) log_(l.port, "relay to " + l.destination.to_string() + ": " + ec.message());
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
  if (inject_fd_ < 0) inject_fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(if_nametoindex(it->second.tap.c_str()));
  to.sll_halen = 6;
  if (inject_fd_ < 0 || to.sll_ifindex == 0 ||
      sendto(inject_fd_, f.frame.data(), f.frame.size(), MSG_DONTWAIT,
             reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    ++c.refused;
    return;
  }
  if (c.injected++ == 0) {
    log_(it->second.port,
         "relayed frames from " + from.to_string() + " go into its tap " + it->second.tap);
  }
}

void MigrationRelay::lengthen_queue(const std::string& tap) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, tap.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFTXQLEN, &ifr) == 0 &&
      static_cast<uint32_t>(ifr.ifr_qlen) < config_.arriving_txqueuelen) {
    ifr.ifr_qlen = static_cast<int>(config_.arriving_txqueuelen);
    if (ioctl(fd, SIOCSIFTXQLEN, &ifr) == 0) {
      lengthened_.insert(tap);
    }
  } else {
    lengthened_.insert(tap);
  }
  close(fd);
}

}  // namespace cutover::agent
