// End-to-end tests of the `qsweep` executable: real processes, real files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/common/subprocess.h"

namespace {
namespace fs = std::filesystem;

struct Result {
  int code = -1;
  std::string out;  // stdout and stderr together
};

// Runs the qsweep executable through the shell (for `env` assignments),
// killed after 5 minutes so that a hang fails fast.
Result RunQsweep(const std::string& args, const std::string& env = "") {
  std::string bin = std::string(QSWEEP_BINARY_DIR) + "/qsweep";
  qsweep::testing::ProcessOptions o;
  o.timeout = std::chrono::minutes(5);
  o.merge_stderr = true;
  auto p = qsweep::testing::RunShell(env + " " + bin + " " + args, o);
  return {p.code, p.out + p.err};
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The pid keeps two runs of the same test (other checkouts, other builds on
    // this machine) out of each other's folder.
    dir_ = fs::temp_directory_path() /
           ("qsweep-cli-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    env_ = "QSWEEP_DATA_DIR=" + (dir_ / "data").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string env_;
};

TEST_F(CliTest, ModelsListsTheZooWithParameterCounts) {
  Result r = RunQsweep("models --format json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"name\": \"jsc-toy\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"params\": 327"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"params\": 5615"), std::string::npos) << r.out;
}

TEST_F(CliTest, ModelShowCustomFile) {
  Result r =
      RunQsweep("model show " + std::string(QSWEEP_SOURCE_DIR) + "/examples/models/jsc-10x.toml");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("4423 Trainable params"), std::string::npos) << r.out;
}

TEST_F(CliTest, BadInputGivesOneClearLineAndNonZeroExit) {
  struct Case {
    std::string args;
    std::string must_mention;
  };
  std::vector<Case> cases = {
      {"model show jsc-huge", "unknown model 'jsc-huge'"},
      {"models --format xml", "allowed: table, json"},
      {"frobnicate", "unknown command 'frobnicate'"},
      {"train jsc-toy jsc-synthetic --batch-size 0", "'batch_size' must be >= 1"},
      {"train jsc-toy jsc-synthetic --training-optimizer rmsprop", "allowed: adam, sgd, adamw"},
      {"train jsc-toy jsc-synthetic --learning-rate abc", "must be a number"},
      {"train jsc-toy jsc-synthetic --max-epochs -2", "max_epochs"},
      {"train jsc-toy jsc-synthetic --bogus 3", "unknown flag '--bogus'"},
      {"train jsc-toy jsc-synthetic --config /nonexistent/x.toml", "/nonexistent/x.toml"},
      {"train jsc-toy", "'dataset' is required"},
      {"test", "--load CKPT is required"},
      {"test --load /nonexistent.ckpt", "/nonexistent.ckpt"},
      {"test --load x.ckpt --learning-rate 5", "unknown flag '--learning-rate'"},
      {"train jsc-toy jsc-synthetic --project ../escape", "contain '/'"},
      {"checkpoint export", "usage: qsweep checkpoint export"},
      {"data import /nonexistent.csv --name x", "/nonexistent.csv"},
  };
  for (const auto& c : cases) {
    Result r = RunQsweep(c.args, env_);
    EXPECT_NE(r.code, 0) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.must_mention), std::string::npos) << c.args << "\n" << r.out;
    EXPECT_EQ(r.out.find("terminate called"), std::string::npos) << c.args << "\n" << r.out;
  }
}

TEST_F(CliTest, EveryCommandHasHelp) {
  for (std::string cmd :
       {"--help", "train --help", "test --help", "transform --help", "checkpoint export --help",
        "models --help", "model show --help", "plot --help", "data --help"}) {
    Result r = RunQsweep(cmd, env_);
    EXPECT_EQ(r.code, 0) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find("sage"), std::string::npos) << cmd << "\n" << r.out;
  }
}

TEST_F(CliTest, ImportedDatasetsAreNotReplacedSilently) {
  fs::path csv = dir_ / "small.csv";
  {
    std::ofstream out(csv);
    out << "a,b,label\n";
    for (int i = 0; i < 50; ++i) out << i << "," << (i * 7) % 13 << "," << (i % 3) << "\n";
  }
  Result r = RunQsweep("data import " + csv.string() + " --name small", env_);
  ASSERT_EQ(r.code, 0) << r.out;
  r = RunQsweep("data import " + csv.string() + " --name small", env_);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  r = RunQsweep("data import " + csv.string() + " --name small --replace", env_);
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST_F(CliTest, WrongTomlTypesAreReportedWithTheFile) {
  fs::path cfg = dir_ / "bad.toml";
  std::ofstream(cfg)
      << "model = \"jsc-toy\"\ndataset = \"jsc-synthetic\"\nbatch_size = \"large\"\n";
  Result r = RunQsweep("train --config " + cfg.string(), env_);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("batch_size"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bad.toml"), std::string::npos) << r.out;
}

TEST_F(CliTest, UnknownModelAndDatasetInTrain) {
  Result r = RunQsweep("train jsc-huge jsc-synthetic --synthetic-rows 2000 --max-epochs 1", env_);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("unknown model 'jsc-huge'"), std::string::npos) << r.out;
  r = RunQsweep("train jsc-toy no-such-data --max-epochs 1", env_);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("no-such-data"), std::string::npos) << r.out;
}

