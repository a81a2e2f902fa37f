// SqliteStore: the embedded default Store. One SQLite file in WAL mode with synchronous=FULL:
// a commit returns only once it is durable, so an acknowledged REST write survives kill -9, and
// an interrupted one is rolled back by SQLite on the next open.
#pragma once

#include <string>

#include "store.hpp"

struct sqlite3;

namespace cutover::controller {

class SqliteStore : public Store {
 public:
  // Opens or creates the database at path; throws std::runtime_error naming the path.
  explicit SqliteStore(const std::string& path);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  std::vector<StoredRecord> load(uint64_t& generation) override;
  void commit(uint64_t generation, const std::vector<StoredRecord>& upserts,
              const std::vector<std::pair<std::string, std::string>>& deletes) override;

 private:
  void exec(const char* sql);
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace cutover::controller
