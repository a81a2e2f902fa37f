// OvsdbSwitch: the seam between the OVS reconciler and the Open_vSwitch database (bridges, ports,
// interfaces). Real: OvsdbIdlSwitch (libopenvswitch IDL on the OVS thread). Tests: a fake.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ip_address.hpp"

namespace cutover::agent {

struct OvsInterface {
  std::string name;
  std::string type;
  std::string bridge;
  std::string iface_id;  // external_ids:iface-id ("" if none)
  std::optional<IpAddress> remote_ip;
  int64_t ofport = -1;
  bool link_up = false;
  bool owned = false;  // external_ids:cutover-owned=true
  bool operator==(const OvsInterface&) const = default;
};

class OvsdbSwitch {
 public:
  virtual ~OvsdbSwitch() = default;
  virtual std::vector<OvsInterface> interfaces() = 0;
  // All throw std::runtime_error with OVSDB's reason on failure.
  virtual void ensure_bridge(const std::string& bridge, const std::string& datapath_type) = 0;
  virtual void add_port(const std::string& bridge, const std::string& name, const std::string& type,
                        const std::map<std::string, std::string>& options) = 0;
  virtual void del_port(const std::string& bridge, const std::string& name) = 0;
};

}  // namespace cutover::agent
