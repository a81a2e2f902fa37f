// The shared model: hosts (hypervisors), networks (VXLAN segments), ports (a VM's NIC: MAC, IPs,
// network, OVS iface-id, current host) and migrations. Plain value types; validation lives in the
// JSON codecs (json_codec.hpp) and in the overlay translation (consistency across objects).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ids.hpp"
#include "ip_address.hpp"
#include "mac_address.hpp"
#include "vni.hpp"

namespace cutover {

using Labels = std::map<std::string, std::string>;

enum class Backend { ovs, linux };
const char* to_string(Backend b);

struct Host {
  HostId id;
  IpAddress underlay_ip;  // VXLAN tunnel endpoint
  Backend backend = Backend::ovs;
  Labels labels;
  // How other hypervisors' libvirt reaches this one for a live migration (e.g.
  // qemu+tls://hv2/system); empty = cutover does not drive migrations to this host.
  std::string migration_uri;
  // NVMe/TCP: this host's NQN and what its agent can do for volumes: "kernel" (attaches them with
  // the kernel's nvme-tcp), "probe" (verifies the path with the userspace probe), "" (nothing).
  std::string host_nqn;
  std::string storage;
  bool operator==(const Host&) const = default;
};

struct Network {
  NetworkId id;
  std::string name;
  Vni vni;
  int mtu = 1450;  // VM-facing MTU; 1450 leaves room for VXLAN over a 1500 underlay
  bool operator==(const Network&) const = default;
};

// Stateful ingress filter entry: new connections to the port are allowed for these; replies and
// related traffic always are. protocol: tcp, udp, icmp (v4 and v6); port 0 = any (tcp/udp).
struct IngressRule {
  std::string protocol;
  int port = 0;
  bool operator==(const IngressRule&) const = default;
};

// A connection the port had on its source host, seen from the VM (local = the VM's side), carried
// to the destination so that its firewall treats the connection as established there too.
struct CarriedConn {
  std::string protocol;  // tcp or udp
  IpAddress local_ip;
  int local_port = 0;
  IpAddress remote_ip;
  int remote_port = 0;
  auto operator<=>(const CarriedConn&) const = default;
};

constexpr size_t kMaxCarriedConns = 4096;

// An NVMe/TCP volume a VM uses (its data disk), reached through one or more target paths. A
// migration's prepare makes it ready on the destination; its end releases it on the host left.
struct VolumePath {
  IpAddress traddr;
  int trsvcid = 4420;
  bool operator==(const VolumePath&) const = default;
};
struct Volume {
  std::string id;   // unique within the port, e.g. "data"
  std::string nqn;  // subsystem NQN
  std::vector<VolumePath> paths;
  std::optional<std::array<uint8_t, 16>> nguid;  // the namespace that must be there
  bool operator==(const Volume&) const = default;
};

// A rate limit in kbit/s (1000 bit/s) and the burst allowed on top of it, in kbit.
struct RateLimit {
  int64_t kbit_s = 0;      // 1 .. kMaxKbitS
  int64_t burst_kbit = 0;  // 0 = default_burst_kbit(kbit_s)
  bool operator==(const RateLimit&) const = default;
};
constexpr int64_t kMaxKbitS = 10'000'000;  // 10 Gbit/s: tc's rates are 32-bit bytes/s
constexpr int64_t kMinBurstKbit = 16;      // two full-size frames: a smaller bucket passes nothing
// The burst a limit gets when it names none: 100 ms at its rate, at least 100 kbit (8 frames of
// 1500 bytes), so that TCP through a policer is not starved by a bucket smaller than its window.
int64_t default_burst_kbit(int64_t kbit_s);
inline int64_t burst_kbit(const RateLimit& r) {
  return r.burst_kbit ? r.burst_kbit : default_burst_kbit(r.kbit_s);
}

// A port's rate limits, as the VM sees them (libvirt's <bandwidth>: inbound = to_vm, outbound =
// from_vm). They follow the VM: installed wherever the port is bound (an arriving port's
// destination too, before the pause) and gone from the host it left.
struct PortQos {
  std::optional<RateLimit> to_vm;    // what the network delivers to the VM (shaped)
  std::optional<RateLimit> from_vm;  // what the VM sends into the network (policed/shaped)
  bool empty() const { return !to_vm && !from_vm; }
  bool operator==(const PortQos&) const = default;
};

struct Port {
  PortId id;
  MacAddress mac;
  std::vector<IpAddress> ips;
  NetworkId network;
  std::string iface_id;  // OVS external_ids:iface-id (libvirt interfaceid); defaults to the id
  Labels labels;
  std::optional<HostId> host;  // where the VM runs now; none = not placed
  // Set while a migration prepares/executes. The destination binds the port *held*: it accepts
  // the VM's frames and delivers it only what arrives by tunnel for its MAC - which nobody sends
  // there but the source, once the VM has stopped on it (the source forwards the port's frames
  // to the destination from its pause on, and relays what reached the tap too late for the VM).
  // Everyone else keeps sending to `host`. Frames sent during the pause queue in the
  // destination's tap and reach the VM at resume; each frame takes one path, so none arrives
  // twice.
  std::optional<HostId> migrating_to;
  // Set at cutover to the host the VM left, until every VTEP has applied the new location (and a
  // grace period after): that host forwards frames still arriving there for the port to `host`,
  // so what was in flight when the VTEPs switched is not lost.
  std::optional<HostId> previous_host;
  // Stateful firewall (OVS conntrack) on the port's ingress when set; absent = no filtering.
  std::optional<std::vector<IngressRule>> ingress_allow;
  // Set by the controller from the source's conntrack during a migration (see CarriedConn).
  std::vector<CarriedConn> carried_conns;
  std::vector<Volume> volumes;  // NVMe/TCP volumes of the VM behind this port
  PortQos qos;
  bool operator==(const Port&) const = default;
};

// Which cutover network the interfaces on one libvirt network join: the inventory makes ports
// of running VMs' interfaces from it (a <metadata> element in cutover's namespace naming the
// network overrides it per interface). A portgroup's entry wins over the network's own.
struct NetworkMapping {
  std::string libvirt_network;                  // its name, an id-like string (the record's id)
  std::optional<NetworkId> network;             // for interfaces in no mapped portgroup
  std::map<std::string, NetworkId> portgroups;  // libvirt portgroup -> cutover network
  bool operator==(const NetworkMapping&) const = default;
};
// The cutover network of an interface on `m` in `portgroup` ("" = none), if the mapping has one.
std::optional<NetworkId> mapped_network(const NetworkMapping& m, const std::string& portgroup);

// Every host that must program the port: where it runs, where it is arriving, and the host it
// just left (which forwards for it). The one place that says which hosts see a port.
std::vector<HostId> port_locations(const Port& p);
// Whether `host` is one of the port's locations.
bool port_is_at(const Port& p, const HostId& host);

enum class MigrationState {
  requested,
  pending_approval,
  preparing,
  ready,
  migrating,
  cutting_over,
  completed,
  rolling_back,
  rolled_back,
  rejected,
};
const char* to_string(MigrationState s);
std::optional<MigrationState> migration_state_from_string(const std::string& s);
bool is_terminal(MigrationState s);

// How libvirt runs a live migration that cutover drives (virDomainMigrateToURI3 on the source
// host). An unset field takes the source agent's default (its --migrate-* flags).
struct LibvirtMigrationSettings {
  // Define the domain on the destination and undefine it on the source once it has moved
  // (VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE). Agents default to on.
  std::optional<bool> persist;
  std::optional<bool> auto_converge;       // throttle the vCPUs until pre-copy converges
  std::optional<bool> compressed;          // compress memory pages (costs CPU on both hosts)
  std::optional<int64_t> bandwidth_mib_s;  // the migration stream's cap, MiB/s
  // Post-copy: once the job copies memory the VM switches to the destination and runs there
  // while its memory follows (VIR_MIGRATE_POSTCOPY, then virDomainMigrateStartPostCopy). The
  // pause that cutover's gate follows is the switch.
  std::optional<bool> postcopy;
  bool empty() const {
    return !persist && !auto_converge && !compressed && !bandwidth_mib_s && !postcopy;
  }
  bool operator==(const LibvirtMigrationSettings&) const = default;
};

// What a traffic test measured across a migration, posted once it ended (scripts/lab does):
// of `sent` probe packets at `pps`, `lost` never came back; `tcp_survived` of `tcp_sessions` TCP
// sessions lived through it. The controller keeps and shows it; it measures none of it itself.
struct Measurement {
  int64_t pps = 0;
  int64_t sent = 0;
  int64_t lost = 0;
  int64_t tcp_sessions = 0;
  int64_t tcp_survived = 0;
  std::string by;  // who measured, free text (e.g. "scripts/lab")
  bool operator==(const Measurement&) const = default;
};

struct Migration {
  MigrationId id;
  PortId port;
  std::string vm;  // the libvirt domain it was asked for by, if any (POST {"vm"})
  // A VM with several ports migrates as one group, a migration per port: the group is the id of
  // its first port's migration, which drives libvirt once every member is ready; a member that
  // rolls back before the VM's pause rolls the others back. "" = a migration on its own.
  std::string group;
  HostId source;
  HostId destination;
  MigrationState state = MigrationState::requested;
  std::string reason;                       // why it was rejected / rolled back
  std::map<std::string, int64_t> timeline;  // phase name -> unix time in microseconds
  int64_t announcements = 0;                // GARP/NA/RARP frames the destination sent at cutover
  bool carry_conntrack = true;          // carry the source\'s conntrack entries to the destination
  int64_t conntrack_carried = -1;       // how many were carried (-1: none reported)
  LibvirtMigrationSettings libvirt;     // as asked for (cutover-driven migrations only)
  std::optional<Measurement> measured;  // posted after it ended, if anyone measured it
  bool operator==(const Migration&) const = default;
};

}  // namespace cutover
