// StatusFile: writes the latest ApplyReport as JSON, atomically (temp file + rename), so that
// operators and tests can see which generation the dataplane has applied. No-op without a path.
#pragma once

#include <string>

#include "apply_report.hpp"

namespace cutover::agent {

class StatusFile {
 public:
  explicit StatusFile(std::string path) : path_(std::move(path)) {}
  void write(const ApplyReport& report) const;

 private:
  std::string path_;
};

}  // namespace cutover::agent
