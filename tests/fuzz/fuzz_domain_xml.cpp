// libFuzzer target: reading a libvirt domain's XML (domain_interface_ids, what the libvirt
// watcher, the migrator and the qemu hook take interface ids from). Any input must yield a set of
// non-empty ids or throw ParseError naming "xml" - never crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "libvirt/domain_xml.hpp"
#include "parse_error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto ids = cutover::agent::domain_interface_ids(
        std::string(reinterpret_cast<const char*>(data), size));
    for (const auto& id : ids) {
      if (id.empty()) std::abort();
    }
  } catch (const cutover::ParseError& e) {
    if (e.field() != "xml") std::abort();
  }
  return 0;
}
