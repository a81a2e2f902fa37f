// MemoryStore: the in-memory Store used by tests.
#include <algorithm>
#include <stdexcept>

#include "store.hpp"

namespace cutover::controller {

std::vector<StoredRecord> MemoryStore::load(uint64_t& generation) {
  generation = generation_;
  return records_;
}

void MemoryStore::commit(uint64_t generation, const std::vector<StoredRecord>& upserts,
                         const std::vector<std::pair<std::string, std::string>>& deletes) {
  if (fail_next_commit) {
    fail_next_commit = false;
    throw std::runtime_error("disk I/O error (injected)");
  }
  for (const auto& d : deletes) {
    std::erase_if(records_,
                  [&](const StoredRecord& r) { return r.kind == d.first && r.id == d.second; });
  }
  for (const auto& u : upserts) {
    auto it = std::find_if(records_.begin(), records_.end(),
                           [&](const StoredRecord& r) { return r.kind == u.kind && r.id == u.id; });
    if (it != records_.end()) {
      *it = u;
    } else {
      records_.push_back(u);
    }
  }
  generation_ = generation;
}

}  // namespace cutover::controller
