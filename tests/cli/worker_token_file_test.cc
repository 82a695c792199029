// qsweep-worker reads its token from a file that only its owner (and, for a
// Kubernetes Secret mounted with fsGroup, its group) may read: 0600/0400 and
// 0640/0440 are accepted, a file others may read or the group may write is
// refused naming its mode. Each run stops at a start-up error right after the
// token is read (a missing --tls-ca file), so no server is needed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/secrets.h"
#include "tests/common/subprocess.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kWorker = std::string(QSWEEP_BINARY_DIR) + "/qsweep-worker";

class WorkerTokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("qsweep_worker_token_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    token_ = (dir_ / "token").string();
    ASSERT_TRUE(WriteSecretFile(token_, MintToken().secret + "\n").ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  testing::ProcessResult RunWorkerWithMode(mode_t mode) {
    EXPECT_EQ(chmod(token_.c_str(), mode), 0);
    testing::ProcessOptions o;
    o.timeout = std::chrono::seconds(60);
    return testing::RunProcess({kWorker, "--server", "127.0.0.1:1", "--token-file", token_,
                                "--tls-ca", (dir_ / "missing-ca.pem").string()},
                               o);
  }

  std::filesystem::path dir_;
  std::string token_;
};

TEST_F(WorkerTokenFileTest, OwnerAndGroupReadableFilesAreAccepted) {
  for (mode_t mode : {0600, 0400, 0640, 0440}) {
    auto r = RunWorkerWithMode(mode);
    EXPECT_NE(r.code, 0);
    // Past the token: it stops at the missing CA file instead.
    EXPECT_THAT(r.err, HasSubstr("missing-ca.pem")) << std::oct << mode << ": " << r.err;
    EXPECT_THAT(r.err, Not(HasSubstr("has mode"))) << std::oct << mode;
  }
}

TEST_F(WorkerTokenFileTest, FilesOthersMayReadOrTheGroupMayWriteAreRefused) {
  for (mode_t mode : {0644, 0604, 0660, 0444}) {
    auto r = RunWorkerWithMode(mode);
    EXPECT_EQ(r.code, 2) << r.err;
    char text[8];
    std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode));
    EXPECT_THAT(r.err, HasSubstr(std::string("has mode ") + text)) << r.err;
    EXPECT_THAT(r.err, Not(HasSubstr("missing-ca.pem")));
  }
}

}  // namespace
}  // namespace qsweep
