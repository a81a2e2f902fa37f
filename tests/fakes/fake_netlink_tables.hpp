// FakeNetlinkTables: in-memory links and VXLAN FDB that behave like the kernel where the Linux
// reconciler cares: names are unique, a device must exist to be enslaved or get FDB entries,
// deleting a device drops its FDB entries, qdiscs and filters and releases its ports, a redirect
// needs its target, and ops can be made to fail.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "netlink_tables.hpp"

namespace cutover::testing {

class FakeNetlinkTables : public agent::NetlinkTables {
 public:
  std::vector<agent::NlLink> links() override { return links_; }

  std::vector<agent::NlFdb> fdb(const std::vector<std::string>& devs) override {
    std::vector<agent::NlFdb> out;
    for (const auto& e : fdb_) {
      if (std::find(devs.begin(), devs.end(), e.dev) != devs.end()) out.push_back(e);
    }
    return out;
  }
  void add_bridge(const std::string& name, int) override {
    add({name, "bridge", "", kOwnedAlias, false, 0, std::nullopt, 0, false});
  }
  void add_vxlan(const std::string& name, uint32_t vni, const IpAddress& local,
                 uint16_t dstport) override {
    add({name, "vxlan", "", kOwnedAlias, false, vni, local, dstport, false});
  }
  void del_link(const std::string& name) override {
    op("delete link " + name);
    find(name);
    std::erase_if(links_, [&](const agent::NlLink& l) { return l.name == name; });
    tc_.erase(name);  // a device's qdiscs and filters go with it
    std::erase_if(fdb_, [&](const agent::NlFdb& e) { return e.dev == name; });
    for (auto& l : links_) {
      if (l.master == name) l.master.clear();
    }
  }
  void set_master(const std::string& name, const std::string& master) override {
    op("set master " + name);
    if (!master.empty()) find(master);
    auto& l = find(name);
    if (l.master != master) {  // a port leaving its bridge loses its entries there
      std::erase_if(pins_, [&](const auto& p) { return p.first == name; });
    }
    l.master = master;
  }
  void set_up(const std::string& name) override {
    op("set up " + name);
    find(name).up = true;
  }
  void fdb_add(const agent::NlFdb& e) override {
    op("add fdb");
    find(e.dev);
    // Like the kernel's VXLAN: a unicast MAC keeps its one remote; appending is silently ignored
    // (only the all-zeros and multicast entries take several).
    if (!e.mac.is_zero() && !e.mac.is_multicast()) {
      for (const auto& have : fdb_) {
        if (have.dev == e.dev && have.mac == e.mac) return;
      }
    }
    fdb_.insert(e);
    ++fdb_adds;
  }
  void fdb_del(const agent::NlFdb& e) override {
    op("del fdb");
    if (!fdb_.erase(e)) throw std::runtime_error("delete fdb: No such file or directory");
  }

  std::vector<std::pair<std::string, MacAddress>> pins(
      const std::vector<std::string>& ports) override {
    std::vector<std::pair<std::string, MacAddress>> out;
    for (const auto& p : pins_) {
      if (std::find(ports.begin(), ports.end(), p.first) != ports.end()) out.push_back(p);
    }
    return out;
  }
  void pin(const std::string& port, const MacAddress& mac) override {
    op("pin " + port);
    if (find(port).master.empty()) throw std::runtime_error(port + " is on no bridge");
    pins_.insert({port, mac});
  }

  std::map<std::string, agent::NlTc> tc(const std::vector<std::string>& devs) override {
    std::map<std::string, agent::NlTc> out;
    for (const auto& d : devs) {
      auto it = tc_.find(d);
      if (it != tc_.end() && !(it->second == agent::NlTc{})) out[d] = it->second;
    }
    return out;
  }
  void set_tbf(const std::string& dev, const std::optional<agent::NlTbf>& tbf) override {
    op("tbf " + dev);
    find(dev);
    if (!tbf && !tc_[dev].tbf) throw std::runtime_error("delete qdisc: No such file or directory");
    tc_[dev].tbf = tbf;
  }
  void set_redirect(const std::string& dev, const std::string& to) override {
    op("redirect " + dev);
    find(dev);
    if (!to.empty()) find(to);
    tc_[dev].redirect_to = to;
  }
  void add_ifb(const std::string& name) override {
    add({name, "ifb", "", kOwnedAlias, true, 0, std::nullopt, 0, false});
  }
  bool set_firewall(const std::string& ruleset) override {
    if (ruleset == firewall) return false;
    op(ruleset.empty() ? "delete firewall" : "set firewall");
    firewall = ruleset;
    return true;
  }
  std::string firewall;  // the nftables ruleset installed

  // A VM tap as the hypervisor creates it.
  void add_tap(const std::string& name, const std::string& alias = "") {
    links_.push_back({name, "tun", "", alias, true, 0, std::nullopt, 0, false});
  }
  agent::NlLink& find(const std::string& name) {
    for (auto& l : links_) {
      if (l.name == name) return l;
    }
    throw std::runtime_error("interface " + name + " does not exist");
  }
  bool has(const std::string& name) const {
    return std::any_of(links_.begin(), links_.end(), [&](const auto& l) { return l.name == name; });
  }

  std::vector<agent::NlLink> links_;
  std::set<agent::NlFdb> fdb_;
  std::set<std::pair<std::string, MacAddress>> pins_;
  std::map<std::string, agent::NlTc> tc_;
  int fdb_adds = 0;
  int ops = 0;
  int fail_at_op = -1;  // the Nth mutating op throws (as the kernel would refuse it)

 private:
  void add(agent::NlLink l) {
    op("add link " + l.name);
    if (has(l.name)) throw std::runtime_error("add link " + l.name + ": File exists");
    links_.push_back(std::move(l));
  }
  void op(const std::string& what) {
    if (ops++ == fail_at_op) throw std::runtime_error(what + ": Operation not permitted");
  }
};

}  // namespace cutover::testing
