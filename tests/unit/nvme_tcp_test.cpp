// Unit tests for the NVMe/TCP codec (golden offsets from the TCP transport binding and the base
// specification) and for the path probe against an in-process fake target on loopback that
// checks what a Linux nvmet target checks (PDU layout, SGL flag, NQNs) and answers like it.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "storage/nvme_path_probe.hpp"
#include "storage/nvme_tcp.hpp"

using namespace cutover::nvme;

namespace {

uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24; }
void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}

// One connection at a time, blocking sockets, on its own thread.
class FakeTarget {
 public:
  std::string nqn = "nqn.2014-08.org.example:vol1";
  std::array<uint8_t, 16> nguid{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  bool silent = false;  // accept, never answer
  std::string seen_host_nqn;
  std::atomic<int> commands{0};

  FakeTarget() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    listen(fd_, 4);
  }
  ~FakeTarget() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  void start() {
    thread_ = std::thread([this] {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      if (!silent) serve(c);
      uint8_t sink[256];
      while (read(c, sink, sizeof sink) > 0) {
      }
      close(c);
    });
  }
  uint16_t port = 0;

 private:
  bool read_all(int c, uint8_t* p, size_t n) {
    while (n) {
      const ssize_t got = read(c, p, n);
      if (got <= 0) return false;
      p += got;
      n -= size_t(got);
    }
    return true;
  }
  void resp(int c, uint16_t cid, uint16_t status, uint32_t dw0 = 0) {
    uint8_t r[24] = {0x05, 0, 24, 0};
    put32(r + 4, 24);
    put32(r + 8, dw0);
    put16(r + 20, cid);
    put16(r + 22, uint16_t(status << 1));
    (void)!write(c, r, sizeof r);
  }
  void data(int c, uint16_t cid, const std::vector<uint8_t>& d) {
    // Two C2HData PDUs, the second with LAST_PDU, then a response capsule (like nvmet).
    const size_t half = d.size() / 2;
    for (int part = 0; part < 2; ++part) {
      const size_t off = part ? half : 0, len = part ? d.size() - half : half;
      std::vector<uint8_t> p(24 + len);
      p[0] = 0x07;
      p[1] = part ? 0x04 : 0;
      p[2] = 24;
      p[3] = 24;
      put32(&p[4], uint32_t(p.size()));
      put16(&p[8], cid);
      put32(&p[12], uint32_t(off));
      put32(&p[16], uint32_t(len));
      std::memcpy(&p[24], d.data() + off, len);
      (void)!write(c, p.data(), p.size());
    }
    resp(c, cid, 0);
  }
  void serve(int c) {
    uint8_t ic[128];
    if (!read_all(c, ic, 128) || ic[0] != 0x00 || ic[2] != 128 || le32(ic + 4) != 128) return;
    uint8_t icr[128] = {0x01, 0, 128, 0};
    put32(icr + 4, 128);
    put32(icr + 12, 131072);
    (void)!write(c, icr, sizeof icr);
    bool enabled = false;
    for (;;) {
      uint8_t h[8];
      if (!read_all(c, h, 8)) return;
      const uint32_t plen = le32(h + 4);
      if (h[0] != 0x04 || h[2] != 72 || plen < 72 || plen > 1 << 20) return;
      std::vector<uint8_t> rest(plen - 8);
      if (!read_all(c, rest.data(), rest.size())) return;
      const uint8_t* sqe = rest.data();
      ++commands;
      const uint16_t cid = uint16_t(sqe[2] | sqe[3] << 8);
      if (sqe[1] != 0x40) {  // nvmet: commands must use SGLs
        resp(c, cid, 0x02);
        continue;
      }
      const uint8_t op = sqe[0];
      if (op == 0x7f && sqe[4] == 0x01) {  // Connect, data in capsule
        if (h[3] != 72 || plen != 72 + 1024 || sqe[39] != 0x01) return;
        const char* d = reinterpret_cast<const char*>(rest.data() + 64);
        seen_host_nqn = std::string(d + 512, strnlen(d + 512, 256));
        resp(c, cid, std::string(d + 256, strnlen(d + 256, 256)) == nqn ? 0 : 0x182, 1);
      } else if (op == 0x7f && sqe[4] == 0x00) {  // Property Set
        enabled = le32(sqe + 44) == 0x14 && (le32(sqe + 48) & 1);
        resp(c, cid, 0);
      } else if (op == 0x7f && sqe[4] == 0x04) {  // Property Get
        resp(c, cid, 0, le32(sqe + 44) == 0x1c && enabled ? 1 : 0);
      } else if (!enabled) {
        resp(c, cid, 0x0c);  // command sequence error
      } else if (op == 0x06 && sqe[39] == 0x5a && le32(sqe + 32) == 4096) {
        std::vector<uint8_t> d(4096, 0);
        if (sqe[40] == 0x01) {
          std::memcpy(&d[4], "SN0001              ", 20);
          std::memcpy(&d[24], "Linux", 5);
          d[76] = 0x08;  // ANA reporting
          put16(&d[78], 1);
          put32(&d[516], 1);
          std::memcpy(&d[768], nqn.data(), nqn.size());
        } else if (sqe[40] == 0x02) {
          put32(&d[0], 1);
        } else if (sqe[40] == 0x00 && le32(sqe + 4) == 1) {
          put32(&d[0], 2048);
          put32(&d[92], 1);
          std::memcpy(&d[104], nguid.data(), 16);
        }
        data(c, cid, d);
      } else if (op == 0x02 && (le32(sqe + 40) & 0xff) == 0x0c) {
        const uint32_t len = ((le32(sqe + 40) >> 16) + 1) * 4;
        std::vector<uint8_t> d(len, 0);
        put16(&d[8], 1);   // one group
        put32(&d[16], 1);  // group id
        put32(&d[20], 1);  // one namespace
        d[32] = 0x01;      // optimized
        put32(&d[48], 1);  // nsid 1
        data(c, cid, d);
      } else {
        resp(c, cid, 0x01);  // invalid opcode
      }
    }
  }
  int fd_ = -1;
  std::thread thread_;
};

