// Unit tests for SqliteStore on a temp file: what is committed loads back, and a database that
// cannot be read to the end (a corrupt page) makes load() throw instead of returning the records
// before the damage as if they were all.
#include "sqlite_store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

using namespace cutover::controller;

namespace {

struct TempDb {
  std::filesystem::path dir;
  TempDb() {
    dir = std::filesystem::temp_directory_path() /
          ("cutover-sqlite-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~TempDb() { std::filesystem::remove_all(dir); }
  std::string path() const { return (dir / "c.db").string(); }
};

void fill(const std::string& path, int n) {
  SqliteStore store(path);
  std::vector<StoredRecord> recs;
  for (int i = 0; i < n; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "%06d", i);
    recs.push_back({"audit", id, std::string(300, 'a' + static_cast<char>(i % 26))});
  }
  store.commit(7, recs, {});
}  // closing the last connection checkpoints the WAL into the main file

}  // namespace

TEST(SqliteStore, LoadsWhatWasCommitted) {
  TempDb tmp;
  fill(tmp.path(), 50);
  SqliteStore store(tmp.path());
  uint64_t gen = 0;
  auto recs = store.load(gen);
  EXPECT_EQ(gen, 7u);
  ASSERT_EQ(recs.size(), 50u);
  EXPECT_EQ(recs[3].id, "000003");
  EXPECT_EQ(recs[3].body, std::string(300, 'd'));
}

TEST(SqliteStore, LoadFailsLoudlyOnACorruptPage) {
  TempDb tmp;
  fill(tmp.path(), 2000);  // ~150 pages of 4 KiB
  ASSERT_FALSE(std::filesystem::exists(tmp.path() + "-wal") &&
               std::filesystem::file_size(tmp.path() + "-wal") > 0);
  const auto size = std::filesystem::file_size(tmp.path());
  ASSERT_GT(size, 100u * 4096);
  {
    // Garbage over a leaf page in the middle of the objects table.
    std::fstream f(tmp.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>((size / 4096 / 2) * 4096));
    const std::string junk(4096, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  SqliteStore store(tmp.path());
  uint64_t gen = 0;
  try {
    auto recs = store.load(gen);
    FAIL() << "load() returned " << recs.size() << " of 2000 records from a corrupt database";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("reading the records failed"), std::string::npos)
        << e.what();
  }
}
