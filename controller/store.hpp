// Store: durable home of the controller's desired state, as JSON documents keyed by (kind, id)
// plus the global generation. Every mutation is one atomic commit, so a crash never leaves half a
// change. Implementations: SqliteStore (embedded, default), EtcdStore (highly available, with
// leader fencing), MemoryStore (tests).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cutover::controller {

struct StoredRecord {
  std::string kind;  // "host", "network", "port", "migration", "audit"
  std::string id;
  std::string body;  // JSON
};

// The store cannot be reached (no quorum, no member answers): whether the write happened is not
// known to the writer, and it is safe to retry it. REST answers 503.
struct StoreUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The write was refused because this controller is no longer the leader (its leadership key is
// gone or belongs to another): nothing was written, and this controller must step down.
struct StoreFenced : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Store {
 public:
  virtual ~Store() = default;
  // All records and the generation last committed.
  virtual std::vector<StoredRecord> load(uint64_t& generation) = 0;
  // Atomically upserts and deletes records and records the new generation. Throws
  // StoreUnavailable, StoreFenced or another std::runtime_error; then nothing was written.
  virtual void commit(uint64_t generation, const std::vector<StoredRecord>& upserts,
                      const std::vector<std::pair<std::string, std::string>>& deletes) = 0;
};

// In-memory Store for tests; can be told to fail the next commit.
class MemoryStore : public Store {
 public:
  std::vector<StoredRecord> load(uint64_t& generation) override;
  void commit(uint64_t generation, const std::vector<StoredRecord>& upserts,
              const std::vector<std::pair<std::string, std::string>>& deletes) override;
  bool fail_next_commit = false;

 private:
  uint64_t generation_ = 0;
  std::vector<StoredRecord> records_;
};

}  // namespace cutover::controller
