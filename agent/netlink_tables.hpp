// NetlinkTables: the seam between the Linux reconciler and the kernel's link and bridge-FDB
// tables. Real: LibnlTables (libnl-route). Tests: FakeNetlinkTables. Everything throws
// std::runtime_error naming the object and the kernel's reason.
#pragma once

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

class NetlinkTables {
 public:
  static constexpr const char* kOwnedAlias = "cutover-owned";
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
};

}  // namespace cutover::agent
