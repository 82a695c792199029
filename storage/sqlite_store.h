// Store on an SQLite file in WAL mode. One connection, used under a mutex:
// every write is one short transaction (the single writer). The schema is
// versioned with PRAGMA user_version and upgraded by forward migrations when
// the file is opened.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "storage/store.h"

namespace qsweep {

struct SqliteStoreOptions {
  // File path, or ":memory:" for a private in-memory database. Required.
  std::string path;
  // PRAGMA synchronous: "FULL" survives power loss, "NORMAL" survives a crash
  // of the process (in WAL mode). Default: "FULL".
  std::string synchronous = "FULL";
  // How long a statement waits for a lock held by another process.
  // Default: 5000 ms.
  int busy_timeout_ms = 5000;
  // Upper bound on the file's size in pages (PRAGMA max_page_count; pages are
  // 4 KiB); 0 = SQLite's default. A full database refuses writes with
  // RESOURCE_EXHAUSTED and keeps serving reads. Default: 0.
  int64_t max_page_count = 0;

  explicit SqliteStoreOptions(std::string p) : path(std::move(p)) {}
};

class SqliteStore;

// Opens (creating and migrating as needed) the database, and holds an
// exclusive lock on `<path>.lock` while it is open: FAILED_PRECONDITION
// naming the file when another process (or another open store) holds it, so
// that two servers never share a database. The lock goes with the process,
// also when it is killed. INVALID_ARGUMENT for a bad option, FAILED_PRECONDITION if the file's
// schema is newer than this program knows, INTERNAL/UNAVAILABLE naming the file for SQLite errors.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteStoreOptions& options);

// The schema version this program writes.
int SqliteSchemaVersion();

}  // namespace qsweep
