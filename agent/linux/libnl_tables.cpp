// LibnlTables implementation (libnl-route-3).
#include "libnl_tables.hpp"

#include <linux/if_bridge.h>
#include <linux/if_ether.h>
#include <linux/neighbour.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "linux_firewall.hpp"
#include "logging.hpp"

namespace cutover::agent {

namespace {

// Owning pointers to libnl objects, each released by its own put/free.
template <typename T, void (*Release)(T*)>
struct Released {
  void operator()(T* p) const { Release(p); }
};
template <typename T, void (*Release)(T*)>
using NlPtr = std::unique_ptr<T, Released<T, Release>>;
using LinkPtr = NlPtr<rtnl_link, rtnl_link_put>;
using NeighPtr = NlPtr<rtnl_neigh, rtnl_neigh_put>;
using AddrPtr = NlPtr<nl_addr, nl_addr_put>;
using CachePtr = NlPtr<nl_cache, nl_cache_free>;
using QdiscPtr = NlPtr<rtnl_qdisc, rtnl_qdisc_put>;
using ClsPtr = NlPtr<rtnl_cls, rtnl_cls_put>;
using ActPtr = NlPtr<rtnl_act, rtnl_act_put>;

constexpr uint32_t kIngressParent = 0xffff0000u;  // "ffff:", where ingress filters hang

void check(int err, const std::string& what) {
  if (err < 0) throw std::runtime_error(what + ": " + nl_geterror(err));
}

AddrPtr to_nl(const IpAddress& ip) {
  return AddrPtr(
      nl_addr_build(ip.is_v4() ? AF_INET : AF_INET6, ip.bytes().data(), ip.is_v4() ? 4 : 16));
}

AddrPtr to_nl(const MacAddress& mac) {
  return AddrPtr(nl_addr_build(AF_LLC, mac.bytes().data(), 6));
}

std::optional<IpAddress> from_nl(nl_addr* a) {
  if (!a) return std::nullopt;
  const auto* bytes = static_cast<const uint8_t*>(nl_addr_get_binary_addr(a));
  if (nl_addr_get_family(a) == AF_INET && nl_addr_get_len(a) == 4) {
    uint32_t v;
    std::memcpy(&v, bytes, 4);
    return IpAddress::v4(ntohl(v));
  }
  if (nl_addr_get_family(a) == AF_INET6 && nl_addr_get_len(a) == 16) {
    char buf[64];
    return IpAddress::parse(nl_addr2str(a, buf, sizeof buf));
  }
  return std::nullopt;
}

std::string fdb_what(const char* verb, const NlFdb& e) {
  return std::string(verb) + " fdb " + e.mac.to_string() + " dev " + e.dev + " dst " +
         e.dst.to_string();
}

}  // namespace

LibnlTables::LibnlTables() {
  sk_ = nl_socket_alloc();
  if (!sk_) throw std::runtime_error("netlink: cannot allocate socket");
  check(nl_connect(sk_, NETLINK_ROUTE), "netlink: connect");
}

LibnlTables::~LibnlTables() { nl_socket_free(sk_); }

int LibnlTables::ifindex(const std::string& name) {
  const int idx = static_cast<int>(if_nametoindex(name.c_str()));
  if (idx == 0) throw std::runtime_error("interface " + name + " does not exist");
  return idx;
}

std::vector<NlLink> LibnlTables::links() {
  nl_cache* cache = nullptr;
  check(rtnl_link_alloc_cache(sk_, AF_UNSPEC, &cache), "netlink: dump links");
  std::map<int, std::string> names;
  for (nl_object* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
    auto* l = reinterpret_cast<rtnl_link*>(o);
    names[rtnl_link_get_ifindex(l)] = rtnl_link_get_name(l);
  }
  std::vector<NlLink> out;
  for (nl_object* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
    auto* l = reinterpret_cast<rtnl_link*>(o);
    NlLink n;
    n.name = rtnl_link_get_name(l);
    const char* type = rtnl_link_get_type(l);
    n.kind = type ? type : "";
    const int master = rtnl_link_get_master(l);
    if (master > 0 && names.count(master)) n.master = names[master];
    const char* alias = rtnl_link_get_ifalias(l);
    n.alias = alias ? alias : "";
    n.up = (rtnl_link_get_flags(l) & IFF_UP) != 0;
    if (n.kind == "vxlan") {
      uint32_t v = 0;
      if (rtnl_link_vxlan_get_id(l, &v) == 0) n.vni = v;
      nl_addr* local = nullptr;
      if (rtnl_link_vxlan_get_local(l, &local) == 0) {
        n.local = from_nl(local);
        nl_addr_put(local);
      }
      uint32_t port = 0;
      if (rtnl_link_vxlan_get_port(l, &port) == 0) n.dstport = static_cast<uint16_t>(port);
      n.learning = rtnl_link_vxlan_get_learning(l) > 0;
    }
    out.push_back(std::move(n));
  }
  nl_cache_free(cache);
  return out;
}

namespace {
// Every AF_BRIDGE neighbour (FDB entry) on one of `devs`, handed to fn with its device's name.
void dump_fdb(nl_sock* sk, const std::vector<std::string>& devs,
              const std::function<void(rtnl_neigh*, const std::string&)>& fn) {
  std::map<int, std::string> wanted;
  for (const auto& d : devs) {
    const int idx = static_cast<int>(if_nametoindex(d.c_str()));
    if (idx > 0) wanted[idx] = d;
  }
  if (wanted.empty()) return;
  ndmsg req{};
  req.ndm_family = AF_BRIDGE;
  check(nl_send_simple(sk, RTM_GETNEIGH, NLM_F_DUMP, &req, sizeof req), "netlink: dump fdb");
  struct Ctx {
    std::map<int, std::string>* wanted;
    const std::function<void(rtnl_neigh*, const std::string&)>* fn;
  } ctx{&wanted, &fn};
  nl_cb* cb = nl_cb_alloc(NL_CB_DEFAULT);
  nl_cb_set(
      cb, NL_CB_VALID, NL_CB_CUSTOM,
      [](nl_msg* msg, void* arg) -> int {
        auto* c = static_cast<Ctx*>(arg);
        rtnl_neigh* raw = nullptr;
        if (rtnl_neigh_parse(nlmsg_hdr(msg), &raw) < 0 || !raw) return NL_OK;
        NeighPtr n(raw);
        auto it = c->wanted->find(rtnl_neigh_get_ifindex(n.get()));
        if (it != c->wanted->end()) (*c->fn)(n.get(), it->second);
        return NL_OK;
      },
      &ctx);
  const int err = nl_recvmsgs(sk, cb);
  nl_cb_put(cb);
  check(err, "netlink: read fdb dump");
}

std::optional<MacAddress> mac_of(rtnl_neigh* n) {
  nl_addr* ll = rtnl_neigh_get_lladdr(n);
  if (!ll || nl_addr_get_len(ll) != 6) return std::nullopt;
  std::array<uint8_t, 6> mac{};
  std::memcpy(mac.data(), nl_addr_get_binary_addr(ll), 6);
  return MacAddress(mac);
}
}  // namespace

std::vector<NlFdb> LibnlTables::fdb(const std::vector<std::string>& devs) {
  std::vector<NlFdb> out;
  dump_fdb(sk_, devs, [&](rtnl_neigh* n, const std::string& dev) {
    auto mac = mac_of(n);
    auto dst = from_nl(rtnl_neigh_get_dst(n));
    if (mac && dst) out.push_back({dev, *mac, *dst});
  });
  return out;
}

void LibnlTables::add_bridge(const std::string& name, int mtu) {
  LinkPtr l(rtnl_link_bridge_alloc());
  rtnl_link_set_name(l.get(), name.c_str());
  rtnl_link_set_ifalias(l.get(), kOwnedAlias);
  rtnl_link_set_mtu(l.get(), static_cast<unsigned>(mtu));
  check(rtnl_link_add(sk_, l.get(), NLM_F_CREATE | NLM_F_EXCL), "add bridge " + name);
  mark_owned(name);
}

void LibnlTables::mark_owned(const std::string& name) {
  // The kernel ignores IFLA_IFALIAS when creating a link: set it with a change.
  LinkPtr orig(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), ifindex(name));
  LinkPtr change(rtnl_link_alloc());
  rtnl_link_set_ifalias(change.get(), kOwnedAlias);
  check(rtnl_link_change(sk_, orig.get(), change.get(), 0), "mark " + name + " as ours (ifalias)");
}

