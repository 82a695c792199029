#include "storage/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace qsweep {
namespace {

// Forward migrations; schema version N is reached by running entries [0, N).
// Append only: never edit a migration that has shipped.
const std::vector<const char*>& Migrations() {
  static const std::vector<const char*> kMigrations = {
      R"sql(
CREATE TABLE sweeps (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  idempotency_key TEXT UNIQUE,
  data BLOB NOT NULL);
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  sweep_id TEXT NOT NULL,
  idx INTEGER NOT NULL,
  state INTEGER NOT NULL,
  data BLOB NOT NULL);
CREATE INDEX jobs_by_sweep ON jobs(sweep_id, idx);
CREATE INDEX jobs_by_state ON jobs(state);
CREATE TABLE attempts (
  job_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (job_id, number));
CREATE TABLE metrics (
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  name TEXT NOT NULL,
  step INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (job_id, attempt, name, step)) WITHOUT ROWID;
CREATE TABLE artifacts (
  sha256 TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  size INTEGER NOT NULL,
  data BLOB NOT NULL);
CREATE TABLE job_artifacts (
  job_id TEXT NOT NULL,
  name TEXT NOT NULL,
  info BLOB NOT NULL,
  PRIMARY KEY (job_id, name));
CREATE TABLE reports (
  job_id TEXT NOT NULL,
  pass_name TEXT NOT NULL,
  json TEXT NOT NULL,
  text TEXT NOT NULL,
  PRIMARY KEY (job_id, pass_name));
CREATE TABLE workers (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  data BLOB NOT NULL);
)sql",
      // 2: bearer tokens (only their SHA-256 is stored).
      R"sql(
CREATE TABLE tokens (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  data BLOB NOT NULL);
)sql",
      // 3: per-epoch resume states, one per job (replaced by each upload).
      R"sql(
CREATE TABLE resume_states (
  job_id TEXT PRIMARY KEY,
  info BLOB NOT NULL,
  data BLOB NOT NULL);
)sql",
  };
  return kMigrations;
}

// The status for an SQLite result code. A full or read-only database is
// named as such: writes are refused, reads go on, nothing is half-written.
absl::Status SqliteError(int rc, const std::string& what) {
  std::string msg = absl::StrCat("sqlite: ", what);
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(absl::StrCat(
          "the database is full (disk or its size limit): it takes no new work or results "
          "until space is freed; reads still work (",
          msg, ")"));
    case SQLITE_READONLY:
      return absl::FailedPreconditionError(absl::StrCat(
          "the database is read-only: it takes no new work or results; reads still work (", msg,
          ")"));
    default:
      return absl::InternalError(msg);
  }
}

// Prepared statements by SQL text, kept for the life of the connection:
// preparing costs more than running the small statements the scheduler
// issues per call. Used under the store's lock only.
class StmtCache {
 public:
  explicit StmtCache(sqlite3* db) : db_(db) {}
  ~StmtCache() { Clear(); }
  StmtCache(const StmtCache&) = delete;
  StmtCache& operator=(const StmtCache&) = delete;
  sqlite3* db() const { return db_; }
  // A statement for `sql` not in use by another Stmt (prepared on first use),
  // or nullptr when the cached one is in use: the caller prepares its own.
  sqlite3_stmt* Acquire(const char* sql, int* rc) {
    auto [it, inserted] = entries_.try_emplace(sql);
    Entry& e = it->second;
    if (inserted) {
      *rc = sqlite3_prepare_v2(db_, sql, -1, &e.stmt, nullptr);
      if (*rc != SQLITE_OK) {
        sqlite3_finalize(e.stmt);
        entries_.erase(it);
        return nullptr;
      }
    } else if (e.busy) {
      return nullptr;
    }
    *rc = SQLITE_OK;
    e.busy = true;
    return e.stmt;
  }
  void Release(const char* sql) { entries_.at(sql).busy = false; }
  void Clear() {
    for (auto& [sql, e] : entries_) sqlite3_finalize(e.stmt);
    entries_.clear();
  }

 private:
  struct Entry {
    sqlite3_stmt* stmt = nullptr;
    bool busy = false;
  };
  sqlite3* db_;
  std::unordered_map<std::string, Entry> entries_;
};