ProbeConfig config() {
  ProbeConfig c;
  c.host_nqn = "nqn.2014-08.org.nvmexpress:uuid:hv2";
  c.timeout = std::chrono::milliseconds(2000);
  return c;
}

}  // namespace

TEST(NvmeTcpCodec, IcReqAndConnectCapsuleLayout) {
  const auto ic = encode_ic_req();
  ASSERT_EQ(ic.size(), 128u);
  EXPECT_EQ(ic[0], 0x00);
  EXPECT_EQ(ic[2], 128);
  EXPECT_EQ(le32(&ic[4]), 128u);
  const auto sqe = connect_sqe(7, 0, 31, 30000);
  const auto data = connect_data({}, "nqn.sub", "nqn.host");
  const auto pdu = encode_capsule_cmd(sqe, data);
  ASSERT_EQ(pdu.size(), 72u + 1024);
  EXPECT_EQ(pdu[0], 0x04);
  EXPECT_EQ(pdu[2], 72);
  EXPECT_EQ(pdu[3], 72);  // data right after the header
  EXPECT_EQ(pdu[8], 0x7f);
  EXPECT_EQ(pdu[9], 0x40);
  EXPECT_EQ(pdu[10], 7);
  EXPECT_EQ(pdu[8 + 4], 0x01);   // FCTYPE Connect
  EXPECT_EQ(pdu[8 + 39], 0x01);  // in-capsule data block
  EXPECT_EQ(le32(&pdu[8 + 32]), 1024u);
  EXPECT_EQ(pdu[8 + 44], 31);             // SQSIZE
  EXPECT_EQ(le32(&pdu[8 + 48]), 30000u);  // KATO
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&pdu[72 + 256])), "nqn.sub");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&pdu[72 + 512])), "nqn.host");
  EXPECT_EQ(pdu[72 + 16], 0xff);  // CNTLID: dynamic
}

TEST(NvmeTcpCodec, GetLogPageCountsZeroBasedDwords) {
  const auto s = get_log_page_sqe(3, kLogAna, 4096);
  EXPECT_EQ(s[0], 0x02);
  EXPECT_EQ(le32(&s[40]), 0x0c | (1023u << 16));
  EXPECT_THROW(get_log_page_sqe(3, kLogAna, 6), ProtocolError);
}

