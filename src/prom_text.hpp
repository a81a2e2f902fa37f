// Prometheus text exposition (format 0.0.4), shared by the controller's and the agent's
// /metrics: families with HELP and TYPE, samples with escaped label values, and a cumulative
// histogram. Renders only; who counts what is the caller's.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cutover {

using PromLabels = std::vector<std::pair<std::string, std::string>>;

class PromText {
 public:
  // Starts a family: type is "gauge", "counter" or "histogram".
  void family(const std::string& name, const char* type, const std::string& help);
  void sample(const std::string& name, const PromLabels& labels, double value);
  void sample(const std::string& name, double value) { sample(name, {}, value); }
  // A family of one unlabelled sample.
  void gauge(const std::string& name, const std::string& help, double value);
  void counter(const std::string& name, const std::string& help, double value);
  // A counter family with one label: a sample for each of `values`, 0 until counted.
  void counter(const std::string& name, const std::string& help, const std::string& label,
               std::initializer_list<const char*> values,
               const std::map<std::string, uint64_t>& counts);
  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// A sample value as text: integers (counts) exactly, fractions with 6 significant digits.
std::string prom_number(double v);

// Seconds, cumulative buckets from 1 ms to 5 s.
struct PromHistogram {
  static constexpr std::array<double, 10> kBuckets{0.001, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,   0.25,  0.5,  1.0,   5.0};
  std::array<uint64_t, 10> counts{};
  uint64_t count = 0;
  double sum = 0;
  void observe(double seconds);
  void render(PromText& out, const std::string& name, const std::string& help) const;
};

}  // namespace cutover
