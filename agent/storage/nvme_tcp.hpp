// NVMe/TCP (NVMe over Fabrics TCP transport binding) wire format, the pure part of the storage
// path probe: PDU framing of a byte stream, encoders for the few host PDUs the probe sends
// (ICReq, command capsules for Fabrics Connect / Property Get/Set, Identify, Get Log Page) and
// strict parsers for what a target sends back (ICResp, response capsules, C2HData, C2HTermReq),
// plus the Identify controller/namespace and ANA log page layouts. No I/O. Every parser rejects
// malformed input with ProtocolError naming the field; nothing here trusts a length it read.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace cutover::nvme {

using Bytes = std::vector<uint8_t>;

struct ProtocolError : std::runtime_error {
  ProtocolError(const std::string& field, const std::string& what)
      : std::runtime_error(field + ": " + what), field(field) {}
  std::string field;
};

enum class PduType : uint8_t {
  ic_req = 0x00,
  ic_resp = 0x01,
  h2c_term_req = 0x02,
  c2h_term_req = 0x03,
  capsule_cmd = 0x04,
  capsule_resp = 0x05,
  h2c_data = 0x06,
  c2h_data = 0x07,
  r2t = 0x09,
};

constexpr size_t kCommonHeaderLen = 8;
constexpr uint32_t kMaxPduLen = 1u << 20;  // far above anything the probe asks for

struct CommonHeader {
  PduType type;
  uint8_t flags = 0;
  uint8_t hlen = 0;
  uint8_t pdo = 0;
  uint32_t plen = 0;
};

// Validates type, hlen (fixed per type), pdo and plen (hlen <= plen <= kMaxPduLen).
CommonHeader parse_common_header(std::span<const uint8_t> bytes);

// Splits a byte stream into PDUs. feed() appends; next() returns a complete PDU or nothing yet.
class PduReader {
 public:
  void feed(std::span<const uint8_t> bytes);
  std::optional<Bytes> next();  // throws ProtocolError on a bad header
  size_t buffered() const { return buf_.size(); }

 private:
  Bytes buf_;
};

// ---- host -> controller ----
Bytes encode_ic_req();

// A 64-byte submission queue entry.
using Sqe = std::array<uint8_t, 64>;
// Command capsule: common header + SQE + in-capsule data (if any).
Bytes encode_capsule_cmd(const Sqe& sqe, std::span<const uint8_t> in_capsule = {});

// Fabrics Connect (admin queue: qid 0) with its 1024 bytes of data in the capsule.
Sqe connect_sqe(uint16_t cid, uint16_t qid, uint16_t sqsize, uint32_t kato_ms);
Bytes connect_data(const std::array<uint8_t, 16>& host_id, const std::string& subsystem_nqn,
                   const std::string& host_nqn, uint16_t cntlid = 0xffff);
// Fabrics Property Set / Get (controller registers: CC at 0x14, CSTS at 0x1c, CAP at 0x0).
Sqe property_set_sqe(uint16_t cid, uint32_t offset, uint64_t value, bool eight_bytes);
Sqe property_get_sqe(uint16_t cid, uint32_t offset, bool eight_bytes);
// Identify (CNS 0x01 controller, 0x00 namespace, 0x02 active namespace list), 4096 bytes C2H.
Sqe identify_sqe(uint16_t cid, uint8_t cns, uint32_t nsid);
// Get Log Page of `length` bytes (a multiple of 4) from offset 0.
Sqe get_log_page_sqe(uint16_t cid, uint8_t log_id, uint32_t length, uint32_t nsid = 0xffffffff);
// Keep Alive.
Sqe keep_alive_sqe(uint16_t cid);

constexpr uint32_t kRegCap = 0x00, kRegCc = 0x14, kRegCsts = 0x1c;
// CC with EN=1, 64-byte SQ entries, 16-byte CQ entries, NVM command set, 4 KiB pages.
constexpr uint64_t kCcEnable = 0x00460001;
constexpr uint8_t kLogAna = 0x0c;

// ---- controller -> host ----
struct IcResp {
  uint16_t pfv = 0;
  uint8_t cpda = 0;
  uint8_t dgst = 0;
  uint32_t maxh2cdata = 0;
};
IcResp parse_ic_resp(std::span<const uint8_t> pdu);

struct Cqe {
  uint32_t dw0 = 0, dw1 = 0;
  uint16_t sqhd = 0, sqid = 0, cid = 0, status = 0;  // status without the phase bit
  uint8_t sct() const { return static_cast<uint8_t>((status >> 8) & 0x7); }
  uint8_t sc() const { return static_cast<uint8_t>(status & 0xff); }
  bool ok() const { return sct() == 0 && sc() == 0; }
};
Cqe parse_capsule_resp(std::span<const uint8_t> pdu);

struct C2HData {
  uint16_t cccid = 0;
  uint32_t offset = 0;
  bool last = false;
  bool success = false;  // no response capsule follows
  Bytes data;
};
C2HData parse_c2h_data(std::span<const uint8_t> pdu);

struct TermReq {
  uint16_t fes = 0;  // fatal error status
  uint32_t fei = 0;  // fatal error information
};
TermReq parse_c2h_term_req(std::span<const uint8_t> pdu);

// ---- data structures ----
struct ControllerInfo {
  std::string serial, model, firmware, subsystem_nqn;
  uint16_t cntlid = 0;
  uint32_t namespaces = 0;     // NN
  bool ana_reporting = false;  // CMIC bit 3
};
ControllerInfo parse_identify_controller(std::span<const uint8_t> data);  // 4096 bytes

struct NamespaceInfo {
  uint64_t size_blocks = 0;
  std::array<uint8_t, 16> nguid{};
  std::array<uint8_t, 8> eui64{};
  uint32_t ana_group = 0;
};
NamespaceInfo parse_identify_namespace(std::span<const uint8_t> data);  // 4096 bytes
std::vector<uint32_t> parse_namespace_list(std::span<const uint8_t> data);

enum class AnaState : uint8_t {
  optimized = 0x1,
  non_optimized = 0x2,
  inaccessible = 0x3,
  persistent_loss = 0x4,
  change = 0xf,
};
const char* to_string(AnaState s);
struct AnaGroup {
  uint32_t id = 0;
  AnaState state = AnaState::inaccessible;
  std::vector<uint32_t> nsids;
};
// Throws ProtocolError if a descriptor runs past the data or the state is not a defined one.
std::vector<AnaGroup> parse_ana_log(std::span<const uint8_t> data);

}  // namespace cutover::nvme
