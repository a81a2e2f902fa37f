// nftables text for the Linux backend's stateful firewall (see linux_firewall.hpp).
#include "linux_firewall.hpp"

#include <cstdio>
#include <set>

#include "linux_plan.hpp"

namespace cutover::overlay {

namespace {
constexpr const char* kTable = "inet cutover";

// A carried connection's 5-tuple as the destination sees its remote side's packets arrive.
std::string carried_match(const CarriedConn& c) {
  const std::string ip = c.local_ip.is_v4() ? "ip" : "ip6";
  return ip + " saddr " + c.remote_ip.to_string() + " " + ip + " daddr " + c.local_ip.to_string() +
         " " + c.protocol + " sport " + std::to_string(c.remote_port) + " " + c.protocol +
         " dport " + std::to_string(c.local_port);
}

std::string allow_match(const IngressRule& r) {
  if (r.protocol == "icmp") return "meta l4proto { icmp, ipv6-icmp }";
  if (r.port == 0) return "meta l4proto " + r.protocol;
  return r.protocol + " dport " + std::to_string(r.port);
}
}  // namespace

uint16_t linux_ct_zone(uint32_t vni) { return static_cast<uint16_t>(1 + (vni - 1) % 65535); }

LinuxFirewall plan_linux_firewall(const Topology& topo) {
  LinuxFirewall out;
  std::string filter, chains;
  for (const auto& [vni, view] : topo.networks) {
    for (const auto& port : view.local_ports) {
      if (!port.ingress_allow) continue;
      out.ct_zones[port.id.str()] = linux_ct_zone(vni);
      const std::string chain = "port_" + std::to_string(out.ports++);
      filter += "\t\tether daddr " + port.mac.to_string() + " jump " + chain + "\n";
      chains += "\tchain " + chain + " {\n";
      chains += "\t\tct state established,related accept\n";
      chains += "\t\tct state invalid drop\n";
      chains += "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n";
      std::set<std::string> seen;  // duplicate rules / connections yield one line
      for (const auto& r : *port.ingress_allow) {
        const auto m = allow_match(r);
        if (seen.insert(m).second) chains += "\t\tct state new " + m + " accept\n";
      }
      for (const auto& c : port.carried_conns) {
        const auto m = carried_match(c);
        if (seen.insert(m).second) chains += "\t\tct state new " + m + " accept\n";
      }
      chains += "\t\tdrop\n\t}\n";
    }
  }
  if (out.ports == 0) return out;
  std::string zones;
  for (const auto& [vni, view] : topo.networks) {
    zones += "\t\tiifname \"" + linux_bridge_name(vni) + "\" ct zone set " +
             std::to_string(linux_ct_zone(vni)) + "\n";
  }
  std::string body =
      "\tchain zones {\n\t\ttype filter hook prerouting priority raw; policy accept;\n" + zones +
      "\t}\n" + "\tchain to_vms {\n\t\ttype filter hook forward priority filter; policy accept;\n" +
      filter + "\t}\n" + chains;
  out.ruleset = std::string("table ") + kTable + " {\n\tcomment \"" + linux_firewall_tag(body) +
                "\"\n" + body + "}\n";
  return out;
}

std::string linux_firewall_tag(const std::string& body) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a, 64 bits
  for (unsigned char c : body) h = (h ^ c) * 1099511628211ull;
  char buf[40];
  std::snprintf(buf, sizeof buf, "cutover %016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string linux_firewall_tag_of(const std::string& ruleset) {
  const auto at = ruleset.find("comment \"cutover ");
  if (at == std::string::npos) return "";
  const auto start = at + 9, end = ruleset.find('"', start);
  return end == std::string::npos ? "" : ruleset.substr(start, end - start);
}

std::string linux_firewall_transaction(const std::string& ruleset) {
  // "add" makes the delete safe when the table is absent; all three commit together.
  return std::string("add table ") + kTable + "\ndelete table " + kTable + "\n" + ruleset;
}

}  // namespace cutover::overlay
