// NVMe/TCP path probe over Boost.Asio (see nvme_path_probe.hpp).
#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include "nvme_path_probe.hpp"

#include <boost/asio.hpp>
#include <functional>

#include "json_codec.hpp"

namespace cutover::nvme {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

const char* to_string(ProbeError e) {
  switch (e) {
    case ProbeError::none:
      return "ok";
    case ProbeError::refused:
      return "refused";
    case ProbeError::unreachable:
      return "unreachable";
    case ProbeError::timeout:
      return "timeout";
    case ProbeError::connect_rejected:
      return "connect rejected";
    case ProbeError::command_failed:
      return "command failed";
    case ProbeError::namespace_missing:
      return "namespace missing";
    case ProbeError::protocol:
      return "protocol error";
  }
  return "?";
}

namespace {

struct Failure {
  ProbeError error;
  std::string message;
  uint8_t sct = 0, sc = 0;
};

class Session {
 public:
  Session(const ProbeTarget& t, const ProbeConfig& c)
      : target_(t), config_(c), socket_(io_), deadline_(Clock::now() + c.timeout) {}

  void connect() {
    boost::system::error_code addr_ec;
    const auto addr = asio::ip::make_address(target_.traddr, addr_ec);
    if (addr_ec)
      throw Failure{ProbeError::protocol, "traddr '" + target_.traddr + "' is not an IP address"};
    boost::system::error_code ec;
    bool done = false;
    socket_.async_connect(tcp::endpoint(addr, target_.trsvcid), [&](auto e) {
      ec = e;
      done = true;
    });
    wait(done, "TCP connect");
    if (ec == asio::error::connection_refused) {
      throw Failure{ProbeError::refused, "connection refused by " + where()};
    }
    if (ec == asio::error::host_unreachable || ec == asio::error::network_unreachable) {
      throw Failure{ProbeError::unreachable, where() + ": " + ec.message()};
    }
    if (ec) throw Failure{ProbeError::unreachable, where() + ": " + ec.message()};
    socket_.set_option(tcp::no_delay(true));
  }

  void send(const Bytes& pdu) {
    boost::system::error_code ec;
    bool done = false;
    asio::async_write(socket_, asio::buffer(pdu), [&](auto e, size_t) {
      ec = e;
      done = true;
    });
    wait(done, "send");
    if (ec) throw Failure{ProbeError::protocol, "send to " + where() + ": " + ec.message()};
  }

  Bytes receive(const char* what) {
    for (;;) {
      try {
        if (auto pdu = reader_.next()) {
          if (static_cast<PduType>((*pdu)[0]) == PduType::c2h_term_req) {
            const auto t = parse_c2h_term_req(*pdu);
            throw Failure{ProbeError::protocol,
                          std::string("target terminated the connection during ") + what +
                              " (FES " + std::to_string(t.fes) + ")"};
          }
          return std::move(*pdu);
        }
      } catch (const ProtocolError& e) {
        throw Failure{ProbeError::protocol, std::string(what) + ": " + e.what()};
      }
      std::array<uint8_t, 8192> buf;
      boost::system::error_code ec;
      size_t n = 0;
      bool done = false;
      socket_.async_read_some(asio::buffer(buf), [&](auto e, size_t got) {
        ec = e;
        n = got;
        done = true;
      });
      wait(done, what);
      if (ec) {
        throw Failure{ProbeError::protocol,
                      std::string(what) + ": connection lost (" + ec.message() + ")"};
      }
      reader_.feed(std::span(buf.data(), n));
    }
  }

  // Sends a command capsule and collects its C2H data (if any) and its completion.
  std::pair<Cqe, Bytes> command(const Sqe& sqe, const char* what,
                                std::span<const uint8_t> data = {}) {
    send(encode_capsule_cmd(sqe, data));
    const uint16_t cid = static_cast<uint16_t>(sqe[2] | (sqe[3] << 8));
    Bytes collected;
    for (;;) {
      const auto pdu = receive(what);
      try {
        const auto type = static_cast<PduType>(pdu[0]);
        if (type == PduType::c2h_data) {
          auto d = parse_c2h_data(pdu);
          if (d.cccid != cid) throw ProtocolError("c2h_data.cccid", "not the command's id");
          if (d.offset != collected.size()) throw ProtocolError("c2h_data.datao", "out of order");
          if (collected.size() + d.data.size() > (1u << 20))
            throw ProtocolError("c2h_data", "too much data");
          collected.insert(collected.end(), d.data.begin(), d.data.end());
          if (d.success) return {Cqe{0, 0, 0, 0, cid, 0}, std::move(collected)};
          continue;
        }
        if (type == PduType::capsule_resp) {
          auto c = parse_capsule_resp(pdu);
          if (c.cid != cid) throw ProtocolError("capsule_resp.cid", "not the command's id");
          return {c, std::move(collected)};
        }
        throw ProtocolError("pdu_type", "unexpected PDU type " + std::to_string(pdu[0]));
      } catch (const ProtocolError& e) {
        throw Failure{ProbeError::protocol, std::string(what) + ": " + e.what()};
      }
    }
  }

