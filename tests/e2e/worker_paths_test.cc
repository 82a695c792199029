// Worker folders (security issue, section 2): each attempt's folder is made
// by mkdtemp under the worker's work dir (or $TMPDIR), never a predictable
// name, and a job id from the server becomes part of a path only once it is
// checked: a bad one fails the job with a clear error and touches nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/coordinator_client.h"
#include "worker/worker.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Hands out one lease for `job_id`, then nothing; records how it ended.
class ScriptedClient final : public CoordinatorClient {
 public:
  explicit ScriptedClient(std::string job_id) : job_id_(std::move(job_id)) {}
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest&) override {
    v1::RegisterResponse r;
    r.set_worker_id("w-1");
    r.set_heartbeat_interval_ms(20);
    return r;
  }
  absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& req) override {
    v1::LeaseResponse r;
    std::unique_lock<std::mutex> lock(mu_);
    if (!leased_) {
      leased_ = true;
      v1::GrantedLease* l = r.add_leases();
      l->set_lease_id("lease-1");
      l->set_epoch(1);
      l->mutable_job()->set_id(job_id_);
      l->mutable_job()->set_attempt(1);
      l->mutable_job()->set_kind(v1::TRAIN);
      return r;
    }
    // A long poll with no work: returns when the wait ends or the job ended.
    cv_.wait_for(lock, std::chrono::milliseconds(req.wait_ms()), [&] { return ended_; });
    return r;
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest&) override {
    return v1::HeartbeatResponse();
  }
  absl::Status Complete(const v1::CompleteRequest&) override { return End(""); }
  absl::Status Fail(const v1::FailRequest& r) override { return End("failed: " + r.error()); }
  absl::Status UploadArtifact(const std::string&, int64_t, const v1::ArtifactInfo&,
                              const std::string&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> FetchArtifact(const std::string&) override {
    return absl::NotFoundError("none");
  }
  // Blocks until the job was reported; returns "" (completed) or "failed: ...".
  std::string WaitEnded() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return ended_; });
    return outcome_;
  }

 private:
  absl::Status End(const std::string& outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    outcome_ = outcome;
    ended_ = true;
    cv_.notify_all();
    return absl::OkStatus();
  }
  std::string job_id_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool leased_ = false, ended_ = false;
  std::string outcome_;
};

// Records the folder it was given.
class RecordingRunner final : public JobRunner {
 public:
  JobOutcome Run(const v1::Job&, JobContext& ctx) override {
    work_dir = ctx.WorkDir();
    struct stat st {};
    if (stat(work_dir.c_str(), &st) == 0) mode = st.st_mode & 0777;
    ran = true;
    JobOutcome o;
    o.kind = JobOutcome::Kind::kSucceeded;
    return o;
  }
  bool ran = false;
  std::string work_dir;
  unsigned mode = 0;
};

// Runs a worker until its one job was reported; returns the outcome.
std::string RunOneJob(const std::string& job_id, const std::string& work_dir,
                      RecordingRunner& runner) {
  ScriptedClient client(job_id);
  WorkerOptions options;
  options.work_dir = work_dir;
  options.lease_wait_ms = 50;
  options.heartbeat_interval_ms = 20;
  options.report_attempts = 1;
  Worker worker(client, runner, options);
  std::thread t([&] { EXPECT_TRUE(worker.Run().ok()); });
  std::string outcome = client.WaitEnded();
  worker.Stop();
  t.join();
  return outcome;
}

class WorkerPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / absl::StrCat("qsweep_worker_paths_", getpid());
    fs::remove_all(root_);
    fs::create_directories(root_ / "a" / "b" / "work");
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(WorkerPathsTest, BadJobIdsFailWithoutTouchingTheFilesystem) {
  const fs::path work = root_ / "a" / "b" / "work";
  for (const std::string& id :
       {std::string("../../escaped"), std::string("a/b"), std::string(".hidden"), std::string(".."),
        std::string("x\ny"), std::string(""), std::string(300, 'x')}) {
    RecordingRunner runner;
    const std::string outcome = RunOneJob(id, work.string(), runner);
    EXPECT_THAT(outcome, HasSubstr("job id")) << id;
    EXPECT_FALSE(runner.ran) << id;
    // Nothing was made in it (the worker removes it when it stops, if empty).
    EXPECT_TRUE(!fs::exists(work) || fs::is_empty(work)) << id;
  }
  EXPECT_FALSE(fs::exists(root_ / "a" / "escaped-attempt1"));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(root_ / "a")) left.push_back(e.path().string());
  EXPECT_EQ(left, std::vector<std::string>{(root_ / "a" / "b").string()});
}

TEST_F(WorkerPathsTest, AttemptFoldersAreFreshAndPrivate) {
  const fs::path work = root_ / "a" / "b" / "work";
  // Someone else prepared the name the folder used to have.
  fs::create_directories(root_ / "elsewhere");
  fs::create_directory_symlink(root_ / "elsewhere", work / "sw-1-0-attempt1");
  RecordingRunner runner;
  EXPECT_EQ(RunOneJob("sw-1-0", work.string(), runner), "");
  ASSERT_TRUE(runner.ran);
  EXPECT_EQ(fs::path(runner.work_dir).parent_path(), work);
  EXPECT_THAT(fs::path(runner.work_dir).filename().string(), StartsWith("sw-1-0-attempt1-"));
  EXPECT_EQ(fs::path(runner.work_dir).filename().string().size(),
            std::string("sw-1-0-attempt1-XXXXXX").size());
  EXPECT_EQ(runner.mode, 0700u);
  EXPECT_FALSE(fs::exists(runner.work_dir));  // removed after the job
}

TEST_F(WorkerPathsTest, DefaultWorkDirIsMadeByMkdtempUnderTmpdir) {
  const char* old = std::getenv("TMPDIR");
  const std::string saved = old ? old : "";
  setenv("TMPDIR", (root_ / "tmp").c_str(), 1);
  fs::create_directories(root_ / "tmp");
  // The name the work dir used to have, prepared by someone else.
  fs::create_directories(root_ / "tmp" / absl::StrCat("qsweep-worker-", getpid()));
  RecordingRunner runner;
  EXPECT_EQ(RunOneJob("sw-2-0", "", runner), "");
  if (old)
    setenv("TMPDIR", saved.c_str(), 1);
  else
    unsetenv("TMPDIR");
  ASSERT_TRUE(runner.ran);
  const fs::path parent = fs::path(runner.work_dir).parent_path();
  EXPECT_EQ(parent.parent_path(), root_ / "tmp");
  EXPECT_THAT(parent.filename().string(), StartsWith("qsweep-worker-"));
  EXPECT_NE(parent.filename().string(), absl::StrCat("qsweep-worker-", getpid()));
  EXPECT_FALSE(fs::exists(parent));  // made by this worker, removed when it stops
}

TEST(SafeIdTest, Charset) {
  EXPECT_TRUE(IsSafeId("sw-0123abcd-17"));
  EXPECT_TRUE(IsSafeId("job_1.2"));
  for (const char* bad : {"", ".", "..", ".x", "a/b", "a\\b", "a b", "a\nb", "ä"})
    EXPECT_FALSE(IsSafeId(bad)) << bad;
  EXPECT_FALSE(IsSafeId(std::string(129, 'a')));
}

}  // namespace
}  // namespace qsweep