void LibnlTables::add_vxlan(const std::string& name, uint32_t vni, const IpAddress& local,
                            uint16_t dstport) {
  LinkPtr l(rtnl_link_vxlan_alloc());
  rtnl_link_set_name(l.get(), name.c_str());
  rtnl_link_set_ifalias(l.get(), kOwnedAlias);
  rtnl_link_vxlan_set_id(l.get(), vni);
  auto addr = to_nl(local);
  rtnl_link_vxlan_set_local(l.get(), addr.get());
  rtnl_link_vxlan_set_port(l.get(), dstport);
  rtnl_link_vxlan_set_learning(l.get(), 0);
  check(
      rtnl_link_add(sk_, l.get(), NLM_F_CREATE | NLM_F_EXCL),
      "add vxlan " + name + " (vni " + std::to_string(vni) + ", local " + local.to_string() + ")");
  mark_owned(name);
}

void LibnlTables::del_link(const std::string& name) {
  LinkPtr l(rtnl_link_alloc());
  rtnl_link_set_name(l.get(), name.c_str());
  check(rtnl_link_delete(sk_, l.get()), "delete link " + name);
}

void LibnlTables::set_master(const std::string& name, const std::string& master) {
  LinkPtr orig(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), ifindex(name));
  LinkPtr change(rtnl_link_alloc());
  rtnl_link_set_master(change.get(), master.empty() ? 0 : ifindex(master));
  check(rtnl_link_change(sk_, orig.get(), change.get(), 0),
        "set master of " + name + " to " + (master.empty() ? "none" : master));
}

