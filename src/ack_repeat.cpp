// AckRepeat (see ack_repeat.hpp): cuts a decoded ACK's text around its two per-ACK numbers and
// matches later ACKs against the pieces.
#include "ack_repeat.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <set>

namespace cutover::wire {

namespace {
bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool number_char(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

// A generation as the full decoder takes it: a JSON integer from 0 to INT64_MAX (written plainly).
std::optional<uint64_t> generation_of(std::string_view t) {
  if (t.empty() || t.size() > 19 || (t.size() > 1 && t[0] == '0')) return std::nullopt;
  for (char c : t) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || v > static_cast<uint64_t>(INT64_MAX)) {
    return std::nullopt;
  }
  return v;
}

// A JSON number (RFC 8259 grammar) that is a finite double.
std::optional<double> apply_ms_of(std::string_view t) {
  size_t i = 0;
  auto digits = [&] {
    const size_t from = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i > from;
  };
  if (i < t.size() && t[i] == '-') ++i;
  if (i < t.size() && t[i] == '0') {
    ++i;
  } else if (!digits()) {
    return std::nullopt;
  }
  if (i < t.size() && t[i] == '.' && (++i, !digits())) return std::nullopt;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return std::nullopt;
  }
  if (i != t.size()) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}
}  // namespace

void AckRepeat::remember(std::string_view text, const Ack& ack) {
  forget();
  if (!ack.waiting_for.empty()) return;
  // Walk the (valid) JSON text: strings skipped whole, depth counted; a string at depth 1
  // followed by ':' is a key.
  std::vector<std::pair<size_t, size_t>> spans;  // of the generation and apply_ms values
  std::vector<bool> is_generation;
  std::set<std::string> keys;
  int depth = 0;
  std::string key;
  bool after_key = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      const size_t start = ++i;
      while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
      if (i >= text.size()) return;
      if (depth != 1) continue;
      size_t j = i + 1;
      while (j < text.size() && space(text[j])) ++j;
      if (j < text.size() && text[j] == ':') {
        key.assign(text.substr(start, i - start));
        // A key twice, or one with an escape (it may name another key once decoded): which
        // value counts is the decoder's call.
        if (key.find('\\') != std::string::npos || !keys.insert(key).second) return;
        after_key = true;
        i = j;
      }
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    if (after_key && !space(c) && c != ':') {
      after_key = false;
      if ((key == "generation" || key == "apply_ms") && number_char(c)) {
        size_t end = i;
        while (end < text.size() && number_char(text[end])) ++end;
        spans.push_back({i, end});
        is_generation.push_back(key == "generation");
        i = end - 1;
      }
    }
  }
  if (std::find(is_generation.begin(), is_generation.end(), true) == is_generation.end()) return;
  size_t at = 0;
  for (const auto& [from, to] : spans) {
    pieces_.emplace_back(text.substr(at, from - at));
    at = to;
  }
  pieces_.emplace_back(text.substr(at));
  is_generation_ = std::move(is_generation);
}

std::optional<AckRepeat::Numbers> AckRepeat::match(std::string_view text) const {
  if (pieces_.empty()) return std::nullopt;
  Numbers out;
  size_t at = 0;
  for (size_t k = 0; k < is_generation_.size(); ++k) {
    const auto& piece = pieces_[k];
    if (text.compare(at, piece.size(), piece) != 0) return std::nullopt;
    at += piece.size();
    size_t end = at;
    while (end < text.size() && number_char(text[end])) ++end;
    const auto token = text.substr(at, end - at);
    if (is_generation_[k]) {
      auto g = generation_of(token);
      if (!g) return std::nullopt;
      out.generation = *g;
    } else {
      auto ms = apply_ms_of(token);
      if (!ms) return std::nullopt;
      out.apply_ms = *ms;
    }
    at = end;
  }
  if (text.substr(at) != pieces_.back()) return std::nullopt;
  return out;
}

}  // namespace cutover::wire
