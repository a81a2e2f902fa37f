// LibnlTables: NetlinkTables on libnl-route-3 (rtnetlink). Our devices are created with ifalias
// "cutover-owned"; FDB entries are NTF_SELF static entries on our VXLAN devices; rate limits are
// tbf root qdiscs with handle c07: and u32 ingress filters at prio 0xc07 (mirred to our ifb); the
// stateful firewall is the nftables table "inet cutover", through libnftables. Not
// thread-safe: used from LinuxDataplane's thread only.
#pragma once

#include "netlink_tables.hpp"

#include <memory>
#include <optional>
#include <string>

struct nl_sock;
struct nft_ctx;

namespace cutover::agent {

class LibnlTables : public NetlinkTables {
 public:
  LibnlTables();  // throws if the netlink socket cannot be opened
  ~LibnlTables() override;
  LibnlTables(const LibnlTables&) = delete;
  LibnlTables& operator=(const LibnlTables&) = delete;

  std::vector<NlLink> links() override;
  std::vector<NlFdb> fdb(const std::vector<std::string>& devs) override;
  void add_bridge(const std::string& name, int mtu) override;
  void add_vxlan(const std::string& name, uint32_t vni, const IpAddress& local,
                 uint16_t dstport) override;
  void del_link(const std::string& name) override;
  void set_master(const std::string& name, const std::string& master) override;
  void set_up(const std::string& name) override;
  void fdb_add(const NlFdb& e) override;
  void fdb_del(const NlFdb& e) override;
  std::vector<std::pair<std::string, MacAddress>> pins(
      const std::vector<std::string>& ports) override;
  void pin(const std::string& port, const MacAddress& mac) override;
  std::map<std::string, NlTc> tc(const std::vector<std::string>& devs) override;
  void set_tbf(const std::string& dev, const std::optional<NlTbf>& tbf) override;
  void set_redirect(const std::string& dev, const std::string& to) override;
  void add_ifb(const std::string& name) override;
  bool set_firewall(const std::string& ruleset) override;

 private:
  int ifindex(const std::string& name);
  void mark_owned(const std::string& name);
  nl_sock* sk_ = nullptr;
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> nft_{nullptr, nullptr};
  std::optional<std::string> firewall_;  // what set_firewall() last installed
};

}  // namespace cutover::agent
