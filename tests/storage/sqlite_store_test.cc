#include "storage/sqlite_store.h"

#include <gmock/gmock.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "tests/storage/store_conformance.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::unique_ptr<Store> MakeMemorySqlite() {
  auto store = OpenSqliteStore(SqliteStoreOptions(":memory:"));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// A fresh file per test, under the test's temporary folder.
std::string TempDbPath(const std::string& name) {
  fs::path dir =
      fs::temp_directory_path() / ("qsweep_sqlite_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return (dir / "q.db").string();
}

std::unique_ptr<Store> MakeFileSqlite() {
  auto store = OpenSqliteStore(SqliteStoreOptions(TempDbPath("conformance")));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(SqliteMemory, StoreConformanceTest, ::testing::Values(&MakeMemorySqlite));
INSTANTIATE_TEST_SUITE_P(SqliteFile, StoreConformanceTest, ::testing::Values(&MakeFileSqlite));

// Reads one integer with the SQLite C API, independently of the store.
int64_t QueryInt(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

// Reads one text value the same way.
std::string QueryText(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
  std::string v = sqlite3_step(st) == SQLITE_ROW
                      ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0))
                      : "(no row)";
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

TEST(SqliteStoreTest, FileIsWalVersionedAndSurvivesReopen) {
  const std::string path = TempDbPath("reopen");
  {
    auto store = OpenSqliteStore(SqliteStoreOptions(path));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateSweep(TestSweep("s", "k"), {TestJob("s", 0)}).ok());
    v1::Job j = *(*store)->GetJob("s-0");
    j.set_state(v1::SUCCEEDED);
    ASSERT_TRUE((*store)->UpdateJob(j).ok());
    EXPECT_TRUE(fs::exists(path + "-wal"));
  }
  EXPECT_EQ(QueryInt(path, "PRAGMA user_version"), SqliteSchemaVersion());
  EXPECT_EQ(QueryInt(path, "SELECT count(*) FROM jobs WHERE state = 4"), 1);
  auto again = OpenSqliteStore(SqliteStoreOptions(path));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->GetJob("s-0")->state(), v1::SUCCEEDED);
  EXPECT_EQ((*again)->FindSweepByIdempotencyKey("k")->id(), "s");
}

TEST(SqliteStoreTest, ASecondOpenOfTheSameFileIsRefusedWhileTheFirstIsOpen) {
  const std::string path = TempDbPath("locked");
  {
    auto first = OpenSqliteStore(SqliteStoreOptions(path));
    ASSERT_TRUE(first.ok()) << first.status();
    auto second = OpenSqliteStore(SqliteStoreOptions(path));
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(second.status().message()), HasSubstr(path));
    EXPECT_THAT(std::string(second.status().message()), HasSubstr("another qsweep-server"));
    EXPECT_TRUE((*first)->CreateSweep(TestSweep("s", ""), {TestJob("s", 0)}).ok());
  }
  auto again = OpenSqliteStore(SqliteStoreOptions(path));  // the first one closed
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE((*again)->GetJob("s-0").ok());
}

TEST(SqliteStoreTest, AFullDatabaseRefusesWritesKeepsReadsAndStaysIntact) {
  const std::string path = TempDbPath("full");
  {
    auto store = OpenSqliteStore(SqliteStoreOptions(path));
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateSweep(TestSweep("s", ""), {TestJob("s", 0)}).ok());
  }
  SqliteStoreOptions options(path);
  options.max_page_count = QueryInt(path, "PRAGMA page_count");
  auto store = OpenSqliteStore(options);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<v1::Job> jobs;
  for (int i = 0; i < 20; ++i) {
    jobs.push_back(TestJob("big", i));
    jobs.back().set_trial_json(std::string(20000, 'x'));
  }
  absl::Status full = (*store)->CreateSweep(TestSweep("big", ""), jobs);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_THAT(std::string(full.message()), HasSubstr("the database is full"));
  v1::Metric m;
  m.set_name("loss");
  std::vector<v1::Metric> many(2000, m);
  for (int i = 0; i < 2000; ++i) many[i].set_step(i);
  EXPECT_EQ((*store)->AppendMetrics("s-0", 1, many).code(), absl::StatusCode::kResourceExhausted);
  // Reads go on; nothing of the refused writes is there.
  EXPECT_TRUE((*store)->GetJob("s-0").ok());
  EXPECT_EQ((*store)->GetSweep("big").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*store)->ListMetrics("s-0", 1, "")->empty());
  store->reset();
  EXPECT_EQ(QueryText(path, "PRAGMA integrity_check"), "ok");
}

TEST(SqliteStoreTest, RejectsNewerSchema) {
  const std::string path = TempDbPath("newer");
  ASSERT_TRUE(OpenSqliteStore(SqliteStoreOptions(path)).ok());
  QueryInt(path, "PRAGMA user_version = 99");
  auto store = OpenSqliteStore(SqliteStoreOptions(path));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("99"));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(path));
}

TEST(SqliteStoreTest, BadOptionsAndPathsAreErrors) {
  SqliteStoreOptions sync(":memory:");
  sync.synchronous = "OFF";
  auto s1 = OpenSqliteStore(sync);
  EXPECT_EQ(s1.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s1.status().message()), HasSubstr("allowed: FULL, NORMAL"));
  EXPECT_EQ(OpenSqliteStore(SqliteStoreOptions("")).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto s3 = OpenSqliteStore(SqliteStoreOptions("/nonexistent-dir/x/q.db"));
  EXPECT_FALSE(s3.ok());
  EXPECT_THAT(std::string(s3.status().message()), HasSubstr("/nonexistent-dir/x/q.db"));
}

TEST(SqliteStoreTest, GarbageFileIsAnError) {
  const std::string path = TempDbPath("garbage");
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    std::fputs("this is not a database file, not at all, no sir.........", f);
    std::fclose(f);
  }
  auto store = OpenSqliteStore(SqliteStoreOptions(path));
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(path));
}

}  // namespace
}  // namespace qsweep
