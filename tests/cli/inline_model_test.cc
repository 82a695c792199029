// qsweep submit / transform submit send local model files inline.
#include "client/inline_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "worker/core/config/toml_json.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class InlineModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qsweep_inline_model_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "models");
    std::ofstream(dir_ / "models" / "small.toml") << "hidden = [8]\ndropout = 0.25\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(InlineModelTest, ModelFilesBecomeInlineTablesAndTheRestIsUnchanged) {
  const std::string sweep = R"toml(model = "models/small.toml"
dataset = "jsc-synthetic"
learning_rate = 1e-5
project = "NA"
[sweep]
name = "s"
[sweep.grid]
batch_size = [64, 128]
model = ["jsc-tiny", "models/small.toml", ")toml" +
                            (dir_ / "models" / "small.toml").string() +
                            R"toml("]
[sweep.random]
trials = 2
weight_decay = { distribution = "uniform", low = 0.0, high = 0.1 }
[passes.quantize]
by = "regex_name"
[passes.quantize."seq_blocks_(1|3)".config]
name = "integer"
[passes.report_graph]
)toml";
  auto sent = InlineModelFiles(sweep, (dir_ / "sweep.toml").string());
  ASSERT_TRUE(sent.ok()) << sent.status();
  auto before = ParseTomlToJson(sweep, "before");
  auto after = ParseTomlToJson(*sent, "after");
  ASSERT_TRUE(after.ok()) << after.status() << "\n" << *sent;
  const nlohmann::ordered_json small = {{"name", "small"}, {"hidden", {8}}, {"dropout", 0.25}};
  EXPECT_EQ((*after)["model"], small);
  EXPECT_EQ((*after)["sweep"]["grid"]["model"][0], "jsc-tiny");
  EXPECT_EQ((*after)["sweep"]["grid"]["model"][1], small);
  EXPECT_EQ((*after)["sweep"]["grid"]["model"][2], small);
  // Everything else is the same, and the tables whose order matters
  // ([sweep.grid]: first key varies slowest; [passes.*]: run order) keep it.
  (*after)["model"] = (*before)["model"];
  (*after)["sweep"]["grid"]["model"] = (*before)["sweep"]["grid"]["model"];
  EXPECT_EQ(nlohmann::json::parse(after->dump()), nlohmann::json::parse(before->dump()));
  EXPECT_EQ((*after)["sweep"].dump(), (*before)["sweep"].dump());
  EXPECT_EQ((*after)["passes"].dump(), (*before)["passes"].dump());
}

TEST_F(InlineModelTest, NoModelFileLeavesTheTextAlone) {
  const std::string sweep = "# comment\nmodel = \"jsc-toy\"\ndataset = \"jsc\"\n";
  EXPECT_EQ(*InlineModelFiles(sweep, "x.toml"), sweep);
  EXPECT_EQ(*InlineModelFiles("not [ toml", "x.toml"), "not [ toml");
}

TEST_F(InlineModelTest, BadOrMissingModelFilesNameTheFile) {
  auto missing = InlineModelFiles("model = \"models/none.toml\"\n", "x.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("models/none.toml"));
  std::ofstream(dir_ / "models" / "bad.toml") << "hidden = [0]\n";
  auto bad =
      InlineModelFiles("model = \"" + (dir_ / "models" / "bad.toml").string() + "\"\n", "x.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("bad.toml"));
  auto device = InlineModelFiles("model = \"/dev/zero\"\n", "x.toml");
  EXPECT_FALSE(device.ok());  // not a regular file: never read
}

}  // namespace
}  // namespace qsweep
