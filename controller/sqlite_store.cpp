// SqliteStore implementation.
#include "sqlite_store.hpp"

#include <sqlite3.h>

#include <stdexcept>

namespace cutover::controller {

namespace {
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("sqlite prepare: ") + sqlite3_errmsg(db));
    }
  }
  ~Stmt() { sqlite3_finalize(s); }
};
}  // namespace

SqliteStore::SqliteStore(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error("cannot open store '" + path + "': " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec(
      "CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, id TEXT NOT NULL, "
      "body TEXT NOT NULL, PRIMARY KEY (kind, id))");
  exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)");
  exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0)");
}

SqliteStore::~SqliteStore() { sqlite3_close(db_); }

void SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error("store '" + path_ + "': " + msg);
  }
}

std::vector<StoredRecord> SqliteStore::load(uint64_t& generation) {
  // Anything but a row or the end is an error (a corrupt page, an I/O error): starting from the
  // records read so far would serve, and then store, part of the desired state as the whole.
  auto fail = [&](const char* what, int rc) {
    throw std::runtime_error("store '" + path_ + "': reading " + what +
                             " failed: " + sqlite3_errstr(rc) + " (" + sqlite3_errmsg(db_) + ")");
  };
  std::vector<StoredRecord> out;
  {
    Stmt st(db_, "SELECT value FROM meta WHERE key = 'generation'");
    const int rc = sqlite3_step(st.s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) fail("the generation", rc);
    generation = rc == SQLITE_ROW ? sqlite3_column_int64(st.s, 0) : 0;
  }
  Stmt st(db_, "SELECT kind, id, body FROM objects ORDER BY kind, id");
  auto text = [&](int col) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st.s, col));
    if (!p) throw std::runtime_error("store '" + path_ + "': a record has a NULL column");
    return std::string(p, static_cast<size_t>(sqlite3_column_bytes(st.s, col)));
  };
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) out.push_back({text(0), text(1), text(2)});
  if (rc != SQLITE_DONE) fail("the records", rc);
  return out;
}

void SqliteStore::commit(uint64_t generation, const std::vector<StoredRecord>& upserts,
                         const std::vector<std::pair<std::string, std::string>>& deletes) {
  exec("BEGIN IMMEDIATE");
  try {
    {
      Stmt del(db_, "DELETE FROM objects WHERE kind = ?1 AND id = ?2");
      for (const auto& [kind, id] : deletes) {
        sqlite3_bind_text(del.s, 1, kind.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(del.s, 2, id.c_str(), -1, SQLITE_TRANSIENT);
        if (sqlite3_step(del.s) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db_));
        sqlite3_reset(del.s);
      }
    }
    {
      Stmt up(db_, "INSERT OR REPLACE INTO objects (kind, id, body) VALUES (?1, ?2, ?3)");
      for (const auto& r : upserts) {
        sqlite3_bind_text(up.s, 1, r.kind.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(up.s, 2, r.id.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(up.s, 3, r.body.c_str(), -1, SQLITE_TRANSIENT);
        if (sqlite3_step(up.s) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db_));
        sqlite3_reset(up.s);
      }
    }
    {
      Stmt gen(db_, "UPDATE meta SET value = ?1 WHERE key = 'generation'");
      sqlite3_bind_int64(gen.s, 1, static_cast<sqlite3_int64>(generation));
      if (sqlite3_step(gen.s) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db_));
    }
    exec("COMMIT");
  } catch (const std::exception& e) {
    char* err = nullptr;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, &err);
    sqlite3_free(err);
    throw std::runtime_error("store '" + path_ + "' commit failed: " + e.what());
  }
}

}  // namespace cutover::controller
