// NVMe/TCP PDU framing, encoders and strict parsers (see nvme_tcp.hpp). Multi-byte fields are
// little endian on the wire. Offsets follow the NVMe over Fabrics TCP transport binding and the
// NVMe base specification (SQE/CQE, Identify, ANA log page).
#include "nvme_tcp.hpp"

#include <algorithm>

namespace cutover::nvme {

namespace {
template <typename T>
T le(std::span<const uint8_t> b, size_t at) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<T>(b[at + i]) << (8 * i));
  return v;
}
template <typename T>
void put_le(uint8_t* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void header(Bytes& out, PduType type, uint8_t flags, uint8_t hlen, uint8_t pdo, uint32_t plen) {
  out.resize(std::max<size_t>(out.size(), plen));
  out[0] = static_cast<uint8_t>(type);
  out[1] = flags;
  out[2] = hlen;
  out[3] = pdo;
  put_le(&out[4], plen);
}
// Fixed header length per PDU type (without header digest), 0 = unknown type.
uint8_t expected_hlen(uint8_t type) {
  switch (static_cast<PduType>(type)) {
    case PduType::ic_req:
    case PduType::ic_resp:
      return 128;
    case PduType::capsule_cmd:
      return 72;
    case PduType::h2c_term_req:
    case PduType::c2h_term_req:
    case PduType::capsule_resp:
    case PduType::h2c_data:
    case PduType::c2h_data:
    case PduType::r2t:
      return 24;
  }
  return 0;
}
CommonHeader need(std::span<const uint8_t> pdu, PduType type, const char* what) {
  if (pdu.size() < kCommonHeaderLen) throw ProtocolError(what, "truncated PDU");
  const auto h = parse_common_header(pdu.first(kCommonHeaderLen));
  if (h.type != type) throw ProtocolError(what, "unexpected PDU type " + std::to_string(pdu[0]));
  if (pdu.size() != h.plen) throw ProtocolError(what, "PDU length differs from its header");
  return h;
}
std::string ascii(std::span<const uint8_t> b, size_t at, size_t n) {
  std::string s;
  for (size_t i = at; i < at + n && b[i]; ++i) {
    s.push_back(b[i] >= 0x20 && b[i] < 0x7f ? static_cast<char>(b[i]) : '?');
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}
Sqe base_sqe(uint8_t opcode, uint16_t cid, uint32_t nsid) {
  Sqe s{};
  s[0] = opcode;
  s[1] = 0x40;  // PSDT: SGL for data (fabrics targets refuse commands without it)
  put_le(&s[2], cid);
  put_le(&s[4], nsid);
  s[39] = 0x5a;  // SGL1: transport data block (data, if any, comes in C2HData PDUs)
  return s;
}
Sqe fabrics_sqe(uint8_t fctype, uint16_t cid) {
  Sqe s = base_sqe(0x7f, cid, 0);
  s[4] = fctype;
  return s;
}
void sgl_length(Sqe& s, uint32_t len) { put_le(&s[32], len); }
}  // namespace

CommonHeader parse_common_header(std::span<const uint8_t> b) {
  if (b.size() < kCommonHeaderLen) throw ProtocolError("header", "fewer than 8 bytes");
  CommonHeader h;
  const uint8_t hlen = expected_hlen(b[0]);
  if (!hlen) throw ProtocolError("pdu_type", "unknown PDU type " + std::to_string(b[0]));
  h.type = static_cast<PduType>(b[0]);
  h.flags = b[1];
  h.hlen = b[2];
  h.pdo = b[3];
  h.plen = le<uint32_t>(b, 4);
  if (h.hlen != hlen) {
    throw ProtocolError("hlen", "is " + std::to_string(h.hlen) + ", expected " +
                                    std::to_string(hlen) + " for this PDU type");
  }
  if (h.flags & 0x01) throw ProtocolError("flags", "header digest was not negotiated");
  if (h.plen < h.hlen || h.plen > kMaxPduLen) {
    throw ProtocolError("plen", std::to_string(h.plen) + " outside " + std::to_string(h.hlen) +
                                    ".." + std::to_string(kMaxPduLen));
  }
  if (h.pdo && (h.pdo < h.hlen || h.pdo > h.plen)) {
    throw ProtocolError("pdo", std::to_string(h.pdo) + " outside hlen..plen");
  }
  return h;
}

void PduReader::feed(std::span<const uint8_t> bytes) {
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
}

std::optional<Bytes> PduReader::next() {
  if (buf_.size() < kCommonHeaderLen) return std::nullopt;
  const auto h = parse_common_header(std::span(buf_).first(kCommonHeaderLen));
  if (buf_.size() < h.plen) return std::nullopt;
  Bytes pdu(buf_.begin(), buf_.begin() + h.plen);
  buf_.erase(buf_.begin(), buf_.begin() + h.plen);
  return pdu;
}

Bytes encode_ic_req() {
  Bytes out;
  header(out, PduType::ic_req, 0, 128, 0, 128);
  // PFV 0, HPDA 0 (no alignment), DGST 0 (no digests), MAXR2T 0 (one outstanding R2T).
  return out;
}

Bytes encode_capsule_cmd(const Sqe& sqe, std::span<const uint8_t> data) {
  Bytes out;
  const uint32_t plen = 72 + static_cast<uint32_t>(data.size());
  header(out, PduType::capsule_cmd, 0, 72, data.empty() ? 0 : 72, plen);
  std::copy(sqe.begin(), sqe.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 72);
  return out;
}

Sqe connect_sqe(uint16_t cid, uint16_t qid, uint16_t sqsize, uint32_t kato_ms) {
  Sqe s = fabrics_sqe(0x01, cid);
  s[39] = 0x01;  // SGL1: data block, offset subtype: the data is in this capsule
  sgl_length(s, 1024);
  put_le<uint16_t>(&s[40], 0);  // RECFMT
  put_le(&s[42], qid);
  put_le(&s[44], sqsize);  // 0-based
  put_le(&s[48], kato_ms);
  return s;
}

Bytes connect_data(const std::array<uint8_t, 16>& host_id, const std::string& subsystem_nqn,
                   const std::string& host_nqn, uint16_t cntlid) {
  if (subsystem_nqn.empty() || subsystem_nqn.size() > 223) {
    throw ProtocolError("subsystem_nqn", "must be 1..223 characters");
  }
  if (host_nqn.empty() || host_nqn.size() > 223) {
    throw ProtocolError("host_nqn", "must be 1..223 characters");
  }
  Bytes d(1024, 0);
  std::copy(host_id.begin(), host_id.end(), d.begin());
  put_le(&d[16], cntlid);
  std::copy(subsystem_nqn.begin(), subsystem_nqn.end(), d.begin() + 256);
  std::copy(host_nqn.begin(), host_nqn.end(), d.begin() + 512);
  return d;
}

Sqe property_set_sqe(uint16_t cid, uint32_t offset, uint64_t value, bool eight_bytes) {
  Sqe s = fabrics_sqe(0x00, cid);
  s[40] = eight_bytes ? 1 : 0;
  put_le(&s[44], offset);
  put_le(&s[48], value);
  return s;
}

Sqe property_get_sqe(uint16_t cid, uint32_t offset, bool eight_bytes) {
  Sqe s = fabrics_sqe(0x04, cid);
  s[40] = eight_bytes ? 1 : 0;
  put_le(&s[44], offset);
  return s;
}

Sqe identify_sqe(uint16_t cid, uint8_t cns, uint32_t nsid) {
  Sqe s = base_sqe(0x06, cid, nsid);
  sgl_length(s, 4096);
  s[40] = cns;
  return s;
}

Sqe get_log_page_sqe(uint16_t cid, uint8_t log_id, uint32_t length, uint32_t nsid) {
  if (length == 0 || length % 4) throw ProtocolError("length", "must be a positive multiple of 4");
  Sqe s = base_sqe(0x02, cid, nsid);
  sgl_length(s, length);
  const uint32_t numd = length / 4 - 1;  // 0-based dwords
  put_le<uint32_t>(&s[40], log_id | ((numd & 0xffff) << 16));
  put_le<uint32_t>(&s[44], numd >> 16);
  return s;
}

Sqe keep_alive_sqe(uint16_t cid) { return base_sqe(0x18, cid, 0); }

IcResp parse_ic_resp(std::span<const uint8_t> pdu) {
  need(pdu, PduType::ic_resp, "icresp");
  IcResp r;
  r.pfv = le<uint16_t>(pdu, 8);
  r.cpda = pdu[10];
  r.dgst = pdu[11];
  r.maxh2cdata = le<uint32_t>(pdu, 12);
  if (r.pfv != 0) throw ProtocolError("icresp.pfv", "unsupported PDU format version");
  if (r.dgst != 0) throw ProtocolError("icresp.dgst", "digests enabled although not requested");
  if (r.maxh2cdata < 4096 || r.maxh2cdata % 4) {
    throw ProtocolError("icresp.maxh2cdata", "must be a multiple of 4 and at least 4096");
  }
  return r;
}

Cqe parse_capsule_resp(std::span<const uint8_t> pdu) {
  need(pdu, PduType::capsule_resp, "capsule_resp");
  Cqe c;
  c.dw0 = le<uint32_t>(pdu, 8);
  c.dw1 = le<uint32_t>(pdu, 12);
  c.sqhd = le<uint16_t>(pdu, 16);
  c.sqid = le<uint16_t>(pdu, 18);
  c.cid = le<uint16_t>(pdu, 20);
  c.status = static_cast<uint16_t>(le<uint16_t>(pdu, 22) >> 1);
  return c;
}

C2HData parse_c2h_data(std::span<const uint8_t> pdu) {
  const auto h = need(pdu, PduType::c2h_data, "c2h_data");
  if (h.flags & 0x02) throw ProtocolError("c2h_data.flags", "data digest was not negotiated");
  C2HData d;
  d.cccid = le<uint16_t>(pdu, 8);
  d.offset = le<uint32_t>(pdu, 12);
  const uint32_t len = le<uint32_t>(pdu, 16);
  d.last = h.flags & 0x04;
  d.success = h.flags & 0x08;
  if (d.success && !d.last) throw ProtocolError("c2h_data.flags", "SUCCESS without LAST_PDU");
  if (!h.pdo || static_cast<uint64_t>(h.pdo) + len != h.plen) {
    throw ProtocolError("c2h_data.datal", "does not match the PDU's data");
  }
  d.data.assign(pdu.begin() + h.pdo, pdu.end());
  return d;
}

TermReq parse_c2h_term_req(std::span<const uint8_t> pdu) {
  need(pdu, PduType::c2h_term_req, "c2h_term_req");
  return TermReq{le<uint16_t>(pdu, 8), le<uint32_t>(pdu, 10)};
}

ControllerInfo parse_identify_controller(std::span<const uint8_t> d) {
  if (d.size() != 4096) throw ProtocolError("identify_controller", "expected 4096 bytes");
  ControllerInfo c;
  c.serial = ascii(d, 4, 20);
  c.model = ascii(d, 24, 40);
  c.firmware = ascii(d, 64, 8);
  c.ana_reporting = d[76] & 0x08;
  c.cntlid = le<uint16_t>(d, 78);
  c.namespaces = le<uint32_t>(d, 516);
  c.subsystem_nqn = ascii(d, 768, 256);
  return c;
}

NamespaceInfo parse_identify_namespace(std::span<const uint8_t> d) {
  if (d.size() != 4096) throw ProtocolError("identify_namespace", "expected 4096 bytes");
  NamespaceInfo n;
  n.size_blocks = le<uint64_t>(d, 0);
  n.ana_group = le<uint32_t>(d, 92);
  std::copy(d.begin() + 104, d.begin() + 120, n.nguid.begin());
  std::copy(d.begin() + 120, d.begin() + 128, n.eui64.begin());
  return n;
}

std::vector<uint32_t> parse_namespace_list(std::span<const uint8_t> d) {
  std::vector<uint32_t> out;
  for (size_t at = 0; at + 4 <= d.size(); at += 4) {
    const auto id = le<uint32_t>(d, at);
    if (!id) break;
    out.push_back(id);
  }
  return out;
}

const char* to_string(AnaState s) {
  switch (s) {
    case AnaState::optimized:
      return "optimized";
    case AnaState::non_optimized:
      return "non-optimized";
    case AnaState::inaccessible:
      return "inaccessible";
    case AnaState::persistent_loss:
      return "persistent-loss";
    case AnaState::change:
      return "change";
  }
  return "?";
}

std::vector<AnaGroup> parse_ana_log(std::span<const uint8_t> d) {
  if (d.size() < 16) throw ProtocolError("ana_log", "shorter than its 16-byte header");
  const uint16_t groups = le<uint16_t>(d, 8);
  std::vector<AnaGroup> out;
  size_t at = 16;
  for (uint16_t g = 0; g < groups; ++g) {
    const std::string field = "ana_log.groups[" + std::to_string(g) + "]";
    if (at + 32 > d.size()) throw ProtocolError(field, "descriptor runs past the data");
    AnaGroup a;
    a.id = le<uint32_t>(d, at);
    const uint32_t n = le<uint32_t>(d, at + 4);
    const uint8_t state = d[at + 16] & 0x0f;
    if (state == 0 || (state > 4 && state != 0xf)) {
      throw ProtocolError(field + ".state", "undefined ANA state " + std::to_string(state));
    }
    a.state = static_cast<AnaState>(state);
    if (n > (d.size() - at - 32) / 4)
      throw ProtocolError(field + ".nnsids", "more than the data holds");
    for (uint32_t i = 0; i < n; ++i) a.nsids.push_back(le<uint32_t>(d, at + 32 + 4 * i));
    at += 32 + 4 * static_cast<size_t>(n);
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace cutover::nvme
