// PromText and PromHistogram (see prom_text.hpp).
#include "prom_text.hpp"

#include <cmath>
#include <cstdio>

namespace cutover {

std::string prom_number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 9e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);  // a count of a million is not 1e+06
  } else {
    std::snprintf(buf, sizeof buf, "%.6g", v);
  }
  return buf;
}

void PromText::family(const std::string& name, const char* type, const std::string& help) {
  out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void PromText::sample(const std::string& name, const PromLabels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first + "=\"";
      for (char c : labels[i].second) {  // the format's three escapes
        if (c == '\\' || c == '"') out_ += '\\';
        if (c == '\n') {
          out_ += "\\n";
          continue;
        }
        out_ += c;
      }
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ' + prom_number(value) + '\n';
}

void PromText::gauge(const std::string& name, const std::string& help, double value) {
  family(name, "gauge", help);
  sample(name, value);
}

void PromText::counter(const std::string& name, const std::string& help, double value) {
  family(name, "counter", help);
  sample(name, value);
}

void PromText::counter(const std::string& name, const std::string& help, const std::string& label,
                       std::initializer_list<const char*> values,
                       const std::map<std::string, uint64_t>& counts) {
  family(name, "counter", help);
  for (const char* v : values) {
    auto it = counts.find(v);
    sample(name, {{label, v}}, static_cast<double>(it == counts.end() ? 0 : it->second));
  }
}

void PromHistogram::observe(double seconds) {
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++counts[i];
  }
  ++count;
  sum += seconds;
}

void PromHistogram::render(PromText& out, const std::string& name, const std::string& help) const {
  out.family(name, "histogram", help);
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    out.sample(name + "_bucket", {{"le", prom_number(kBuckets[i])}},
               static_cast<double>(counts[i]));
  }
  out.sample(name + "_bucket", {{"le", "+Inf"}}, static_cast<double>(count));
  out.sample(name + "_sum", sum);
  out.sample(name + "_count", static_cast<double>(count));
}

}  // namespace cutover
