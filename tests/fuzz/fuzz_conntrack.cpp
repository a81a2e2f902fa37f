// libFuzzer target: the parsers of conntrack dumps (OVS's dpctl text, and the Linux kernel's
// /proc/net/nf_conntrack), which decide which connections a migrating VM takes along. Any input
// must parse without crashing or throwing, in either format;
// every entry it accepts must have valid ports, and the connections chosen from it must be
// addressed to the given local IPs and fit the carried-connections limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "conntrack.hpp"

namespace {
void check(const cutover::overlay::ConntrackDump& dump, int zone) {
  for (const auto& e : dump.entries) {
    if (e.sport < 0 || e.sport > 65535 || e.dport < 0 || e.dport > 65535) std::abort();
    if (zone >= 0 && e.zone != zone) std::abort();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check(cutover::overlay::parse_proc_conntrack(text, 100), 100);
  const auto dump = cutover::overlay::parse_conntrack_dump(text);
  check(dump, -1);
  const std::vector<cutover::IpAddress> local = {cutover::IpAddress::parse("10.0.0.5"),
                                                 cutover::IpAddress::parse("2001:db8::5")};
  const auto conns = cutover::overlay::connections_to_carry(dump.entries, local);
  if (conns.size() > cutover::kMaxCarriedConns) std::abort();
  for (const auto& c : conns) {
    if (c.local_ip != local[0] && c.local_ip != local[1]) std::abort();
    if (c.local_port <= 0 || c.remote_port <= 0) std::abort();
  }
  return 0;
}
