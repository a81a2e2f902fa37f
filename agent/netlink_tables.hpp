// NetlinkTables: the seam between the Linux reconciler and the kernel's link and bridge-FDB
// tables. Real: LibnlTables (libnl-route). Tests: FakeNetlinkTables. Everything throws
// std::runtime_error naming the object and the kernel's reason.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ip_address.hpp"
#include "linux_plan.hpp"
#include "mac_address.hpp"

namespace cutover::agent {

struct NlLink {
  std::string name;
  std::string kind;    // "bridge", "vxlan", "veth", "tun", "" ...
  std::string master;  // name of the bridge it is enslaved to, or ""
  std::string alias;   // IFLA_IFALIAS: "cutover-owned" on ours; "iface-id=<id>" marks VM taps
  bool up = false;
  // vxlan only
  uint32_t vni = 0;
  std::optional<IpAddress> local;
  uint16_t dstport = 0;
  bool learning = false;
  bool operator==(const NlLink&) const = default;
};

// An FDB entry on one of our VXLAN devices: the translation's own type (one definition).
using NlFdb = overlay::LinuxFdb;

// A token bucket (tbf qdisc) in tc's units: bytes per second and a bucket of bytes.
struct NlTbf {
  int64_t rate_bytes_s = 0;
  int64_t burst_bytes = 0;
  bool operator==(const NlTbf&) const = default;
};
// The traffic control we own on one device: its root qdisc when it is our tbf (handle
// kTcHandle), and the device our ingress filter (prio kTcPrio) redirects to ("" = none).
struct NlTc {
  std::optional<NlTbf> tbf;
  std::string redirect_to;
  bool operator==(const NlTc&) const = default;
};

class NetlinkTables {
 public:
  static constexpr const char* kOwnedAlias = "cutover-owned";
  static constexpr uint32_t kTcHandle = 0x0c070000u;  // our root qdiscs: "c07:"
  static constexpr uint16_t kTcPrio = 0x0c07;         // our ingress filters
  virtual ~NetlinkTables() = default;
  virtual std::vector<NlLink> links() = 0;
  // VXLAN FDB entries with a remote (NDA_DST) on the given devices.
  virtual std::vector<NlFdb> fdb(const std::vector<std::string>& devs) = 0;
  virtual void add_bridge(const std::string& name, int mtu) = 0;
  virtual void add_vxlan(const std::string& name, uint32_t vni, const IpAddress& local,
                         uint16_t dstport) = 0;
  virtual void del_link(const std::string& name) = 0;
  virtual void set_master(const std::string& name, const std::string& master) = 0;  // "" = none
  virtual void set_up(const std::string& name) = 0;
  virtual void fdb_add(const NlFdb& e) = 0;  // appends: several remotes per MAC are allowed
  virtual void fdb_del(const NlFdb& e) = 0;
  // Static bridge FDB entries ("bridge fdb replace MAC dev PORT master static") on these ports:
  // a local VM's MAC pinned to its tap, so the bridge never sends its frames elsewhere because
  // it once learned the MAC behind the VXLAN port (the VM ran on another host then).
  virtual std::vector<std::pair<std::string, MacAddress>> pins(
      const std::vector<std::string>& ports) = 0;
  virtual void pin(const std::string& port, const MacAddress& mac) = 0;  // replaces a learned one

  // Rate limits (tc). What we own on these devices (others' qdiscs and filters are not ours:
  // absent here and never touched).
  virtual std::map<std::string, NlTc> tc(const std::vector<std::string>& devs) = 0;
  // Our tbf as the device's root qdisc (replacing whatever root it had), or, with nullopt, our
  // root qdisc removed (the device falls back to its default).
  virtual void set_tbf(const std::string& dev, const std::optional<NlTbf>& tbf) = 0;
  // The device's ingress (an ingress qdisc, added if missing) redirected to `to` by our u32
  // match-all filter with a mirred action; "" removes our filter only.
  virtual void set_redirect(const std::string& dev, const std::string& to) = 0;
  // An ifb device of ours (marked like our other devices), up.
  virtual void add_ifb(const std::string& name) = 0;
  // The stateful firewall: our nftables table replaced by `ruleset` (overlay/linux_firewall),
  // or removed when it is "". Returns whether anything changed: the same ruleset, still in
  // place, changes nothing. A ruleset also needs bridged IP traffic to pass netfilter.
  virtual bool set_firewall(const std::string& ruleset) = 0;
};

}  // namespace cutover::agent