void LibnlTables::set_up(const std::string& name) {
  LinkPtr orig(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), ifindex(name));
  LinkPtr change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  check(rtnl_link_change(sk_, orig.get(), change.get(), 0), "set " + name + " up");
}

// An AF_BRIDGE neighbour (VXLAN FDB entry with a remote) for add or delete.
static NeighPtr fdb_neigh(int ifindex, const NlFdb& e) {
  NeighPtr n(rtnl_neigh_alloc());
  rtnl_neigh_set_ifindex(n.get(), ifindex);
  // The destination first: libnl refuses an address whose family differs from the entry's,
  // and the entry's family must end up AF_BRIDGE.
  auto dst = to_nl(e.dst);
  check(rtnl_neigh_set_dst(n.get(), dst.get()), "fdb dst " + e.dst.to_string());
  rtnl_neigh_set_family(n.get(), AF_BRIDGE);
  auto ll = to_nl(e.mac);
  rtnl_neigh_set_lladdr(n.get(), ll.get());
  rtnl_neigh_set_flags(n.get(), NTF_SELF);
  return n;
}

void LibnlTables::fdb_add(const NlFdb& e) {
  auto n = fdb_neigh(ifindex(e.dev), e);
  rtnl_neigh_set_state(n.get(), NUD_NOARP | NUD_PERMANENT);
  check(rtnl_neigh_add(sk_, n.get(), NLM_F_CREATE | NLM_F_APPEND), fdb_what("add", e));
}

void LibnlTables::fdb_del(const NlFdb& e) {
  auto n = fdb_neigh(ifindex(e.dev), e);
  check(rtnl_neigh_delete(sk_, n.get(), 0), fdb_what("delete", e));
}

std::vector<std::pair<std::string, MacAddress>> LibnlTables::pins(
    const std::vector<std::string>& ports) {
  std::vector<std::pair<std::string, MacAddress>> out;
  dump_fdb(sk_, ports, [&](rtnl_neigh* n, const std::string& port) {
    // Static entries the bridge keeps for the port (not learned, not the port's own; the dump
    // carries the bridge as NDA_MASTER, not as a flag).
    const int state = rtnl_neigh_get_state(n);
    if (!(state & NUD_NOARP) || (state & NUD_PERMANENT)) return;
    if (auto mac = mac_of(n)) out.push_back({port, *mac});
  });
  return out;
}

void LibnlTables::pin(const std::string& port, const MacAddress& mac) {
  NeighPtr n(rtnl_neigh_alloc());
  rtnl_neigh_set_ifindex(n.get(), ifindex(port));
  rtnl_neigh_set_family(n.get(), AF_BRIDGE);
  auto ll = to_nl(mac);
  rtnl_neigh_set_lladdr(n.get(), ll.get());
  rtnl_neigh_set_flags(n.get(), NTF_MASTER);
  rtnl_neigh_set_state(n.get(), NUD_NOARP);  // static: never aged, never moved by learning
  check(rtnl_neigh_add(sk_, n.get(), NLM_F_CREATE | NLM_F_REPLACE),
        "pin " + mac.to_string() + " to " + port + " (bridge fdb replace ... master static)");
}

// ---- Rate limits (tc)

