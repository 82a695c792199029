// Nothing in a request names a place on a machine (security issue, section 2):
// sweep and transform configs name models by zoo name or carry them inline,
// never as a path the server would open; keys naming files or folders are
// refused; report outputs are plain names inside the job's output folder.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/sweep.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;

constexpr const char* kData = "dataset = \"jsc-synthetic\"\n";

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// Every model value that is not a zoo name (an existing file, a missing one,
// a device, a relative path) gets one and the same error: no file is opened,
// so nothing tells whether a path exists on the server.
TEST(RequestPathsTest, ModelPathsGetOneErrorWithoutOpeningAnything) {
  std::vector<std::string> messages;
  for (const char* model : {"/etc/hostname", "/nonexistent.toml", "/etc/passwd",
                            "../../examples/models/jsc-10x.toml", "jsc-huge"}) {
    auto plan = ExpandSweep(absl::StrCat("model = \"", model, "\"\n", kData), "s.toml");
    ASSERT_FALSE(plan.ok()) << model;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << model;
    EXPECT_THAT(Message(plan.status()), HasSubstr("jsc-tiny, jsc-toy, jsc-s, jsc-trt"));
    EXPECT_THAT(Message(plan.status()), HasSubstr("sent inline"));
    // The same text for each, but for the value itself.
    std::string m = Message(plan.status());
    const std::string quoted = absl::StrCat("\"", model, "\"");
    ASSERT_THAT(m, HasSubstr(quoted));
    messages.push_back(m.replace(m.find(quoted), quoted.size(), "MODEL"));
  }
  for (const auto& m : messages) EXPECT_EQ(m, messages[0]);
}

// A device that never ends (today: read forever on a gRPC thread).
TEST(RequestPathsTest, ModelDeviceIsRefusedAtOnce) {
  for (const char* sweep :
       {"model = \"/dev/zero\"\ndataset = \"jsc\"\n",
        "dataset = \"jsc\"\n[sweep.grid]\nmodel = [\"jsc-toy\", \"/dev/zero\"]\n",
        "dataset = \"jsc\"\n[sweep.random]\ntrials = 2\n"
        "model = { distribution = \"choice\", values = [\"/dev/zero\"] }\n"}) {
    auto plan = ExpandSweep(sweep, "s.toml");
    ASSERT_FALSE(plan.ok()) << sweep;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(plan.status()), HasSubstr("sent inline"));
  }
}

TEST(RequestPathsTest, InlineModelTableIsTheTrialsModel) {
  auto plan = ExpandSweep(absl::StrCat(kData,
                                       "[model]\nname = \"jsc-10x\"\nhidden = [64, 40, 10]\n"
                                       "[sweep.grid]\nbatch_size = [64, 128]\n"),
                          "inline.toml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->configs.size(), 2u);
  for (const auto& c : plan->configs) {
    ASSERT_TRUE(c["model"].is_object()) << c.dump();
    EXPECT_EQ(c["model"]["name"], "jsc-10x");
    EXPECT_EQ(c["model"]["hidden"], nlohmann::json({64, 40, 10}));
  }
}

TEST(RequestPathsTest, InlineModelsCanBeSwept) {
  auto plan = ExpandSweep(
      absl::StrCat(kData,
                   "[sweep.grid]\nmodel = [\"jsc-tiny\", { name = \"wide\", hidden = [32] }]\n"),
      "grid.toml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->configs.size(), 2u);
  EXPECT_EQ(plan->configs[0]["model"], "jsc-tiny");
  EXPECT_EQ(plan->configs[1]["model"]["name"], "wide");
}

TEST(RequestPathsTest, BadInlineModelsNameTheField) {
  struct Case {
    std::string model_table, message;
  };
  for (const Case& c : std::vector<Case>{
           {"[model]\nhidden = [0]\n", "hidden[0]"},
           {"[model]\nname = \"../x\"\nhidden = [8]\n", "name must be 1-64 characters"},
           {"[model]\nname = \"a\\nb\"\nhidden = [8]\n", "name must be 1-64 characters"},
           {"[model]\nhidden = [8]\nfile = \"/etc/passwd\"\n", "unknown key"},
           {"[model]\nlayers = [{ type = \"conv\" }]\n", "unknown layer type"}}) {
    auto plan = ExpandSweep(absl::StrCat(kData, c.model_table), "m.toml");
    ASSERT_FALSE(plan.ok()) << c.model_table;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(plan.status()), HasSubstr(c.message)) << c.model_table;
    EXPECT_THAT(Message(plan.status()), HasSubstr("model"));
  }
}

class PlaceKeyTest : public ::testing::TestWithParam<const char*> {};

TEST_P(PlaceKeyTest, RefusedAtTopLevelAndWhenSwept) {
  const std::string key = GetParam();
  for (const std::string& sweep :
       {absl::StrCat("model = \"jsc-tiny\"\n", kData, key, " = \"/tmp/qsweep-place\"\n"),
        absl::StrCat("model = \"jsc-tiny\"\n", kData, "[sweep.grid]\n", key,
                     " = [\"a\", \"/tmp/qsweep-place\"]\n")}) {
    auto plan = ExpandSweep(sweep, "p.toml");
    ASSERT_FALSE(plan.ok()) << sweep;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(plan.status()), HasSubstr(absl::StrCat("key '", key, "' names a place")));
    EXPECT_THAT(Message(plan.status()), HasSubstr("p.toml"));
  }
}