// A prepared statement: from the connection's cache (reset and unbound on
// destruction), or its own when the cached one is in use (finalized).
class Stmt {
 public:
  Stmt(StmtCache& cache, const char* sql) : db_(cache.db()) {
    stmt_ = cache.Acquire(sql, &rc_);
    if (stmt_ != nullptr) {
      cache_ = &cache;
      sql_ = sql;
    } else if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr);
    }
  }
  ~Stmt() {
    if (cache_ == nullptr) {
      sqlite3_finalize(stmt_);
      return;
    }
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    cache_->Release(sql_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Sizes are bound as 64-bit (no int truncation of large values).
  Stmt& Text(int i, const std::string& s) {
    Bound(sqlite3_bind_text64(stmt_, i, s.data(), static_cast<sqlite3_uint64>(s.size()),
                              SQLITE_TRANSIENT, SQLITE_UTF8));
    return *this;
  }
  Stmt& TextOrNull(int i, const std::string& s) {
    if (s.empty())
      sqlite3_bind_null(stmt_, i);
    else
      Text(i, s);
    return *this;
  }
  Stmt& Blob(int i, const std::string& s) {
    Bound(sqlite3_bind_blob64(stmt_, i, s.data(), static_cast<sqlite3_uint64>(s.size()),
                              SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& Int(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& Real(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  // True while a row is available; false at the end. Errors go to status().
  bool Next() {
    if (rc_ != SQLITE_OK && rc_ != SQLITE_ROW) return false;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
      rc_ = SQLITE_ROW;
      return true;
    }
    rc_ = (rc == SQLITE_DONE) ? SQLITE_OK : rc;
    return false;
  }
  absl::Status Run() {
    while (Next()) {
    }
    return status();
  }
  absl::Status status() const {
    if (rc_ == SQLITE_OK || rc_ == SQLITE_ROW) return absl::OkStatus();
    return SqliteError(rc_, sqlite3_errmsg(db_));
  }
  std::string ColumnBytes(int i) const {
    const void* p = sqlite3_column_blob(stmt_, i);
    int n = sqlite3_column_bytes(stmt_, i);
    return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
  }
  // Makes the statement ready to be bound and run again.
  void Reset() {
    sqlite3_reset(stmt_);
    rc_ = SQLITE_OK;
  }
  int64_t ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  double ColumnReal(int i) const { return sqlite3_column_double(stmt_, i); }

 private:
  // A failed bind (e.g. SQLITE_TOOBIG) fails the statement instead of storing NULL.
  void Bound(int rc) {
    if (rc != SQLITE_OK && (rc_ == SQLITE_OK || rc_ == SQLITE_ROW)) rc_ = rc;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
  StmtCache* cache_ = nullptr;  // set when stmt_ is the cache's
  const char* sql_ = nullptr;
};

template <typename Msg>
absl::StatusOr<Msg> Parse(const std::string& bytes, const char* what) {
  Msg m;
  if (!m.ParseFromString(bytes))
    return absl::DataLossError(absl::StrCat("stored ", what, " does not parse"));
  return m;
}

class SqliteStoreImpl final : public Store {
 public:
  explicit SqliteStoreImpl(sqlite3* db) : db_(db), stmts_(db) {}
  ~SqliteStoreImpl() override {
    stmts_.Clear();
    sqlite3_close_v2(db_);
    if (lock_fd_ >= 0) close(lock_fd_);  // releases the lock
  }

  // Takes the exclusive lock of the database's lock file `<path>.lock`, held
  // until the store is closed or the process ends (also by a crash).
  void TakeLock(SqliteStoreImpl& other) { std::swap(lock_fd_, other.lock_fd_); }
  absl::Status Lock(const std::string& path) {
    const std::string lock_path = path + ".lock";
    lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0)
      return absl::UnavailableError(
          absl::StrCat("cannot open lock file '", lock_path, "': ", std::strerror(errno)));
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (err == EWOULDBLOCK)
        return absl::FailedPreconditionError(absl::StrCat(
            "database '", path, "' is in use by another process (it holds '", lock_path,
            "'); is another qsweep-server running on it? Only one server may use a database"));
      return absl::UnavailableError(
          absl::StrCat("cannot lock '", lock_path, "': ", std::strerror(err)));
    }
    return absl::OkStatus();
  }

  absl::Status Exec(const std::string& sql) {
    char* err = nullptr;
    if (int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err); rc != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      return SqliteError(rc, absl::StrCat(msg, " (in: ", sql.substr(0, 60), ")"));
    }
    return absl::OkStatus();
  }

  // Runs `body` in one IMMEDIATE transaction; rolls back on error. Inside a
  // batch (BeginBatch), in a savepoint of the batch's transaction instead: an
  // error undoes this call's writes only, and nothing is durable before
  // EndBatch commits.
  // Runs one statement of fixed text through the statement cache.
  absl::Status Step(const char* sql) { return Stmt(stmts_, sql).Run(); }

  template <typename F>
  absl::Status InTransaction(F&& body) {
    if (in_batch_) {
      QSWEEP_RETURN_IF_ERROR(Step("SAVEPOINT call"));
      absl::Status s = body();
      if (!s.ok()) {
        Step("ROLLBACK TO call").IgnoreError();
        Step("RELEASE call").IgnoreError();
        return s;
      }
      return Step("RELEASE call");
    }
    QSWEEP_RETURN_IF_ERROR(Step("BEGIN IMMEDIATE"));
    absl::Status s = body();
    if (!s.ok()) {
      Step("ROLLBACK").IgnoreError();
      return s;
    }
    return Step("COMMIT");
  }

  // Group commit: one transaction (one fsync with synchronous = FULL) for
  // every write until EndBatch. The calling thread holds the store's lock
  // from BeginBatch to EndBatch, so calls from other threads wait and never
  // land in (or read) an uncommitted batch.
  absl::Status BeginBatch() override {
    mu_.lock();
    if (in_batch_) {
      mu_.unlock();
      return absl::FailedPreconditionError("sqlite store: a batch is already open");
    }
    absl::Status s = Exec("BEGIN IMMEDIATE");
    if (!s.ok()) {
      mu_.unlock();
      return s;
    }
    in_batch_ = true;
    return absl::OkStatus();
  }

  absl::Status EndBatch() override {
    if (!in_batch_) return absl::FailedPreconditionError("sqlite store: no batch is open");
    in_batch_ = false;
    absl::Status s = Exec("COMMIT");
    if (!s.ok()) Exec("ROLLBACK").IgnoreError();
    mu_.unlock();  // taken by BeginBatch
    return s;
  }

  absl::Status Migrate() {
    Stmt v(stmts_, "PRAGMA user_version");
    int64_t version = v.Next() ? v.ColumnInt(0) : 0;
    QSWEEP_RETURN_IF_ERROR(v.status());
    const auto& migrations = Migrations();
    if (version > static_cast<int64_t>(migrations.size()))
      return absl::FailedPreconditionError(absl::StrCat("database schema version ", version,
                                                        " is newer than this program's (",
                                                        migrations.size(), ")"));
    for (size_t i = static_cast<size_t>(version); i < migrations.size(); ++i) {
      absl::Status migrated = InTransaction([&] {
        QSWEEP_RETURN_IF_ERROR(Exec(migrations[i]));
        return Exec(absl::StrCat("PRAGMA user_version = ", i + 1));
      });
      if (!migrated.ok()) return migrated;
    }
    return absl::OkStatus();
  }

  absl::Status CreateSweep(const v1::Sweep& sweep, const std::vector<v1::Job>& jobs) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&]() -> absl::Status {
      {
        Stmt s(stmts_, "INSERT INTO sweeps(id, idempotency_key, data) VALUES (?, ?, ?)");
        s.Text(1, sweep.id())
            .TextOrNull(2, sweep.idempotency_key())
            .Blob(3, sweep.SerializeAsString());
        QSWEEP_RETURN_IF_ERROR(s.Run());
      }
      for (const auto& j : jobs) {
        Stmt s(stmts_, "INSERT INTO jobs(id, sweep_id, idx, state, data) VALUES (?, ?, ?, ?, ?)");
        s.Text(1, j.id())
            .Text(2, j.sweep_id())
            .Int(3, j.index())
            .Int(4, j.state())
            .Blob(5, j.SerializeAsString());
        QSWEEP_RETURN_IF_ERROR(s.Run());
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<v1::Sweep> GetSweep(const std::string& id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT data FROM sweeps WHERE id = ?");
    s.Text(1, id);
    if (s.Next()) return Parse<v1::Sweep>(s.ColumnBytes(0), "sweep");
    QSWEEP_RETURN_IF_ERROR(s.status());
    return absl::NotFoundError(absl::StrCat("no sweep '", id, "'"));
  }

  absl::StatusOr<v1::Sweep> FindSweepByIdempotencyKey(const std::string& key) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT data FROM sweeps WHERE idempotency_key = ?");
    s.Text(1, key);
    if (!key.empty() && s.Next()) return Parse<v1::Sweep>(s.ColumnBytes(0), "sweep");
    QSWEEP_RETURN_IF_ERROR(s.status());
    return absl::NotFoundError(absl::StrCat("no sweep with idempotency key '", key, "'"));
  }

  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps() override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT data FROM sweeps ORDER BY seq");
    return Collect<v1::Sweep>(s, "sweep");
  }

  absl::Status UpdateJob(const v1::Job& job) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&] { return UpdateJobLocked(job); });
  }

  absl::Status UpdateJobAndAttempt(const v1::Job& job, const v1::Attempt& attempt) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&]() -> absl::Status {
      QSWEEP_RETURN_IF_ERROR(UpdateJobLocked(job));
      Stmt s(stmts_, "INSERT OR REPLACE INTO attempts(job_id, number, data) VALUES (?, ?, ?)");
      s.Text(1, attempt.job_id()).Int(2, attempt.number()).Blob(3, attempt.SerializeAsString());
      return s.Run();
    });
  }

  absl::Status UpdateJobs(const std::vector<JobUpdate>& updates,
                          const v1::Attempt* attempt) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&]() -> absl::Status {
      for (const auto& u : updates) {
        Stmt get(stmts_, "SELECT data FROM jobs WHERE id = ?");
        get.Text(1, u.job.id());
        if (!get.Next()) {
          QSWEEP_RETURN_IF_ERROR(get.status());
          return absl::NotFoundError(absl::StrCat("no job '", u.job.id(), "'"));
        }
        QSWEEP_ASSIGN_OR_RETURN(v1::Job stored, Parse<v1::Job>(get.ColumnBytes(0), "job"));
        QSWEEP_RETURN_IF_ERROR(CheckExpected(stored, u));
        QSWEEP_RETURN_IF_ERROR(UpdateJobLocked(u.job));
      }
      if (attempt == nullptr) return absl::OkStatus();
      Stmt s(stmts_, "INSERT OR REPLACE INTO attempts(job_id, number, data) VALUES (?, ?, ?)");
      s.Text(1, attempt->job_id()).Int(2, attempt->number()).Blob(3, attempt->SerializeAsString());
      return s.Run();
    });
  }

  absl::StatusOr<v1::Job> GetJob(const std::string& id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT data FROM jobs WHERE id = ?");
    s.Text(1, id);
    if (s.Next()) return Parse<v1::Job>(s.ColumnBytes(0), "job");
    QSWEEP_RETURN_IF_ERROR(s.status());
    return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  }

  absl::StatusOr<std::vector<v1::Job>> ListJobs(const JobFilter& filter) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_,
           "SELECT j.data, j.state FROM jobs j JOIN sweeps s ON s.id = j.sweep_id "
           "WHERE (?1 = '' OR j.sweep_id = ?1) ORDER BY s.seq, j.idx");
    s.Text(1, filter.sweep_id);
    std::vector<v1::Job> out;
    while (s.Next()) {
      bool state_ok = filter.states.empty();
      for (auto st : filter.states) state_ok |= (st == s.ColumnInt(1));
      if (!state_ok) continue;
      QSWEEP_ASSIGN_OR_RETURN(v1::Job j, Parse<v1::Job>(s.ColumnBytes(0), "job"));
      out.push_back(std::move(j));
    }
    QSWEEP_RETURN_IF_ERROR(s.status());
    return out;
  }

  absl::StatusOr<std::vector<v1::Attempt>> ListAttempts(const std::string& job_id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT data FROM attempts WHERE job_id = ? ORDER BY number");
    s.Text(1, job_id);
    return Collect<v1::Attempt>(s, "attempt");
  }

  absl::Status AppendMetrics(const std::string& job_id, int32_t attempt,
                             const std::vector<v1::Metric>& metrics) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&]() -> absl::Status {
      Stmt s(stmts_,
             "INSERT OR REPLACE INTO metrics(job_id, attempt, name, step, epoch, value) "
             "VALUES (?, ?, ?, ?, ?, ?)");
      for (const auto& m : metrics) {
        s.Text(1, job_id)
            .Int(2, attempt)
            .Text(3, m.name())
            .Int(4, m.step())
            .Int(5, m.epoch())
            .Real(6, m.value());
        QSWEEP_RETURN_IF_ERROR(s.Run());
        s.Reset();
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<v1::Metric>> ListMetrics(const std::string& job_id, int32_t attempt,
                                                      const std::string& name) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_,
           "SELECT name, step, epoch, value FROM metrics WHERE job_id = ?1 AND attempt = ?2 "
           "AND (?3 = '' OR name = ?3) ORDER BY name, step");
    s.Text(1, job_id).Int(2, attempt).Text(3, name);
    std::vector<v1::Metric> out;
    while (s.Next()) {
      v1::Metric m;
      m.set_name(s.ColumnBytes(0));
      m.set_step(s.ColumnInt(1));
      m.set_epoch(s.ColumnInt(2));
      m.set_value(s.ColumnReal(3));
      out.push_back(std::move(m));
    }
    QSWEEP_RETURN_IF_ERROR(s.status());
    return out;
  }

  absl::Status PutArtifact(const v1::ArtifactInfo& info, const std::string& bytes) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&]() -> absl::Status {
      Stmt s(stmts_,
             "INSERT OR IGNORE INTO artifacts(sha256, kind, size, data) VALUES (?, ?, ?, ?)");
      s.Text(1, info.sha256())
          .Text(2, info.kind())
          .Int(3, static_cast<int64_t>(bytes.size()))
          .Blob(4, bytes);
      QSWEEP_RETURN_IF_ERROR(s.Run());
      if (info.job_id().empty()) return absl::OkStatus();
      Stmt l(stmts_, "INSERT OR REPLACE INTO job_artifacts(job_id, name, info) VALUES (?, ?, ?)");
      l.Text(1, info.job_id()).Text(2, info.name()).Blob(3, info.SerializeAsString());
      return l.Run();
    });
  }

  absl::Status LinkArtifact(const v1::ArtifactInfo& info) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&]() -> absl::Status {
      Stmt s(stmts_, "SELECT 1 FROM artifacts WHERE sha256 = ?");
      s.Text(1, info.sha256());
      const bool have = s.Next();
      QSWEEP_RETURN_IF_ERROR(s.status());
      if (!have) return absl::NotFoundError(absl::StrCat("no artifact ", info.sha256()));
      Stmt l(stmts_, "INSERT OR REPLACE INTO job_artifacts(job_id, name, info) VALUES (?, ?, ?)");
      l.Text(1, info.job_id()).Text(2, info.name()).Blob(3, info.SerializeAsString());
      return l.Run();
    });
  }

  absl::Status PutResumeState(const v1::ArtifactInfo& info, const std::string& bytes) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&] {
      Stmt s(stmts_, "INSERT OR REPLACE INTO resume_states(job_id, info, data) VALUES (?, ?, ?)");
      s.Text(1, info.job_id()).Blob(2, info.SerializeAsString()).Blob(3, bytes);
      return s.Run();
    });
  }

  absl::StatusOr<std::string> GetResumeState(const std::string& job_id,
                                             v1::ArtifactInfo* info) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT info, data FROM resume_states WHERE job_id = ?");
    s.Text(1, job_id);
    if (s.Next()) {
      if (info) {
        QSWEEP_ASSIGN_OR_RETURN(*info, Parse<v1::ArtifactInfo>(s.ColumnBytes(0), "resume state"));
      }
      return s.ColumnBytes(1);
    }
    QSWEEP_RETURN_IF_ERROR(s.status());
    return absl::NotFoundError(absl::StrCat("job '", job_id, "' has no resume state"));
  }

  absl::Status DeleteResumeState(const std::string& job_id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&] {
      Stmt s(stmts_, "DELETE FROM resume_states WHERE job_id = ?");
      s.Text(1, job_id);
      return s.Run();
    });
  }

  absl::StatusOr<std::string> GetArtifactBytes(const std::string& sha256) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT data FROM artifacts WHERE sha256 = ?");
    s.Text(1, sha256);
    if (s.Next()) return s.ColumnBytes(0);
    QSWEEP_RETURN_IF_ERROR(s.status());
    return absl::NotFoundError(absl::StrCat("no artifact ", sha256));
  }

  absl::StatusOr<v1::ArtifactInfo> FindArtifact(const std::string& job_id,
                                                const std::string& name) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT info FROM job_artifacts WHERE job_id = ? AND name = ?");
    s.Text(1, job_id).Text(2, name);
    if (s.Next()) return Parse<v1::ArtifactInfo>(s.ColumnBytes(0), "artifact");
    QSWEEP_RETURN_IF_ERROR(s.status());
    return absl::NotFoundError(absl::StrCat("job '", job_id, "' has no artifact '", name, "'"));
  }

  absl::StatusOr<std::vector<v1::ArtifactInfo>> ListArtifacts(const std::string& job_id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT info FROM job_artifacts WHERE job_id = ? ORDER BY name");
    s.Text(1, job_id);
    return Collect<v1::ArtifactInfo>(s, "artifact");
  }

  absl::Status PutReport(const v1::Report& r) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&] {
      Stmt s(stmts_,
             "INSERT OR REPLACE INTO reports(job_id, pass_name, json, text) VALUES (?, ?, ?, ?)");
      s.Text(1, r.job_id()).Text(2, r.pass_name()).Text(3, r.json()).Text(4, r.text());
      return s.Run();
    });
  }

  absl::StatusOr<v1::Report> GetReport(const std::string& job_id,
                                       const std::string& pass_name) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT json, text FROM reports WHERE job_id = ? AND pass_name = ?");
    s.Text(1, job_id).Text(2, pass_name);
    if (s.Next()) {
      v1::Report r;
      r.set_job_id(job_id);
      r.set_pass_name(pass_name);
      r.set_json(s.ColumnBytes(0));
      r.set_text(s.ColumnBytes(1));
      return r;
    }
    QSWEEP_RETURN_IF_ERROR(s.status());
    return absl::NotFoundError(
        absl::StrCat("job '", job_id, "' has no report of pass '", pass_name, "'"));
  }

  absl::Status PutWorker(const v1::WorkerInfo& w) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&] {
      Stmt s(stmts_,
             "INSERT INTO workers(id, data) VALUES (?, ?) "
             "ON CONFLICT(id) DO UPDATE SET data = excluded.data");
      s.Text(1, w.id()).Blob(2, w.SerializeAsString());
      return s.Run();
    });
  }

  absl::StatusOr<std::vector<v1::WorkerInfo>> ListWorkers() override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT data FROM workers ORDER BY seq");
    return Collect<v1::WorkerInfo>(s, "worker");
  }

  absl::Status DeleteWorker(const std::string& worker_id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&] {
      Stmt s(stmts_, "DELETE FROM workers WHERE id = ?");
      s.Text(1, worker_id);
      return s.Run();
    });
  }

  absl::Status CreateToken(const v1::Token& token) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return InTransaction([&] {
      Stmt s(stmts_, "INSERT INTO tokens(id, data) VALUES (?, ?)");
      s.Text(1, token.id()).Blob(2, token.SerializeAsString());
      return s.Run();
    });
  }

  absl::StatusOr<v1::Token> GetToken(const std::string& id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT data FROM tokens WHERE id = ?");
    s.Text(1, id);
    if (s.Next()) return Parse<v1::Token>(s.ColumnBytes(0), "token");
    QSWEEP_RETURN_IF_ERROR(s.status());
    return absl::NotFoundError(absl::StrCat("no token '", id, "'"));
  }

  absl::StatusOr<std::vector<v1::Token>> ListTokens() override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Stmt s(stmts_, "SELECT data FROM tokens ORDER BY seq");
    return Collect<v1::Token>(s, "token");
  }

  absl::StatusOr<bool> RevokeToken(const std::string& id, int64_t at_unix_ms) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    bool revoked = false;
    absl::Status st = InTransaction([&]() -> absl::Status {
      Stmt get(stmts_, "SELECT data FROM tokens WHERE id = ?");
      get.Text(1, id);
      if (!get.Next()) {
        QSWEEP_RETURN_IF_ERROR(get.status());
        return absl::NotFoundError(absl::StrCat("no token '", id, "'"));
      }
      QSWEEP_ASSIGN_OR_RETURN(v1::Token token, Parse<v1::Token>(get.ColumnBytes(0), "token"));
      if (token.revoked_unix_ms() != 0) return absl::OkStatus();
      token.set_revoked_unix_ms(at_unix_ms);
      Stmt put(stmts_, "UPDATE tokens SET data = ? WHERE id = ?");
      put.Blob(1, token.SerializeAsString()).Text(2, id);
      QSWEEP_RETURN_IF_ERROR(put.Run());
      revoked = true;
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return revoked;
  }

 private:
  absl::Status UpdateJobLocked(const v1::Job& job) {
    Stmt s(stmts_, "UPDATE jobs SET state = ?, data = ? WHERE id = ?");
    s.Int(1, job.state()).Blob(2, job.SerializeAsString()).Text(3, job.id());
    QSWEEP_RETURN_IF_ERROR(s.Run());
    if (sqlite3_changes(db_) == 0)
      return absl::NotFoundError(absl::StrCat("no job '", job.id(), "'"));
    return absl::OkStatus();
  }

  template <typename Msg>
  absl::StatusOr<std::vector<Msg>> Collect(Stmt& s, const char* what) {
    std::vector<Msg> out;
    while (s.Next()) {
      QSWEEP_ASSIGN_OR_RETURN(Msg m, Parse<Msg>(s.ColumnBytes(0), what));
      out.push_back(std::move(m));
    }
    QSWEEP_RETURN_IF_ERROR(s.status());
    return out;
  }

  std::recursive_mutex mu_;  // recursive: a batch holds it across calls
  sqlite3* db_;              // owned; used only under mu_
  StmtCache stmts_;          // db_'s prepared statements; used only under mu_
  bool in_batch_ = false;    // guarded by mu_
  int lock_fd_ = -1;
};

