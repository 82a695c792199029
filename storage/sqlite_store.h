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

  explicit SqliteStoreOptions(std::string p) : path(std::move(p)) {}
};

class SqliteStore;

// Opens (creating and migrating as needed) the database. INVALID_ARGUMENT
// for a bad option, FAILED_PRECONDITION if the file's schema is newer than
// this program knows, INTERNAL/UNAVAILABLE naming the file for SQLite errors.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteStoreOptions& options);

// The schema version this program writes.
int SqliteSchemaVersion();

}  // namespace qsweep