  std::string where() const { return target_.traddr + ":" + std::to_string(target_.trsvcid); }
  bool expired() const { return Clock::now() >= deadline_; }

 private:
  void wait(bool& done, const std::string& what) {
    io_.restart();
    asio::steady_timer timer(io_, deadline_);
    bool timed_out = false;
    timer.async_wait([&](auto ec) {
      if (ec) return;
      timed_out = true;
      boost::system::error_code ignored;
      socket_.cancel(ignored);
    });
    while (!done && io_.run_one()) {
    }
    timer.cancel();
    io_.run();  // let the cancelled handler finish
    if (timed_out) {
      throw Failure{ProbeError::timeout, what + " with " + where() + " timed out after " +
                                             std::to_string(config_.timeout.count()) + " ms"};
    }
  }

  const ProbeTarget& target_;
  const ProbeConfig& config_;
  asio::io_context io_;
  tcp::socket socket_;
  Clock::time_point deadline_;
  PduReader reader_;
};

void check(const Cqe& c, ProbeError kind, const std::string& what) {
  if (c.ok()) return;
  char buf[64];
  std::snprintf(buf, sizeof buf, " (sct %u, sc 0x%02x)", c.sct(), c.sc());
  throw Failure{kind, what + " failed" + buf, c.sct(), c.sc()};
}

}  // namespace

ProbeResult probe_path(const ProbeTarget& target, const ProbeConfig& config) {
  const auto start = Clock::now();
  ProbeResult r;
  try {
    Session s(target, config);
    s.connect();
    s.send(encode_ic_req());
    try {
      parse_ic_resp(s.receive("ICReq"));
    } catch (const ProtocolError& e) {
      throw Failure{ProbeError::protocol, std::string("ICResp: ") + e.what()};
    }
    uint16_t cid = 0;
    const auto data = connect_data(config.host_id, target.subsystem_nqn, config.host_nqn);
    auto [connect, _] = s.command(connect_sqe(++cid, 0, 31, config.kato_ms), "Connect", data);
    check(connect, ProbeError::connect_rejected,
          "Connect to " + target.subsystem_nqn + " as " + config.host_nqn);
    check(s.command(property_set_sqe(++cid, kRegCc, kCcEnable, false), "Property Set CC").first,
          ProbeError::command_failed, "enabling the controller");
    for (;;) {
      auto [csts, unused] =
          s.command(property_get_sqe(++cid, kRegCsts, false), "Property Get CSTS");
      check(csts, ProbeError::command_failed, "reading CSTS");
      if (csts.dw0 & 0x2)
        throw Failure{ProbeError::command_failed, "controller fatal status (CSTS.CFS)"};
      if (csts.dw0 & 0x1) break;  // ready
      if (s.expired()) throw Failure{ProbeError::timeout, "controller never became ready"};
    }
    auto [idc, ctrl] = s.command(identify_sqe(++cid, 0x01, 0), "Identify controller");
    check(idc, ProbeError::command_failed, "Identify controller");
    if (ctrl.size() != 4096) throw Failure{ProbeError::protocol, "Identify controller: short data"};
    r.controller = parse_identify_controller(ctrl);
    auto [idl, list] = s.command(identify_sqe(++cid, 0x02, 0), "Identify namespace list");
    check(idl, ProbeError::command_failed, "Identify active namespace list");
    for (uint32_t nsid : parse_namespace_list(list)) {
      auto [idn, ns] = s.command(identify_sqe(++cid, 0x00, nsid), "Identify namespace");
      check(idn, ProbeError::command_failed, "Identify namespace " + std::to_string(nsid));
      if (ns.size() != 4096) throw Failure{ProbeError::protocol, "Identify namespace: short data"};
      r.namespaces.emplace_back(nsid, parse_identify_namespace(ns));
    }
    if (r.namespaces.empty()) {
      throw Failure{ProbeError::namespace_missing,
                    target.subsystem_nqn + " has no active namespace"};
    }
    if (config.expect_nguid) {
      bool found = false;
      for (const auto& [id, ns] : r.namespaces) found |= ns.nguid == *config.expect_nguid;
      if (!found) {
        throw Failure{ProbeError::namespace_missing, "no namespace with NGUID " +
                                                         hex16(*config.expect_nguid) + " in " +
                                                         target.subsystem_nqn};
      }
    }
    if (r.controller.ana_reporting) {
      auto [ana, log] = s.command(get_log_page_sqe(++cid, kLogAna, 4096), "Get Log Page (ANA)");
      check(ana, ProbeError::command_failed, "reading the ANA log page");
      try {
        r.ana = parse_ana_log(log);
      } catch (const ProtocolError& e) {
        throw Failure{ProbeError::protocol, e.what()};
      }
    }
  } catch (const Failure& f) {
    r.error = f.error;
    r.message = f.message;
    r.sct = f.sct;
    r.sc = f.sc;
  } catch (const ProtocolError& e) {
    r.error = ProbeError::protocol;
    r.message = e.what();
  }
  r.elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return r;
}

}  // namespace cutover::nvme