TEST(NvmeTcpCodec, ReaderFramesAStreamAndRejectsBadHeaders) {
  PduReader r;
  const auto a = encode_ic_req();
  Bytes two(a);
  two.insert(two.end(), a.begin(), a.end());
  r.feed(std::span(two).first(100));
  EXPECT_FALSE(r.next());
  r.feed(std::span(two).subspan(100));
  EXPECT_TRUE(r.next());
  EXPECT_TRUE(r.next());
  EXPECT_FALSE(r.next());
  auto field = [](Bytes b) {
    try {
      parse_common_header(b);
    } catch (const ProtocolError& e) {
      return e.field;
    }
    return std::string("<accepted>");
  };
  EXPECT_EQ(field({0x42, 0, 24, 0, 24, 0, 0, 0}), "pdu_type");
  EXPECT_EQ(field({0x05, 0, 23, 0, 24, 0, 0, 0}), "hlen");
  EXPECT_EQ(field({0x05, 0, 24, 0, 23, 0, 0, 0}), "plen");
  EXPECT_EQ(field({0x05, 0, 24, 0, 0, 0, 0, 0x10}), "plen");
  EXPECT_EQ(field({0x07, 0, 24, 8, 40, 0, 0, 0}), "pdo");
  EXPECT_EQ(field({0x05, 1, 24, 0, 28, 0, 0, 0}), "flags");
}

TEST(NvmeTcpCodec, AnaLogRejectsDescriptorsPastTheData) {
  Bytes d(16 + 32 + 4, 0);
  d[8] = 1;
  d[16] = 5;     // group 5
  d[20] = 1;     // one nsid
  d[32] = 0x02;  // non-optimized
  d[48] = 9;     // nsid 9
  auto groups = parse_ana_log(d);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].id, 5u);
  EXPECT_EQ(groups[0].state, AnaState::non_optimized);
  EXPECT_EQ(groups[0].nsids, std::vector<uint32_t>{9});
  d[20] = 200;
  EXPECT_THROW(parse_ana_log(d), ProtocolError);
  d[20] = 1;
  d[32] = 0x07;
  EXPECT_THROW(parse_ana_log(d), ProtocolError);
}

TEST(NvmePathProbe, SucceedsAgainstATargetAndReportsNamespaceAndAna) {
  FakeTarget t;
  t.start();
  auto c = config();
  c.expect_nguid = t.nguid;
  const auto r = probe_path({"127.0.0.1", t.port, t.nqn}, c);
  ASSERT_TRUE(r.ok()) << to_string(r.error) << ": " << r.message;
  EXPECT_EQ(t.seen_host_nqn, c.host_nqn);
  EXPECT_EQ(r.controller.model, "Linux");
  EXPECT_EQ(r.controller.subsystem_nqn, t.nqn);
  ASSERT_EQ(r.namespaces.size(), 1u);
  EXPECT_EQ(r.namespaces[0].second.nguid, t.nguid);
  EXPECT_EQ(r.namespaces[0].second.size_blocks, 2048u);
  ASSERT_EQ(r.ana.size(), 1u);
  EXPECT_EQ(r.ana[0].state, AnaState::optimized);
}

TEST(NvmePathProbe, WrongNqnIsAConnectRejectionWithItsStatus) {
  FakeTarget t;
  t.start();
  const auto r = probe_path({"127.0.0.1", t.port, "nqn.2014-08.org.example:other"}, config());
  EXPECT_EQ(r.error, ProbeError::connect_rejected) << r.message;
  EXPECT_EQ(r.sct, 1);
  EXPECT_EQ(r.sc, 0x82);
  EXPECT_NE(r.message.find("sc 0x82"), std::string::npos);
}

TEST(NvmePathProbe, ClosedPortIsRefused) {
  uint16_t port;
  {
    FakeTarget t;  // bound, then closed: nothing listens there any more
    port = t.port;
  }
  const auto r = probe_path({"127.0.0.1", port, "nqn.x"}, config());
  EXPECT_EQ(r.error, ProbeError::refused) << r.message;
}

TEST(NvmePathProbe, SilentTargetTimesOut) {
  FakeTarget t;
  t.silent = true;
  t.start();
  auto c = config();
  c.timeout = std::chrono::milliseconds(300);
  const auto r = probe_path({"127.0.0.1", t.port, t.nqn}, c);
  EXPECT_EQ(r.error, ProbeError::timeout) << r.message;
  EXPECT_GE(r.elapsed_ms, 290);
  EXPECT_LT(r.elapsed_ms, 2000);
}

TEST(NvmePathProbe, MissingVolumeIsNamedByItsNguid) {
  FakeTarget t;
  t.start();
  auto c = config();
  c.expect_nguid = std::array<uint8_t, 16>{0xaa};
  const auto r = probe_path({"127.0.0.1", t.port, t.nqn}, c);
  EXPECT_EQ(r.error, ProbeError::namespace_missing);
  EXPECT_NE(r.message.find("aa000000"), std::string::npos) << r.message;
}