absl::Status CheckOptions(const SqliteStoreOptions& o) {
  if (o.path.empty()) return absl::InvalidArgumentError("sqlite store: path is empty");
  if (o.synchronous != "FULL" && o.synchronous != "NORMAL")
    return absl::InvalidArgumentError(
        absl::StrCat("sqlite store: synchronous is '", o.synchronous, "'; allowed: FULL, NORMAL"));
  if (o.max_page_count < 0)
    return absl::InvalidArgumentError("sqlite store: max_page_count must be >= 0");
  if (o.busy_timeout_ms < 0)
    return absl::InvalidArgumentError("sqlite store: busy_timeout_ms must be >= 0");
  return absl::OkStatus();
}

}  // namespace

int SqliteSchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteStoreOptions& options) {
  QSWEEP_RETURN_IF_ERROR(CheckOptions(options));
  auto unopened = std::make_unique<SqliteStoreImpl>(nullptr);
  if (options.path != ":memory:") QSWEEP_RETURN_IF_ERROR(unopened->Lock(options.path));
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(options.path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  auto store = std::make_unique<SqliteStoreImpl>(db);  // closes db on every path
  store->TakeLock(*unopened);
  if (rc != SQLITE_OK)
    return absl::UnavailableError(absl::StrCat("cannot open database '", options.path,
                                               "': ", db ? sqlite3_errmsg(db) : "out of memory"));
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  auto with_path = [&](absl::Status s) {
    return s.ok() ? s
                  : absl::Status(s.code(),
                                 absl::StrCat("database '", options.path, "': ", s.message()));
  };
  QSWEEP_RETURN_IF_ERROR(with_path(store->Exec("PRAGMA journal_mode = WAL")));
  QSWEEP_RETURN_IF_ERROR(
      with_path(store->Exec(absl::StrCat("PRAGMA synchronous = ", options.synchronous))));
  QSWEEP_RETURN_IF_ERROR(with_path(store->Exec("PRAGMA foreign_keys = ON")));
  if (options.max_page_count > 0)
    QSWEEP_RETURN_IF_ERROR(
        with_path(store->Exec(absl::StrCat("PRAGMA max_page_count = ", options.max_page_count))));
  QSWEEP_RETURN_IF_ERROR(with_path(store->Migrate()));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace qsweep
