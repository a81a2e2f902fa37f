// FakeOvsdbSwitch: an in-memory Bridge/Port/Interface view. add_port assigns the next ofport and
// link up at once, or - with defer_ofports - only when the test calls assign_ofports(), as the
// real switch does a little after the transaction; del_port refuses ports not tagged
// cutover-owned, as the real one does.
#pragma once

#include <algorithm>
#include <set>
#include <stdexcept>

#include "ovsdb_switch.hpp"

namespace cutover::testing {

class FakeOvsdbSwitch : public agent::OvsdbSwitch {
 public:
  std::vector<agent::OvsInterface> interfaces() override { return ifaces; }

  void ensure_bridge(const std::string& bridge, const std::string&) override {
    bridges.insert(bridge);
  }

  void add_port(const std::string& bridge, const std::string& name, const std::string& type,
                const std::map<std::string, std::string>& options) override {
    if (!bridges.count(bridge)) throw std::runtime_error("no bridge " + bridge);
    agent::OvsInterface i;
    i.name = name;
    i.type = type;
    i.bridge = bridge;
    if (auto it = options.find("remote_ip"); it != options.end()) {
      i.remote_ip = IpAddress::parse(it->second);
    }
    i.ofport = defer_ofports ? -1 : next_ofport++;
    i.link_up = true;
    i.owned = true;
    ifaces.push_back(i);
    ++port_adds;
  }

  void del_port(const std::string& bridge, const std::string& name) override {
    auto it = std::find_if(ifaces.begin(), ifaces.end(),
                           [&](const auto& i) { return i.bridge == bridge && i.name == name; });
    if (it == ifaces.end()) return;
    if (!it->owned) throw std::runtime_error("port " + name + " is not owned by cutover");
    ifaces.erase(it);
    ++port_dels;
  }

  void set_port_qos(const std::string& name, int64_t max_rate_bps, int64_t burst_bits) override {
    auto it =
        std::find_if(ifaces.begin(), ifaces.end(), [&](const auto& i) { return i.name == name; });
    if (it == ifaces.end()) throw std::runtime_error("port " + name + " does not exist");
    if (it->qos_max_rate == agent::OvsInterface::kForeignQos) {
      throw std::runtime_error("port " + name + " has a QoS that is not cutover's");
    }
    it->qos_max_rate = max_rate_bps > 0 ? max_rate_bps : agent::OvsInterface::kNoQos;
    it->qos_burst = max_rate_bps > 0 ? burst_bits : 0;
    ++qos_sets;
  }

  size_t gc_qos() override { return 0; }  // our rows live on the interfaces here: none orphaned

  // A VM tap as libvirt would add it: iface-id set, not ours.
  void add_vm(const std::string& name, const std::string& iface_id, int64_t ofport,
              const std::string& bridge = "br-int") {
    agent::OvsInterface i;
    i.name = name;
    i.type = "";
    i.bridge = bridge;
    i.iface_id = iface_id;
    i.ofport = ofport;
    i.link_up = true;
    ifaces.push_back(i);
  }

  // As ovs-vswitchd does some time after the transaction: ports added while defer_ofports was
  // set get their ofport now.
  void assign_ofports() {
    for (auto& i : ifaces) {
      if (i.ofport < 0) i.ofport = next_ofport++;
    }
  }

  // Set: new ports get no ofport until assign_ofports() (OVSDB commits the row at once, the
  // switch assigns the OpenFlow port number later).
  bool defer_ofports = false;
  std::set<std::string> bridges;
  std::vector<agent::OvsInterface> ifaces;
  int64_t next_ofport = 100;
  int port_adds = 0, port_dels = 0, qos_sets = 0;
};

}  // namespace cutover::testing