INSTANTIATE_TEST_SUITE_P(Keys, PlaceKeyTest,
                         ::testing::Values("data_dir", "load_name", "project_dir", "quant_config"));

TEST(RequestPathsTest, DatasetIsAPlainName) {
  for (const char* name : {"../../etc/x", "/abs/data", "a/b", ".hidden", ""}) {
    auto plan =
        ExpandSweep(absl::StrCat("model = \"jsc-tiny\"\ndataset = \"", name, "\"\n"), "d.toml");
    ASSERT_FALSE(plan.ok()) << name;
    EXPECT_THAT(Message(plan.status()), HasSubstr("key 'dataset'")) << name;
  }
}

TEST(RequestPathsTest, JobConfigsNameNoPlace) {
  auto plan = ExpandSweep(absl::StrCat("model = \"jsc-tiny\"\n", kData), "ok.toml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const char* key : {"data_dir", "load_name", "project_dir", "quant_config"})
    EXPECT_FALSE(plan->configs[0].contains(key)) << key << ": " << plan->configs[0].dump();
}

class ReportNameTest : public ::testing::TestWithParam<const char*> {};

// `file_name` and `save_path` are plain names inside the job's output folder.
TEST_P(ReportNameTest, RefusedInSweepsAndTransformConfigs) {
  const std::string name = GetParam();
  for (const char* pass : {"report_graph]\nfile_name", "report_node_meta_param]\nsave_path"}) {
    const std::string table = absl::StrCat("[passes.", pass, " = \"", name, "\"\n");
    auto plan = ExpandSweep(absl::StrCat("model = \"jsc-toy\"\n", kData, table), "r.toml");
    ASSERT_FALSE(plan.ok()) << table;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(plan.status()), HasSubstr("passes.report_")) << table;
    EXPECT_THAT(Message(plan.status()), HasSubstr("inside the job's output folder")) << table;
    auto t = ValidateTransformConfig(table, "t.toml", "jsc-toy", 64);
    ASSERT_FALSE(t.ok()) << table;
    EXPECT_EQ(t.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(t), HasSubstr("inside the job's output folder")) << table;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Names, ReportNameTest,
    ::testing::Values("../../home/user/.bashrc", "/tmp/qsweep-report.txt", "sub/report.txt", "..",
                      ".", "", "a\\\\b", "x\\ny", "x\\u0000y", "x\\u001b[2Jy",
                      "0123456789012345678901234567890123456789012345678901234567890123456789"
                      "0123456789012345678901234567890123456789012345678901234567890123456789"));

TEST(RequestPathsTest, PlainReportNamesAreAccepted) {
  auto plan = ExpandSweep(absl::StrCat("model = \"jsc-toy\"\n", kData,
                                       "[passes.report_graph]\nfile_name = \"graph.txt\"\n"
                                       "[passes.report_node_meta_param]\n"
                                       "save_path = \"meta-params_1.txt\"\n"),
                          "ok.toml");
  EXPECT_TRUE(plan.ok()) << plan.status();
}

TEST(RequestPathsTest, TransformConfigsNameNoPlaceAndNoModelFile) {
  const std::string passes = "[passes.report_graph]\n";
  for (const std::string key : {"data_dir", "load_name", "project_dir"}) {
    auto s = ValidateTransformConfig(absl::StrCat(key, " = \"/tmp/x\"\n", passes), "t.toml",
                                     "jsc-toy", 64);
    ASSERT_FALSE(s.ok()) << key;
    EXPECT_THAT(Message(s), HasSubstr(absl::StrCat("key '", key, "' names a place")));
  }
  auto model =
      ValidateTransformConfig("model = \"/etc/hostname\"\n" + passes, "t.toml", "jsc-toy", 64);
  ASSERT_FALSE(model.ok());
  EXPECT_THAT(Message(model), HasSubstr("sent inline"));
  EXPECT_TRUE(
      ValidateTransformConfig("model = \"jsc-toy\"\n" + passes, "t.toml", "jsc-toy", 64).ok());
}

// The trained job's model may be an inline definition.
TEST(RequestPathsTest, TransformOfAnInlineModel) {
  const nlohmann::json model = {{"name", "wide"}, {"hidden", {32, 16}}};
  EXPECT_TRUE(ValidateTransformConfig("[passes.report_graph]\n", "t.toml", model, 64).ok());
  auto bad = ValidateTransformConfig(
      "[passes.quantize]\nby = \"name\"\n"
      "[passes.quantize.seq_blocks_99.config]\nname = \"integer\"\n",
      "t.toml", model, 64);
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace qsweep