// Train, test and export through the CLI on a small synthetic set.
TEST_F(CliTest, TrainTestExportRoundTrip) {
  std::string proj = "--project-dir " + (dir_ / "out").string() + " --project p";
  Result r = RunQsweep(
      "train jsc-tiny jsc-synthetic --synthetic-rows 3000 --max-epochs 2 "
      "--batch-size 128 --learning-rate 1e-3 " +
          proj,
      env_);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("SYNTHETIC"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Training is completed"), std::string::npos) << r.out;
  fs::path ckpts = dir_ / "out" / "p" / "software" / "training_ckpts";
  EXPECT_TRUE(fs::exists(ckpts / "best.ckpt"));
  EXPECT_TRUE(fs::exists(ckpts / "last.ckpt"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "p" / "software" / "metrics.csv"));

  // A second run in the same project keeps the first run's files (MASE's -v1 naming).
  r = RunQsweep("train jsc-tiny jsc-synthetic --synthetic-rows 3000 --max-epochs 1 " + proj, env_);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(ckpts / "best-v1.ckpt"));
  EXPECT_TRUE(fs::exists(ckpts / "best.ckpt"));
  // ... and its metrics: the first run's 2 epochs stay in metrics.csv.
  fs::path sw = dir_ / "out" / "p" / "software";
  ASSERT_TRUE(fs::exists(sw / "metrics-v1.csv"));
  auto count = [](const fs::path& p) {
    std::ifstream in(p);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) n += line.rfind("val_acc_epoch,", 0) == 0;
    return n;
  };
  EXPECT_EQ(count(sw / "metrics.csv"), 2);
  EXPECT_EQ(count(sw / "metrics-v1.csv"), 1);

  fs::path json = dir_ / "test.json";
  r = RunQsweep("test --load " + (ckpts / "best.ckpt").string() + " -o " + json.string(), env_);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("test_acc_epoch"), std::string::npos) << r.out;
  std::ifstream jin(json);
  std::string jtext((std::istreambuf_iterator<char>(jin)), std::istreambuf_iterator<char>());
  EXPECT_NE(jtext.find("\"test_acc_epoch\""), std::string::npos) << jtext;
  EXPECT_NE(jtext.find("SYNTHETIC"), std::string::npos) << jtext;
  EXPECT_NE(r.out.find("Testing is completed"), std::string::npos) << r.out;

  fs::path pt = dir_ / "model.pt";
  r = RunQsweep("checkpoint export " + (ckpts / "best.ckpt").string() + " -o " + pt.string(), env_);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_GT(fs::file_size(pt), 100u);
  // The exported state dict evaluates to the checkpoint's own test metrics.
  fs::path pt_json = dir_ / "pt.json";
  Result pt_test =
      RunQsweep("test --load " + pt.string() +
                    " --load-type pt --model jsc-tiny jsc-synthetic --synthetic-rows 3000"
                    " -o " +
                    pt_json.string(),
                env_);
  ASSERT_EQ(pt_test.code, 0) << pt_test.out;
  EXPECT_TRUE(fs::exists(pt_json)) << pt_test.out;
  auto acc_line = [](const std::string& out) {
    size_t at = out.find("| test_acc_epoch ");
    return at == std::string::npos ? std::string() : out.substr(at, out.find('\n', at) - at);
  };
  std::string ckpt_line =
      acc_line(RunQsweep("test --load " + (ckpts / "best.ckpt").string(), env_).out);
  EXPECT_FALSE(ckpt_line.empty());
  EXPECT_EQ(acc_line(pt_test.out), ckpt_line);
  r = RunQsweep("test --load " + pt.string() + " --load-type pt", env_);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("give --model MODEL"), std::string::npos) << r.out;

  // A corrupt checkpoint is a clear error, not a crash.
  fs::path bad = dir_ / "bad.ckpt";
  std::ofstream(bad) << "not a checkpoint";
  r = RunQsweep("test --load " + bad.string(), env_);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("bad.ckpt"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("terminate called"), std::string::npos) << r.out;
}

