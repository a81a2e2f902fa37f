// StatusFile implementation.
#include "status_file.hpp"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

namespace cutover::agent {

void StatusFile::write(const ApplyReport& r) const {
  if (path_.empty()) return;
  nlohmann::json j = {{"applied_generation", r.applied() ? r.generation : 0},
                      {"generation", r.generation},
                      {"ok", r.ok},
                      {"rejected", r.rejected},
                      {"error", r.error},
                      {"error_field", r.error_field},
                      {"added", r.added},
                      {"modified", r.modified},
                      {"removed", r.removed},
                      {"waiting_for", r.waiting_for},
                      {"awaiting_taps", r.awaiting_taps},
                      {"bound_ports", r.bound_ports},
                      {"apply_ms", r.apply_ms}};
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
  }
  std::rename(tmp.c_str(), path_.c_str());
}

}  // namespace cutover::agent
