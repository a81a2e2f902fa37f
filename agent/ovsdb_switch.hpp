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
  // Its port's QoS: kNoQos, kForeignQos (not ours), or our linux-htb max-rate in bit/s (with
  // queue 0's burst in bits).
  int64_t qos_max_rate = kNoQos;
  int64_t qos_burst = 0;
  static constexpr int64_t kNoQos = -1;
  static constexpr int64_t kForeignQos = -2;
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
  // Shapes what OVS sends out of port `name` (our linux-htb QoS row, bit/s and bits); 0 removes
  // ours. Refuses a port whose QoS is not ours.
  virtual void set_port_qos(const std::string& name, int64_t max_rate_bps, int64_t burst_bits) = 0;
  // Deletes our QoS rows no port uses any more (their port was deleted with the VM's tap);
  // returns how many.
  virtual size_t gc_qos() = 0;
};

}  // namespace cutover::agent
