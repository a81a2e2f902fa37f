// libFuzzer target: reading a libvirt domain's XML (domain_interfaces, what the libvirt watcher,
// the migrator, the qemu hook and the inventory take interfaces from). Any input must yield
// interfaces with non-empty iface-ids and bounded values, or throw ParseError naming "xml" -
// never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "libvirt/domain_xml.hpp"
#include "parse_error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string xml(reinterpret_cast<const char*>(data), size);
  try {
    const auto ifaces = cutover::agent::domain_interfaces(xml);
    if (ifaces.size() > cutover::agent::kMaxDomainInterfaces) std::abort();
    for (const auto& i : ifaces) {
      if (i.iface_id.empty()) std::abort();
      for (const auto* v : {&i.iface_id, &i.mac, &i.libvirt_network, &i.portgroup, &i.network}) {
        if (v->size() > 255) std::abort();
      }
    }
  } catch (const cutover::ParseError& e) {
    if (e.field() != "xml") std::abort();
  }
  return 0;
}
