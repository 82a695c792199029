#include "server/sweep.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

namespace qsweep {
namespace {

using ::testing::HasSubstr;

std::string ReadExample(const std::string& name) {
  std::ifstream f(std::string(QSWEEP_SOURCE_DIR) + "/examples/" + name);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(SweepTest, Lab1IsTheFullGrid) {
  auto plan = ExpandSweep(ReadExample("lab1.toml"), "lab1.toml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->trials.size(), 27u);
  std::set<std::tuple<int64_t, int64_t, double>> seen;
  for (const auto& c : plan->configs) {
    EXPECT_EQ(c["model"], "jsc-toy");
    EXPECT_EQ(c["dataset"], "jsc-synthetic");
    seen.emplace(c["batch_size"].get<int64_t>(), c["max_epochs"].get<int64_t>(),
                 c["learning_rate"].get<double>());
  }
  std::set<std::tuple<int64_t, int64_t, double>> want;
  for (int64_t b : {64, 256, 1024})
    for (int64_t e : {5, 10, 15})
      for (double lr : {1e-3, 1e-5, 1e-7}) want.emplace(b, e, lr);
  EXPECT_EQ(seen, want);
  EXPECT_EQ(plan->name, "lab1");
  EXPECT_EQ(plan->retries, 1);
  // First grid key varies slowest, last fastest.
  EXPECT_EQ(plan->trials[0]["batch_size"], 64);
  EXPECT_EQ(plan->trials[1]["learning_rate"], 1e-5);
  EXPECT_EQ(plan->trials[9]["batch_size"], 256);
  // Only swept keys are in the trial record.
  EXPECT_EQ(plan->trials[0].size(), 3u);
}

TEST(SweepTest, Lab1SmallHasNineSmallTrials) {
  auto plan = ExpandSweep(ReadExample("lab1-small.toml"), "lab1-small.toml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->configs.size(), 9u);
  EXPECT_EQ(plan->configs[4]["synthetic_rows"], 2000);
  EXPECT_EQ(plan->configs[4]["max_epochs"], 2);
}

TEST(SweepTest, NoSweepTableIsOneTrial) {
  auto plan = ExpandSweep("model = \"jsc-tiny\"\ndataset = \"jsc\"\n", "one.toml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->configs.size(), 1u);
  EXPECT_EQ(plan->configs[0]["model"], "jsc-tiny");
  EXPECT_EQ(plan->max_concurrency, 0);
}

TEST(SweepTest, ModelCanBeSwept) {
  auto plan = ExpandSweep(
      "dataset = \"jsc\"\n[sweep.grid]\nmodel = [\"jsc-tiny\", \"jsc-toy\"]\nseed = [1, 2]\n",
      "m.toml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->configs.size(), 4u);
  EXPECT_EQ(plan->configs[0]["model"], "jsc-tiny");
  EXPECT_EQ(plan->configs[3]["model"], "jsc-toy");
  EXPECT_EQ(plan->configs[3]["seed"], 2);
}

constexpr char kRandom[] = R"(
model = "jsc-toy"
dataset = "jsc"
[sweep.grid]
batch_size = [64, 128]
[sweep.random]
trials = 50
seed = 7
learning_rate = { distribution = "loguniform", low = 1e-5, high = 1e-2 }
weight_decay = { distribution = "uniform", low = 0.0, high = 0.5 }
max_epochs = { distribution = "int", low = 3, high = 6 }
training_optimizer = { distribution = "choice", values = ["adam", "sgd"] }
)";

TEST(SweepTest, RandomSamplesStayInRangeAndAreSeeded) {
  auto plan = ExpandSweep(kRandom, "r.toml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->configs.size(), 100u);
  std::set<int64_t> epochs;
  std::set<std::string> optimizers;
  int low_decade = 0;
  for (const auto& c : plan->configs) {
    double lr = c["learning_rate"].get<double>();
    EXPECT_GE(lr, 1e-5);
    EXPECT_LE(lr, 1e-2);
    if (lr < 1e-4) ++low_decade;
    double wd = c["weight_decay"].get<double>();
    EXPECT_GE(wd, 0.0);
    EXPECT_LT(wd, 0.5);
    ASSERT_TRUE(c["max_epochs"].is_number_integer());
    epochs.insert(c["max_epochs"].get<int64_t>());
    optimizers.insert(c["training_optimizer"].get<std::string>());
  }
  EXPECT_EQ(epochs, (std::set<int64_t>{3, 4, 5, 6}));
  EXPECT_EQ(optimizers, (std::set<std::string>{"adam", "sgd"}));
  // Log-uniform: about a third of the samples fall in the lowest decade.
  EXPECT_GT(low_decade, 15);
  EXPECT_LT(low_decade, 55);
  auto again = ExpandSweep(kRandom, "r.toml");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->trials, plan->trials);
  std::string other = kRandom;
  other.replace(other.find("seed = 7"), 8, "seed = 8");
  auto reseeded = ExpandSweep(other, "r.toml");
  ASSERT_TRUE(reseeded.ok());
  EXPECT_NE(reseeded->trials, plan->trials);
}

constexpr char kQuantizeByName[] = R"(
[passes.quantize]
by = "name"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.seq_blocks_2.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
weight_width = 8
weight_frac_width = 4
bias_width = 8
bias_frac_width = 4
[passes.report_graph]
[transform]
style = "graph"
)";

TEST(SweepTest, PassesTablesAddATransformPerTrial) {
  auto plan = ExpandSweep(std::string("model = \"jsc-toy\"\ndataset = \"jsc\"\n"
                                      "[sweep.grid]\nseed = [1, 2]\n"
                                      "[sweep.transform]\nfine_tune_epochs = 2\n") +
                              kQuantizeByName,
                          "t.toml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->transform);
  EXPECT_EQ(plan->fine_tune_epochs, 2);
  EXPECT_EQ(plan->configs.size(), 2u);
  auto none = ExpandSweep("model = \"jsc-toy\"\ndataset = \"jsc\"\n", "n.toml");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->transform);
}

TEST(SweepTest, PassArgumentsAreCheckedAgainstTheModelGraph) {
  std::string bad = kQuantizeByName;
  bad.replace(bad.find("name = \"integer\""), 16, "name = \"integr\"");
  auto plan = ExpandSweep("model = \"jsc-toy\"\ndataset = \"jsc\"\n" + bad, "t.toml");
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("integr"));
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("jsc-toy"));
}

struct BadCase {
  const char* toml;
  const char* message_part;
};

class SweepErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(SweepErrorTest, RejectsWithFieldName) {
  auto plan = ExpandSweep(GetParam().toml, "bad.toml");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr(GetParam().message_part));
  EXPECT_THAT(std::string(plan.status().message()), HasSubstr("bad.toml"));
}

INSTANTIATE_TEST_SUITE_P(
    Bad, SweepErrorTest,
    ::testing::Values(
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.grid]\nbatchsize = [1]\n",
                "unknown key 'batchsize'"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.grid]\nbatch_size = []\n",
                "sweep.grid.batch_size must be a non-empty list"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.grid]\nbatch_size = [\"x\"]\n",
                "'batch_size' must be an integer"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.grid]\nlearning_rate = [-1.0]\n",
                "'learning_rate' must be"},
        BadCase{"dataset = \"jsc\"\n[sweep.grid]\nmodel = [\"jsc-toy\", \"jsc-huge\"]\n",
                "jsc-huge"},
        BadCase{"model = \"jsc-toy\"\n", "dataset"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep]\nretries = -1\n",
                "sweep.retries must be in [0, 100]"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep]\nretry = 1\n",
                "allowed: name, max_concurrency, retries, priority, timeout, pack, grid, random"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep]\ntimeout = 0\n",
                "sweep.timeout must be in [1, 2592000]"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep]\ntimeout = \"1h\"\n",
                "sweep.timeout must be an integer"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[data]\nx = 1\n",
                "allowed tables: [sweep], [passes.*], [transform]"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[passes.quantise]\nby = \"type\"\n",
                "unknown pass name"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.transform]\nfine_tune_epochs = 1\n",
                "sweep.transform needs [passes.*] tables"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.transform]\nepochs = 1\n",
                "allowed: fine_tune_epochs"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.random]\nseed = 1\n"
                "learning_rate = { distribution = \"uniform\", low = 0.1, high = 0.2 }\n",
                "sweep.random.trials is required"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.random]\ntrials = 2\n"
                "learning_rate = { distribution = \"normal\", low = 0.1, high = 0.2 }\n",
                "allowed: choice, uniform, loguniform, int"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.random]\ntrials = 2\n"
                "learning_rate = { distribution = \"loguniform\", low = 0.0, high = 0.2 }\n",
                "sweep.random.learning_rate.low must be > 0"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.random]\ntrials = 2\n"
                "batch_size = { distribution = \"uniform\", low = 1, high = 9 }\n",
                "allowed for it: choice, int"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.random]\ntrials = 2\n"
                "learning_rate = { distribution = \"uniform\", high = 0.2 }\n",
                "sweep.random.learning_rate.low must be a finite number"},
        BadCase{
            "model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep.grid]\nseed = [1,2,3,4,5,6,7,8,9,10]\n"
            "batch_size = [1,2,3,4,5,6,7,8,9,10]\nmax_epochs = [1,2,3,4,5,6,7,8,9,10]\n"
            "max_steps = [1,2,3,4,5,6,7,8,9,10,11]\n",
            "expands to more than 10000 trials"},
        BadCase{"model = \"jsc-toy\"\ndataset = \"jsc\"\n[sweep\n", "bad.toml"}));

}  // namespace
}  // namespace qsweep