std::map<std::string, NlTc> LibnlTables::tc(const std::vector<std::string>& devs) {
  std::map<int, std::string> wanted;
  for (const auto& d : devs) {
    const int idx = static_cast<int>(if_nametoindex(d.c_str()));
    if (idx > 0) wanted[idx] = d;
  }
  std::map<std::string, NlTc> out;
  if (wanted.empty()) return out;
  nl_cache* raw = nullptr;
  check(rtnl_qdisc_alloc_cache(sk_, &raw), "netlink: dump qdiscs");
  CachePtr qdiscs(raw);
  std::vector<int> with_ingress;
  for (nl_object* o = nl_cache_get_first(qdiscs.get()); o; o = nl_cache_get_next(o)) {
    auto* q = reinterpret_cast<rtnl_qdisc*>(o);
    auto* t = TC_CAST(q);
    auto it = wanted.find(rtnl_tc_get_ifindex(t));
    const char* kind = rtnl_tc_get_kind(t);
    if (it == wanted.end() || !kind) continue;
    if (rtnl_tc_get_parent(t) == TC_H_ROOT && rtnl_tc_get_handle(t) == kTcHandle &&
        std::strcmp(kind, "tbf") == 0) {
      out[it->second].tbf = NlTbf{rtnl_qdisc_tbf_get_rate(q), rtnl_qdisc_tbf_get_rate_bucket(q)};
    } else if (std::strcmp(kind, "ingress") == 0) {
      with_ingress.push_back(it->first);
    }
  }
  for (int idx : with_ingress) {
    nl_cache* c = nullptr;
    check(rtnl_cls_alloc_cache(sk_, idx, kIngressParent, &c),
          "netlink: dump ingress filters of " + wanted[idx]);
    CachePtr filters(c);
    for (nl_object* o = nl_cache_get_first(filters.get()); o; o = nl_cache_get_next(o)) {
      auto* cls = reinterpret_cast<rtnl_cls*>(o);
      const char* kind = rtnl_tc_get_kind(TC_CAST(cls));
      if (rtnl_cls_get_prio(cls) != kTcPrio || !kind || std::strcmp(kind, "u32") != 0) continue;
      // Ours: where its mirred action sends frames ("?" when it names no device we can find,
      // which the reconciler replaces).
      std::string to = "?";
      for (rtnl_act* a = rtnl_u32_get_action(cls); a; a = rtnl_act_next(a)) {
        const char* akind = rtnl_tc_get_kind(TC_CAST(a));
        if (!akind || std::strcmp(akind, "mirred") != 0) continue;
        char name[IF_NAMESIZE] = {};
        if (if_indextoname(rtnl_mirred_get_ifindex(a), name)) to = name;
      }
      out[wanted[idx]].redirect_to = to;
    }
  }
  return out;
}

void LibnlTables::set_tbf(const std::string& dev, const std::optional<NlTbf>& tbf) {
  QdiscPtr q(rtnl_qdisc_alloc());
  auto* t = TC_CAST(q.get());
  rtnl_tc_set_ifindex(t, ifindex(dev));
  rtnl_tc_set_parent(t, TC_H_ROOT);
  rtnl_tc_set_handle(t, kTcHandle);
  check(rtnl_tc_set_kind(t, "tbf"), "tbf on " + dev);
  if (!tbf) {
    check(rtnl_qdisc_delete(sk_, q.get()), "delete our tbf root qdisc of " + dev);
    return;
  }
  rtnl_qdisc_tbf_set_rate(q.get(), static_cast<int>(tbf->rate_bytes_s),
                          static_cast<int>(tbf->burst_bytes), 0);
  // Frames wait at most 50 ms for tokens; beyond that they are dropped (TCP backs off).
  check(rtnl_qdisc_tbf_set_limit_by_latency(q.get(), 50000), "tbf limit on " + dev);
  check(rtnl_qdisc_add(sk_, q.get(), NLM_F_CREATE | NLM_F_REPLACE),
        "tbf rate " + std::to_string(tbf->rate_bytes_s) + " B/s burst " +
            std::to_string(tbf->burst_bytes) + " B on " + dev);
}

