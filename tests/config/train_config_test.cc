#include "worker/core/config/train_config.h"

#include <gtest/gtest.h>

#include "worker/core/config/toml_json.h"
#include "worker/local/train_args.h"

namespace qsweep {
namespace {

TEST(TrainConfigTest, MaseDefaults) {
  ConfigLayers layers = NewConfigLayers();
  layers.cli["model"] = "jsc-tiny";
  layers.cli["dataset"] = "jsc";
  auto c = TrainConfigFromJson(layers.Effective());
  ASSERT_TRUE(c.ok()) << c.status();
  // MASE.md section 3.1.
  EXPECT_EQ(c->batch_size, 128);
  EXPECT_EQ(c->seed, 0);
  EXPECT_EQ(c->training_optimizer, "adam");
  EXPECT_DOUBLE_EQ(c->learning_rate, 1e-5);
  EXPECT_DOUBLE_EQ(c->weight_decay, 0.0);
  EXPECT_EQ(c->max_epochs, 20);
  EXPECT_EQ(c->log_every_n_steps, 50);
  EXPECT_EQ(c->task, "classification");
}

TEST(TrainConfigTest, MaseExampleConfigLoads) {
  // The top of MASE's jsc_toy_by_type.toml with its pass tables.
  const char* toml = R"(
model = "jsc-tiny"
dataset = "jsc"
task = "cls"
max_epochs = 5
batch_size = 512
learning_rate = 1e-2
accelerator = "cpu"
project = "jsc-tiny"
seed = 42
log_every_n_steps = 5
# load_name = "x"

[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
"data_in_width" = 8

[transform]
style = "graph"
)";
  ConfigLayers layers = NewConfigLayers();
  ASSERT_TRUE(LoadTomlConfig(toml, "jsc_toy_by_type.toml", layers).ok());
  auto c = TrainConfigFromJson(layers.Effective());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->batch_size, 512);
  EXPECT_DOUBLE_EQ(c->learning_rate, 1e-2);
  EXPECT_EQ(c->seed, 42);
  EXPECT_EQ(c->project, "jsc-tiny");
  ASSERT_TRUE(layers.tables.contains("passes"));
  EXPECT_TRUE(layers.tables["passes"]["quantize"]["default"]["config"]["name"].is_null());
  EXPECT_EQ(layers.tables["passes"]["quantize"]["linear"]["config"]["data_in_width"], 8);
  EXPECT_EQ(layers.tables["transform"]["style"], "graph");
}

TEST(TrainConfigTest, TablesKeepFileOrder) {
  auto j = ParseTomlToJson("[passes.report_graph]\n[passes.quantize]\nby='type'\n[passes.profile_statistics]\n", "t");
  ASSERT_TRUE(j.ok());
  std::vector<std::string> order;
  for (auto& [k, v] : (*j)["passes"].items()) order.push_back(k);
  EXPECT_EQ(order, (std::vector<std::string>{"report_graph", "quantize", "profile_statistics"}));
}

TEST(TrainConfigTest, PrecedenceDefaultFileFlag) {
  auto a = ParseLocalArgs("train", {"jsc-toy", "jsc-synthetic", "--batch-size", "128"}, true);
  ASSERT_TRUE(a.ok()) << a.status();
  a->layers.file["batch_size"] = 512;
  a->layers.file["max_epochs"] = 3;
  a->layers.has_file = true;
  auto c = TrainConfigFromJson(a->layers.Effective());
  ASSERT_TRUE(c.ok()) << c.status();
  // An explicitly given flag wins even when it equals the default (MASE differs here).
  EXPECT_EQ(c->batch_size, 128);
  EXPECT_EQ(c->max_epochs, 3);
  EXPECT_EQ(c->model, "jsc-toy");
  EXPECT_EQ(c->dataset, "jsc-synthetic");
  std::string table = RenderArgumentTable(a->layers);
  EXPECT_NE(table.find("Config. File"), std::string::npos);
  EXPECT_NE(table.find("Manual Override"), std::string::npos);
}

TEST(TrainConfigTest, FlagAliasesAndNa) {
  auto a = ParseLocalArgs("train", {"m", "d", "--num-workers", "4", "--max-steps", "NA",
                                    "--training-optimizer", "sgd", "--debug"}, true);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->layers.cli["num_workers"], 4);
  EXPECT_TRUE(a->layers.cli["max_steps"].is_null());
  EXPECT_EQ(a->layers.cli["to_debug"], true);
  auto c = TrainConfigFromJson(a->layers.Effective());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->training_optimizer, "sgd");
  EXPECT_TRUE(c->debug);
}

