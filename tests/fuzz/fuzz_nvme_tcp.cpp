// libFuzzer target: the NVMe/TCP PDU framing and parsers of the storage path probe (bytes from a
// storage target on the network). Any input must frame and parse or throw ProtocolError - never
// crash, read out of bounds or throw anything else.
#include <cstddef>
#include <cstdint>
#include <span>

#include "nvme_tcp.hpp"

using namespace cutover::nvme;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  PduReader reader;
  // Feed in two chunks at a data-dependent split, as a socket would deliver them.
  const size_t split = size ? data[0] % (size + 1) : 0;
  reader.feed(in.first(split));
  try {
    while (auto pdu = reader.next()) (void)pdu;
  } catch (const ProtocolError&) {
  }
  reader.feed(in.subspan(split));
  try {
    while (auto pdu = reader.next()) {
      try {
        switch (static_cast<PduType>((*pdu)[0])) {
          case PduType::ic_resp:
            (void)parse_ic_resp(*pdu);
            break;
          case PduType::capsule_resp:
            (void)parse_capsule_resp(*pdu);
            break;
          case PduType::c2h_data:
            (void)parse_c2h_data(*pdu);
            break;
          case PduType::c2h_term_req:
            (void)parse_c2h_term_req(*pdu);
            break;
          default:
            break;
        }
      } catch (const ProtocolError&) {
      }
    }
  } catch (const ProtocolError&) {
  }
  try {
    (void)parse_ana_log(in);
  } catch (const ProtocolError&) {
  }
  (void)parse_namespace_list(in);
  if (size >= 4096) {
    (void)parse_identify_controller(in.first(4096));
    (void)parse_identify_namespace(in.first(4096));
  }
  return 0;
}