void LibnlTables::set_redirect(const std::string& dev, const std::string& to) {
  const int idx = ifindex(dev);
  auto our_filter = [&] {
    ClsPtr cls(rtnl_cls_alloc());
    auto* t = TC_CAST(cls.get());
    rtnl_tc_set_ifindex(t, idx);
    rtnl_tc_set_parent(t, kIngressParent);
    check(rtnl_tc_set_kind(t, "u32"), "u32 filter on " + dev);
    rtnl_cls_set_prio(cls.get(), kTcPrio);
    rtnl_cls_set_protocol(cls.get(), ETH_P_ALL);
    return cls;
  };
  // Ours goes first, whether it is replaced or removed (gone already is fine).
  const int err = rtnl_cls_delete(sk_, our_filter().get(), 0);
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NOADDR && err != -NLE_INVAL) {
    check(err, "delete our ingress filter of " + dev);
  }
  if (to.empty()) return;
  QdiscPtr ingress(rtnl_qdisc_alloc());
  auto* qt = TC_CAST(ingress.get());
  rtnl_tc_set_ifindex(qt, idx);
  rtnl_tc_set_parent(qt, TC_H_INGRESS);
  rtnl_tc_set_handle(qt, kIngressParent);
  check(rtnl_tc_set_kind(qt, "ingress"), "ingress qdisc on " + dev);
  const int qerr = rtnl_qdisc_add(sk_, ingress.get(), NLM_F_CREATE);
  if (qerr < 0 && qerr != -NLE_EXIST) check(qerr, "add ingress qdisc to " + dev);

  auto cls = our_filter();
  check(rtnl_u32_add_key_uint32(cls.get(), 0, 0, 0, 0), "u32 match-all on " + dev);
  check(rtnl_u32_set_cls_terminal(cls.get()), "u32 terminal on " + dev);
  ActPtr act(rtnl_act_alloc());
  check(rtnl_tc_set_kind(TC_CAST(act.get()), "mirred"), "mirred action");
  rtnl_mirred_set_action(act.get(), TCA_EGRESS_REDIR);
  rtnl_mirred_set_policy(act.get(), TC_ACT_STOLEN);
  rtnl_mirred_set_ifindex(act.get(), static_cast<uint32_t>(ifindex(to)));
  check(rtnl_u32_add_action(cls.get(), act.get()), "mirred action on " + dev);
  check(rtnl_cls_add(sk_, cls.get(), NLM_F_CREATE | NLM_F_EXCL),
        "redirect " + dev + "'s ingress to " + to + " (u32 + mirred)");
}

void LibnlTables::add_ifb(const std::string& name) {
  LinkPtr l(rtnl_link_alloc());
  check(rtnl_link_set_type(l.get(), "ifb"), "ifb link type");
  rtnl_link_set_name(l.get(), name.c_str());
  check(rtnl_link_add(sk_, l.get(), NLM_F_CREATE | NLM_F_EXCL), "add ifb " + name);
  mark_owned(name);
  set_up(name);
}

namespace {
// Bridged IPv4/IPv6 frames through the inet hooks (br_netfilter), in this network namespace.
void bridged_ip_through_netfilter() {
  for (const char* name : {"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"}) {
    const std::string path = std::string("/proc/sys/net/bridge/") + name;
    std::ifstream in(path);
    std::string value;
    if (!(in >> value)) {
      throw std::runtime_error("stateful firewall: cannot read " + path +
                               " (is br_netfilter loaded? modprobe br_netfilter)");
    }
    if (value == "1") continue;
    std::ofstream out(path);
    if (!(out << "1\n") || !out.flush()) {
      throw std::runtime_error("stateful firewall: cannot set " + path + " to 1");
    }
    logger("linux")->info(
        "bridged IP traffic now passes netfilter (net.bridge.{}=1), as the stateful firewall of "
        "its ports needs",
        name);
  }
}
}  // namespace

bool LibnlTables::set_firewall(const std::string& ruleset) {
  if (!nft_) {
    nft_ = {nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free};
    if (!nft_) throw std::runtime_error("stateful firewall: cannot open libnftables");
    nft_ctx_buffer_output(nft_.get());
    nft_ctx_buffer_error(nft_.get());
  }
  auto run = [&](const std::string& cmd) {
    return nft_run_cmd_from_buffer(nft_.get(), cmd.c_str()) == 0;
  };
  // The tag of the table in place (nullopt: there is none). Read back each pass, so that a
  // table someone flushed or replaced is put back, and one an earlier run of the agent
  // installed is adopted as it is.
  auto installed = [&]() -> std::optional<std::string> {
    if (!run("list table inet cutover")) return std::nullopt;
    return overlay::linux_firewall_tag_of(nft_ctx_get_output_buffer(nft_.get()));
  };
  if (ruleset.empty()) {
    if (firewall_ && firewall_->empty()) return false;
    if (!installed()) {
      firewall_ = "";
      return false;
    }
  } else if (installed() == overlay::linux_firewall_tag_of(ruleset)) {
    bridged_ip_through_netfilter();
    firewall_ = ruleset;
    return false;
  }
  if (!ruleset.empty()) bridged_ip_through_netfilter();
  if (!run(overlay::linux_firewall_transaction(ruleset))) {
    firewall_.reset();
    std::string why = nft_ctx_get_error_buffer(nft_.get());
    while (!why.empty() && why.back() == '\n') why.pop_back();
    throw std::runtime_error("stateful firewall: nftables refused the table: " + why);
  }
  firewall_ = ruleset;
  return true;
}

}  // namespace cutover::agent