struct BadArgs {
  std::vector<std::string> args;
  const char* must_mention;
};

class BadFlagTest : public ::testing::TestWithParam<BadArgs> {};

TEST_P(BadFlagTest, ClearError) {
  auto a = ParseLocalArgs("train", GetParam().args, true);
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(a.status()) || absl::IsNotFound(a.status())) << a.status();
  EXPECT_NE(a.status().message().find(GetParam().must_mention), std::string::npos)
      << a.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadFlagTest,
    ::testing::Values(
        BadArgs{{"m", "d", "--batch-size", "0"}, "batch_size"},
        BadArgs{{"m", "d", "--batch-size", "-5"}, ">= 1"},
        BadArgs{{"m", "d", "--batch-size", "lots"}, "must be an integer"},
        BadArgs{{"m", "d", "--learning-rate", "0"}, "learning_rate"},
        BadArgs{{"m", "d", "--learning-rate", "fast"}, "must be a number"},
        BadArgs{{"m", "d", "--max-epochs", "0"}, "max_epochs"},
        BadArgs{{"m", "d", "--training-optimizer", "rmsprop"}, "allowed: adam, sgd, adamw"},
        BadArgs{{"m", "d", "--trainer-precision", "16-mixed"}, "trainer_precision"},
        BadArgs{{"m", "d", "--no-such-flag", "1"}, "--no-such-flag"},
        BadArgs{{"m", "d", "--config", "/nonexistent.toml"}, "/nonexistent.toml"},
        BadArgs{{"m", "d", "--batch-size", "NA"}, "NA"}));

struct BadToml {
  const char* toml;
  const char* must_mention;
};

class BadTomlTest : public ::testing::TestWithParam<BadToml> {};

TEST_P(BadTomlTest, ClearError) {
  ConfigLayers layers = NewConfigLayers();
  absl::Status s = LoadTomlConfig(GetParam().toml, "cfg.toml", layers);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find(GetParam().must_mention), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("cfg.toml"), std::string::npos) << s.message();
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadTomlTest,
    ::testing::Values(BadToml{"batch_size = \"big\"\n", "batch_size"},
                      BadToml{"batch_size = 1.5\n", "must be an integer"},
                      BadToml{"learning_rate = \"1e-3\"\n", "learning_rate"},
                      BadToml{"max_epochs = -1\n", "max_epochs"},
                      BadToml{"training_optimizer = \"lamb\"\n", "allowed: adam, sgd, adamw"},
                      BadToml{"learnig_rate = 0.1\n", "unknown key 'learnig_rate'"},
                      BadToml{"to_debug = 1\n", "true or false"},
                      BadToml{"batch_size = [1, 2]\n", "batch_size"},
                      BadToml{"batch_size = \n", "invalid TOML"},
                      BadToml{"learning_rate = nan\n", "must be a number, got \"nan\""},
                      BadToml{"learning_rate = inf\n", "must be a number"},
                      BadToml{"passes = 3\n", "'passes' must be a table"},
                      BadToml{"project = \"../up\"\n", "project"}));

TEST(TrainConfigTest, MissingModelIsReported) {
  ConfigLayers layers = NewConfigLayers();
  layers.cli["dataset"] = "jsc";
  auto c = TrainConfigFromJson(layers.Effective());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'model' is required"), std::string::npos);
}

TEST(TrainConfigTest, BadDeviceIsReported) {
  ConfigLayers layers = NewConfigLayers();
  layers.cli["model"] = "m";
  layers.cli["dataset"] = "d";
  layers.cli["device"] = "tpu";
  auto c = TrainConfigFromJson(layers.Effective());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("allowed: cpu, cuda, cuda:N"), std::string::npos);
}

TEST(TrainConfigTest, ProjectNameLikeMase) {
  TrainConfig c;
  c.model = "models/x";
  c.dataset = "jsc";
  EXPECT_EQ(ProjectName(c, "2026-11-27"), "models-x_classification_jsc_2026-11-27");
  c.project = "mine";
  EXPECT_EQ(ProjectName(c, "2026-11-27"), "mine");
}

TEST(TrainConfigTest, JsonRoundTrip) {
  TrainConfig c;
  c.model = "jsc-toy";
  c.dataset = "jsc-synthetic";
  c.batch_size = 64;
  c.learning_rate = 1e-3;
  auto back = TrainConfigFromJson(TrainConfigToJson(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->batch_size, 64);
  EXPECT_DOUBLE_EQ(back->learning_rate, 1e-3);
  EXPECT_EQ(back->log_every_n_steps, 50);
}

}  // namespace
}  // namespace qsweep
