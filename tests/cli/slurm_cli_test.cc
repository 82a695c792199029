// `qsweep slurm submit` (issue 9 §2): the rendered job array script, option
// checks, and submission through sbatch's standard input.
#include "client/slurm_cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace qsweep {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

SlurmSubmitOptions Valid() {
  SlurmSubmitOptions o;
  o.workers = 4;
  o.server = "head:7420";
  o.token_file = "/shared/it's.token";
  return o;
}

TEST(SlurmCliTest, RendersTheArrayWithGpusPartitionTimeAndParameters) {
  SlurmSubmitOptions o = Valid();
  o.partition = "gpu";
  o.gpus_per_worker = 2;
  o.time = "4:00:00";
  std::string error;
  const std::string script = RenderSlurmScript(o, error);
  ASSERT_EQ(error, "");
  EXPECT_THAT(script, HasSubstr("#SBATCH --array=0-3\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --gres=gpu:2\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --partition=gpu\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --time=4:00:00\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --requeue\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --cpus-per-task=4\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --signal=B:USR1@120\n"));
  EXPECT_THAT(script, HasSubstr("#SBATCH --open-mode=append\n"));
  EXPECT_THAT(script, HasSubstr("export QSWEEP_SERVER='head:7420'\n"));
  EXPECT_THAT(script, HasSubstr("export QSWEEP_TOKEN_FILE='/shared/it'\\''s.token'\n"));
  EXPECT_THAT(script, HasSubstr("--gpus auto"));
  // Every #SBATCH line comes before the first command (sbatch stops there).
  std::istringstream in(script);
  std::string line;
  bool command_seen = false;
  int sbatch_lines = 0;
  while (std::getline(in, line)) {
    if (line.rfind("#SBATCH", 0) == 0) {
      EXPECT_FALSE(command_seen) << line;
      ++sbatch_lines;
    } else if (!line.empty() && line[0] != '#') {
      command_seen = true;
    }
  }
  EXPECT_EQ(sbatch_lines, 10);
  // And it is valid bash.
  const std::string path = ::testing::TempDir() + "/rendered.sbatch";
  std::ofstream(path) << script;
  EXPECT_EQ(std::system(("bash -n " + path).c_str()), 0);
}

TEST(SlurmCliTest, NoGpusMeansNoGres) {
  SlurmSubmitOptions o = Valid();
  o.gpus_per_worker = 0;
  std::string error;
  EXPECT_THAT(RenderSlurmScript(o, error), Not(HasSubstr("#SBATCH --gres")));
  EXPECT_EQ(error, "");
}

TEST(SlurmCliTest, BadOptionsNameTheOptionAndWhatIsAllowed) {
  auto error_for = [](SlurmSubmitOptions o) {
    std::string error;
    EXPECT_EQ(RenderSlurmScript(o, error), "");
    return error;
  };
  SlurmSubmitOptions o = Valid();
  o.workers = 0;
  EXPECT_THAT(error_for(o), HasSubstr("--workers is 0; allowed: 1 to 10000"));
  o = Valid();
  o.partition = "gpu\n#SBATCH --uid=0";
  EXPECT_THAT(error_for(o), HasSubstr("--partition is"));
  o = Valid();
  o.time = "1 day";
  EXPECT_THAT(error_for(o), HasSubstr("--time is '1 day'"));
  o = Valid();
  o.cpus_per_worker = 0;
  EXPECT_THAT(error_for(o), HasSubstr("--cpus-per-worker is 0; allowed: 1 to 1024"));
  o = Valid();
  o.gpus_per_worker = 65;
  EXPECT_THAT(error_for(o), HasSubstr("--gpus-per-worker is 65; allowed: 0 to 64"));
  o = Valid();
  o.server = "";
  EXPECT_THAT(error_for(o), HasSubstr("--server is required"));
  o = Valid();
  o.token_file = "";
  EXPECT_THAT(error_for(o), HasSubstr("--token-file is required"));
  o = Valid();
  o.server = "head:7420\nrm -rf /";
  EXPECT_THAT(error_for(o), HasSubstr("line break"));
}

TEST(SlurmCliTest, SubmitPipesTheScriptToSbatchAndDryRunPrintsIt) {
  const std::string dir = ::testing::TempDir() + "/slurm_cli_test";
  std::filesystem::create_directories(dir);
  const std::string fake = dir + "/sbatch";
  std::ofstream(fake) << "#!/bin/sh\n[ \"$1\" = --parsable ] || exit 9\ncat > " << dir
                      << "/submitted\necho 1234\n";
  chmod(fake.c_str(), 0700);
  std::ostringstream out, err;
  const std::vector<std::string> args = {"submit", "--workers",    "2",    "--server",
                                         "h:1",    "--token-file", "/t",   "--sbatch",
                                         fake,     "--partition",  "debug"};
  ASSERT_EQ(RunSlurmCommand(args, out, err), 0) << err.str();
  std::ifstream submitted(dir + "/submitted");
  std::stringstream got;
  got << submitted.rdbuf();
  EXPECT_THAT(got.str(), HasSubstr("#SBATCH --array=0-1\n"));
  EXPECT_THAT(got.str(), HasSubstr("#SBATCH --partition=debug\n"));

  std::ostringstream dry_out, dry_err;
  std::vector<std::string> dry = args;
  dry.push_back("--dry-run");
  ASSERT_EQ(RunSlurmCommand(dry, dry_out, dry_err), 0) << dry_err.str();
  EXPECT_EQ(dry_out.str(), got.str());

  std::ostringstream bad_out, bad_err;
  EXPECT_EQ(RunSlurmCommand({"submit", "--server", "h:1"}, bad_out, bad_err), 2);
  EXPECT_THAT(bad_err.str(), HasSubstr("--workers"));
}

}  // namespace
}  // namespace qsweep
