// OvsFlowSwitch: FlowSwitch over libopenvswitch's vconn (through ovs_shim.h), OpenFlow 1.4 to the
// bridge's management socket. Connects lazily and reconnects once on a failed call. Must only be
// used from the OVS thread (OvsDataplane).
#pragma once

#include <string>

#include "flow_switch.hpp"

struct cov_of;

namespace cutover::agent {

class OvsFlowSwitch : public FlowSwitch {
 public:
  explicit OvsFlowSwitch(std::string target) : target_(std::move(target)) {}
  ~OvsFlowSwitch() override;
  OvsFlowSwitch(const OvsFlowSwitch&) = delete;
  OvsFlowSwitch& operator=(const OvsFlowSwitch&) = delete;

  FlowEntry normalize(const std::string& flow, bool canonical = true) override;
  std::vector<FlowEntry> dump(uint64_t cookie) override;
  void bundle(const std::vector<FlowMod>& mods, uint64_t cookie) override;
  void packet_out(int64_t in_port, const std::vector<uint8_t>& frame) override;
  std::vector<Meter> meters() override;
  void set_meter(const Meter& m, bool modify) override;
  void del_meter(uint32_t id) override;

 private:
  cov_of* connection();
  void disconnect();

  std::string target_;
  cov_of* of_ = nullptr;
};

}  // namespace cutover::agent
