// OvsdbIdlSwitch: OvsdbSwitch over libopenvswitch's OVSDB IDL (through ovs_shim.h). Does not own
// the IDL: OvsDataplane runs the IDL loop and hands the handle in. OVS thread only.
#pragma once

#include "ovsdb_switch.hpp"

struct cov_db;

namespace cutover::agent {

class OvsdbIdlSwitch : public OvsdbSwitch {
 public:
  explicit OvsdbIdlSwitch(cov_db* db) : db_(db) {}

  std::vector<OvsInterface> interfaces() override;
  void ensure_bridge(const std::string& bridge, const std::string& datapath_type) override;
  void add_port(const std::string& bridge, const std::string& name, const std::string& type,
                const std::map<std::string, std::string>& options) override;
  void del_port(const std::string& bridge, const std::string& name) override;
  void set_port_qos(const std::string& name, int64_t max_rate_bps, int64_t burst_bits) override;
  size_t gc_qos() override;

 private:
  cov_db* db_;
};

}  // namespace cutover::agent
