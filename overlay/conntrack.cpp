// Parsing conntrack dumps (OVS dpctl and /proc/net/nf_conntrack) and choosing connections to carry
// (see conntrack.hpp).
#include "conntrack.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <vector>

namespace cutover::overlay {

namespace {
// "k=v,k=v" inside one pair of parentheses, e.g. "src=10.0.0.1,dst=10.0.0.2,sport=1,dport=2".
std::map<std::string, std::string> fields(std::string_view s) {
  std::map<std::string, std::string> out;
  while (!s.empty()) {
    const auto comma = s.find(',');
    const auto item = s.substr(0, comma);
    const auto eq = item.find('=');
    if (eq != std::string_view::npos) out[std::string(item.substr(0, eq))] = item.substr(eq + 1);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}
// The text between "key=(" and its closing parenthesis.
std::optional<std::string_view> group(std::string_view line, std::string_view key) {
  const auto at = line.find(std::string(key) + "=(");
  if (at == std::string_view::npos) return std::nullopt;
  const auto start = at + key.size() + 2;
  const auto end = line.find(')', start);
  if (end == std::string_view::npos) return std::nullopt;
  return line.substr(start, end - start);
}
std::optional<int> number(const std::string& s, int max) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0 || v > max) return std::nullopt;
  return v;
}
// The original direction's addresses (and ports, for tcp and udp) from its key=value fields, in
// either format; false when one is missing or malformed.
bool endpoints(std::map<std::string, std::string> f, ConntrackEntry& e) {
  if (!f.count("src") || !f.count("dst")) return false;
  try {
    e.src = IpAddress::parse(f["src"]);
    e.dst = IpAddress::parse(f["dst"]);
  } catch (const ParseError&) {
    return false;
  }
  if (e.protocol == "tcp" || e.protocol == "udp") {
    auto sp = number(f["sport"], 65535), dp = number(f["dport"], 65535);
    if (!sp || !dp) return false;
    e.sport = *sp;
    e.dport = *dp;
  }
  return true;
}
std::optional<ConntrackEntry> parse_line(std::string_view line) {
  ConntrackEntry e;
  const auto comma = line.find(',');
  if (comma == std::string_view::npos || comma == 0) return std::nullopt;
  e.protocol = line.substr(0, comma);
  auto orig = group(line, "orig");
  if (!orig) return std::nullopt;
  if (!endpoints(fields(*orig), e)) return std::nullopt;
  if (auto z = line.find(",zone="); z != std::string_view::npos) {
    auto rest = line.substr(z + 6);
    auto v = number(std::string(rest.substr(0, rest.find(','))), 65535);
    if (!v) return std::nullopt;
    e.zone = *v;
  }
  if (auto info = group(line, "protoinfo")) {
    auto pf = fields(*info);
    e.state = pf["state"];
  }
  return e;
}
// One line of /proc/net/nf_conntrack: "ipv4 2 tcp 6 431999 ESTABLISHED src=.. dst=.. sport=..
// dport=.. src=.. (reply) .. [ASSURED] mark=0 zone=7 use=2"; the first src/dst/sport/dport are
// the original direction; udp and icmp have no state word.
std::optional<ConntrackEntry> parse_proc_line(std::string_view line) {
  std::vector<std::string_view> words;
  while (!line.empty()) {
    const auto start = line.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    line.remove_prefix(start);
    const auto end = line.find(' ');
    words.push_back(line.substr(0, end));
    if (end == std::string_view::npos) break;
    line.remove_prefix(end);
  }
  if (words.size() < 6 || (words[0] != "ipv4" && words[0] != "ipv6")) return std::nullopt;
  ConntrackEntry e;
  e.protocol = words[2];
  std::map<std::string, std::string> first;  // the first occurrence of each key
  for (size_t i = 5; i < words.size(); ++i) {
    const auto eq = words[i].find('=');
    if (eq == std::string_view::npos) {
      if (i == 5 && e.protocol == "tcp") e.state = words[i];
      continue;
    }
    first.try_emplace(std::string(words[i].substr(0, eq)), words[i].substr(eq + 1));
  }
  if (!endpoints(first, e)) return std::nullopt;
  if (auto z = first.find("zone"); z != first.end()) {
    auto v = number(z->second, 65535);
    if (!v) return std::nullopt;
    e.zone = *v;
  }
  return e;
}

template <typename LineParser>
ConntrackDump parse_lines(std::string_view text, LineParser parse) {
  ConntrackDump out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (!line.empty()) {
      if (auto e = parse(line)) {
        out.entries.push_back(std::move(*e));
      } else {
        ++out.skipped;
      }
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}
}  // namespace

ConntrackDump parse_conntrack_dump(std::string_view text) { return parse_lines(text, parse_line); }

ConntrackDump parse_proc_conntrack(std::string_view text, int zone) {
  auto out = parse_lines(text, parse_proc_line);
  std::erase_if(out.entries, [&](const ConntrackEntry& e) { return e.zone != zone; });
  return out;
}

std::vector<CarriedConn> connections_to_carry(const std::vector<ConntrackEntry>& entries,
                                              const std::vector<IpAddress>& local_ips) {
  auto local = [&](const IpAddress& ip) {
    return std::find(local_ips.begin(), local_ips.end(), ip) != local_ips.end();
  };
  std::vector<CarriedConn> out;
  for (const auto& e : entries) {
    if (e.protocol != "tcp" && e.protocol != "udp") continue;
    if (e.protocol == "tcp" && (e.state == "CLOSED" || e.state == "TIME_WAIT")) continue;
    if (e.sport == 0 || e.dport == 0) continue;
    if (local(e.src)) {
      out.push_back({e.protocol, e.src, e.sport, e.dst, e.dport});
    } else if (local(e.dst)) {
      out.push_back({e.protocol, e.dst, e.dport, e.src, e.sport});
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.size() > kMaxCarriedConns) out.resize(kMaxCarriedConns);
  return out;
}

}  // namespace cutover::overlay