TEST_F(CliTest, TransformLab2ConfigOnATrainedCheckpoint) {
  std::string proj = "--project-dir " + (dir_ / "out").string();
  Result r = RunQsweep(
      "train jsc-tiny jsc-synthetic --synthetic-rows 3000 --max-epochs 1 "
      "--learning-rate 1e-3 --project t " +
          proj,
      env_);
  ASSERT_EQ(r.code, 0) << r.out;
  std::string ckpt = (dir_ / "out" / "t" / "software" / "training_ckpts" / "best.ckpt").string();
  std::string cfg = std::string(QSWEEP_SOURCE_DIR) + "/examples/lab2/jsc_tiny_by_type.toml";
  r = RunQsweep("transform --config " + cfg + " --load " + ckpt +
                    " --dataset jsc-synthetic "
                    "--synthetic-rows 3000 " +
                    proj,
                env_);
  ASSERT_EQ(r.code, 0) << r.out;
  // MASE's histogram rows for jsc-tiny with Linear quantized by type (MASE.md section 5.5).
  EXPECT_NE(r.out.find("| Linear          | linear       |       1 |         1 |           0 |"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "out" / "jsc-tiny" / "software" / "transform" / "quantize" /
                         "quantize_histogram.csv"));
  // `qsweep test` on the transformed checkpoint evaluates the quantized network.
  const std::string key = "After passes: test loss ";
  size_t at = r.out.find(key);
  ASSERT_NE(at, std::string::npos) << r.out;
  size_t acc_at = r.out.find("test accuracy ", at);
  ASSERT_NE(acc_at, std::string::npos) << r.out;
  double after_acc = std::stod(r.out.substr(acc_at + 14));
  std::string transformed = (dir_ / "out" / "jsc-tiny" / "software" / "transform" /
                             "transformed_ckpt" / "transformed.ckpt")
                                .string();
  Result t = RunQsweep("test --load " + transformed, env_);
  ASSERT_EQ(t.code, 0) << t.out;
  size_t row = t.out.find("| test_acc_epoch ");
  ASSERT_NE(row, std::string::npos) << t.out;
  double tested = std::stod(t.out.substr(t.out.find('|', row + 1) + 1));
  EXPECT_NEAR(tested, after_acc, 1e-4) << r.out << t.out;
  double after_loss = std::stod(r.out.substr(at + key.size()));
  size_t loss_row = t.out.find("| test_loss_epoch ");
  ASSERT_NE(loss_row, std::string::npos) << t.out;
  double tested_loss = std::stod(t.out.substr(t.out.find('|', loss_row + 1) + 1));
  EXPECT_NEAR(tested_loss, after_loss, 1e-4) << r.out << t.out;

  // A second transform into the same project keeps the first one's reports.
  Result again = RunQsweep("transform --config " + cfg + " --load " + ckpt +
                               " --dataset jsc-synthetic --synthetic-rows 3000 " + proj,
                           env_);
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_TRUE(fs::exists(dir_ / "out" / "jsc-tiny" / "software" / "transform-v1" / "quantize" /
                         "quantize_histogram.csv"));

  r = RunQsweep("transform --load " + ckpt, env_);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--config FILE.toml is required"), std::string::npos) << r.out;

  fs::path bad = dir_ / "bad.toml";
  std::ofstream(bad)
      << "[passes.quantize]\nby = \"colour\"\n[passes.quantize.default.config]\nname = \"NA\"\n";
  r = RunQsweep("transform --config " + bad.string() + " --load " + ckpt, env_);
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("colour"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("terminate called"), std::string::npos) << r.out;
}

TEST_F(CliTest, PlotLocalRuns) {
  fs::path run = dir_ / "run";
  fs::create_directories(run / "software");
  std::ofstream(run / "software" / "metrics.csv")
      << "name,step,epoch,value\nval_acc_epoch,10,0,0.5\nval_acc_epoch,20,1,0.6\n";
  fs::path png = dir_ / "curves.png";
  Result r = RunQsweep("plot " + run.string() + " --metric val_acc_epoch -o " + png.string());
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream f(png, std::ios::binary);
  char magic[4] = {};
  f.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");

  r = RunQsweep("plot " + run.string() + " -o " + (dir_ / "x.gif").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("must end in .png or .svg"), std::string::npos) << r.out;
  r = RunQsweep("plot " + run.string() + " --metric test_acc_epoch -o " + png.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("no values of metric 'test_acc_epoch'"), std::string::npos) << r.out;
  std::ofstream(run / "software" / "metrics.csv")
      << "name,step,epoch,value\nval_acc_epoch,x,0,0.5\n";
  r = RunQsweep("plot " + run.string() + " -o " + png.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("metrics.csv:2"), std::string::npos) << r.out;
}

TEST_F(CliTest, DivergingRunEndsWithAClearResult) {
  Result r = RunQsweep(
      "train jsc-tiny jsc-synthetic --synthetic-rows 3000 --max-epochs 2 "
      "--learning-rate 1e20 --project-dir " +
          (dir_ / "out").string(),
      env_);
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("diverged: loss is"), std::string::npos) << r.out;
}

}  // namespace
