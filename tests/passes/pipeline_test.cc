// profile_statistics collectors and counts, and the pass pipeline run with a
// fake tensor backend.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "worker/core/config/toml_json.h"
#include "worker/core/config/train_config.h"
#include "worker/core/passes/pass_pipeline.h"

namespace qsweep {
namespace {

using ojson = nlohmann::ordered_json;

// Lab 2's profile_statistics config (MASE.md §6.5).
constexpr char kLab2[] = R"(
[passes.profile_statistics]
by = "type"
target_weight_nodes = ["linear"]
target_activation_nodes = ["relu"]
num_samples = 32
[passes.profile_statistics.weight_statistics.variance_precise]
device = "cpu"
dims = "all"
[passes.profile_statistics.activation_statistics.range_quantile]
device = "cpu"
dims = "all"
quantile = 0.97
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
weight_width = 8
weight_frac_width = 4
bias_width = 8
bias_frac_width = 4
[passes.report_graph]
[passes.calculate_avg_bits]
)";

ojson Compute(const std::string& name, const ojson& kwargs,
              const std::vector<std::vector<float>>& samples) {
  auto c = MakeStatCollector(name, kwargs, "test");
  EXPECT_TRUE(c.ok()) << c.status();
  for (const auto& s : samples) (*c)->Update(s.data(), s.size());
  return (*c)->Compute();
}

TEST(StatCollectors, MaseSemantics) {
  ojson none = ojson::object();
  ojson v = Compute("variance_precise", none, {{1, 2}, {3, 4}});
  EXPECT_DOUBLE_EQ(v["mean"].get<double>(), 2.5);
  EXPECT_NEAR(v["variance"].get<double>(), 5.0 / 3.0, 1e-6);  // unbiased
  EXPECT_EQ(v["count"], 4);
  // MASE's online merge uses the unbiased sample variance times its size:
  // [1,2,3] then [4,5,6] -> M2 = 3 + 3 + 9*3*3/6 = 19.5, variance 19.5 / 6.
  ojson o = Compute("variance_online", none, {{1, 2, 3}, {4, 5, 6}});
  EXPECT_DOUBLE_EQ(o["mean"].get<double>(), 3.5);
  EXPECT_DOUBLE_EQ(o["variance"].get<double>(), 3.25);
  EXPECT_EQ(o["count"], 6);
  ojson r = Compute("range_min_max", {{"abs", true}}, {{-5, 1}, {2}});
  EXPECT_EQ(r["min"], 1.0);
  EXPECT_EQ(r["max"], 5.0);
  EXPECT_EQ(r["range"], 4.0);
  std::vector<float> ramp(100);
  for (int i = 0; i < 100; ++i) ramp[i] = static_cast<float>(i);
  ojson q = Compute("range_quantile", {{"quantile", 0.97}}, {ramp});
  EXPECT_NEAR(q["max"].get<double>(), 96.03, 1e-4);  // linear interpolation at 0.97 * 99
  EXPECT_NEAR(q["min"].get<double>(), 2.97, 1e-4);
  EXPECT_EQ(q["count"], 100);
  ojson s = Compute("range_n_sigma", {{"var_mode", "precise"}, {"num_sigma", 2}}, {{1, 2, 3, 4}});
  EXPECT_NEAR(s["max"].get<double>(), 2.5 + 2 * std::sqrt(5.0 / 3.0), 1e-5);
  ojson a = Compute("abs_mean", none, {{-1, 2}});
  EXPECT_DOUBLE_EQ(a["abs_mean"].get<double>(), 1.5);
  EXPECT_EQ(a["count"], 2);
}

TEST(StatCollectors, Errors) {
  auto bad = MakeStatCollector("variance", ojson::object(), "passes.profile_statistics");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("variance_precise"), std::string::npos);
  auto dims = MakeStatCollector("range_min_max", {{"dims", ojson::array({0})}}, "w");
  EXPECT_NE(dims.status().message().find("dims"), std::string::npos);
  auto q = MakeStatCollector("range_quantile", {{"quantile", 1.5}}, "w");
  EXPECT_NE(q.status().message().find("quantile"), std::string::npos);
}

// Plain-C++ stand-in for the torch layer: random parameters, quantized on
// demand with the reference quantizer, random activations.
class FakeBackend : public PassBackend {
 public:
  explicit FakeBackend(const Graph& g) : graph_(g) {}
  absl::Status ApplyQuantization(const QuantizePlan& plan) override {
    plan_ = plan;
    return absl::OkStatus();
  }
  absl::Status Profile(Profiler& profiler, int64_t num_batches) override {
    for (const auto& [node, arg] : profiler.WeightTargets()) {
      auto values = Random(Numel(graph_.Find(node)->args.at(arg).shape));
      profiler.UpdateWeight(node, arg, values.data(), values.size());
    }
    for (int64_t b = 0; b < num_batches; ++b) {
      for (const auto& [node, arg] : profiler.ActivationTargets()) {
        int64_t cols = graph_.Find(node)->args.at(arg).shape[1];
        auto values = Random(batch_size() * cols);
        profiler.UpdateActivation(node, arg, values.data(), batch_size(), cols);
      }
    }
    batches_fed += num_batches;
    return absl::OkStatus();
  }
  absl::StatusOr<ParameterValues> Parameter(const std::string& node,
                                            const std::string& arg) override {
    ParameterValues v;
    v.shape = graph_.Find(node)->args.at(arg).shape;
    v.stored = Random(Numel(v.shape));
    auto q = QuantizeArray(v.stored, v.shape, plan_.Find(node)->Operand(arg)->format, true);
    if (!q.ok()) return q.status();
    v.effective = *q;
    if (corrupt) v.effective[0] += 0.01f;
    return v;
  }
  int64_t batch_size() const override { return 8; }

  bool corrupt = false;
  int64_t batches_fed = 0;

 private:
  static int64_t Numel(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
  }
  std::vector<float> Random(int64_t n) {
    std::normal_distribution<float> dist(0.0f, 2.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }
  Graph graph_;
  QuantizePlan plan_;
  std::mt19937 rng_{7};
};

std::vector<PassSpec> Passes(const std::string& toml) {
  auto j = ParseTomlToJson(toml, "lab2.toml");
  EXPECT_TRUE(j.ok()) << j.status();
  auto p = ParsePassList((*j)["passes"]);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TEST(Pipeline, Lab2ProfileCountsAndFileOrder) {
  Graph g = BuildGraph(*ZooModel("jsc-tiny"), 8);
  auto passes = Passes(kLab2);
  ASSERT_TRUE(ValidatePasses(passes, g).ok());
  FakeBackend backend(g);
  auto r = RunPasses(passes, g, backend, PipelineOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(backend.batches_fed, 4);
  const Graph& out = r->graph;
  EXPECT_EQ(out.Find("seq_blocks_1")->args.at("data_in_0").stat["range_quantile"]["count"], 512);
  EXPECT_EQ(out.Find("seq_blocks_3")->args.at("data_in_0").stat["range_quantile"]["count"], 160);
  EXPECT_EQ(out.Find("seq_blocks_2")->args.at("weight").stat["variance_precise"]["count"], 80);
  EXPECT_EQ(out.Find("seq_blocks_2")->args.at("bias").stat["variance_precise"]["count"], 5);
  EXPECT_TRUE(out.Find("seq_blocks_2")->args.at("data_in_0").stat.empty());  // not an act target
  std::vector<std::string> order;
  for (const auto& o : r->outputs) order.push_back(o.pass);
  EXPECT_EQ(order, (std::vector<std::string>{
                       "profile_statistics", "quantize", "summarize_quantization", "report_graph",
                       "calculate_avg_bits", "flops_bitops", "verify_quantization"}));
  EXPECT_NE(r->outputs[0].text.find("Profiling weight statistics: 6/6"), std::string::npos);
  EXPECT_NE(r->outputs[0].text.find("Profiling act statistics: 4/4"), std::string::npos);
  EXPECT_EQ(r->outputs[4].json["data_avg_bit"], 12.0);
  EXPECT_EQ(r->outputs[4].json["average_bitwidth"], 8.0);
  EXPECT_EQ(r->outputs[5].json["per_sample"]["bitops"], 5120);
  EXPECT_EQ(r->outputs[6].json["ok"], true);
  EXPECT_EQ(r->outputs[2].files[0].first, "quantize/quantize_table.csv");
  EXPECT_EQ(r->outputs[2].files[1].first, "quantize/quantize_histogram.csv");
}

TEST(Pipeline, VerifyDetectsOffGridWeights) {
  Graph g = BuildGraph(*ZooModel("jsc-tiny"), 8);
  FakeBackend backend(g);
  backend.corrupt = true;
  auto r = RunPasses(Passes(kLab2), g, backend, PipelineOptions{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->outputs.back().json["ok"], false);
  EXPECT_NE(r->outputs.back().text.find("OFF THEIR GRID"), std::string::npos);
}

TEST(Pipeline, TernaryTakesThresholdsFromProfiledStatistics) {
  const std::string quant = R"(
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "ternary"
data_in_width = 2
weight_width = 2
bias_width = 2
)";
  const std::string profile = R"(
[passes.profile_statistics]
by = "type"
target_weight_nodes = ["linear"]
target_activation_nodes = ["linear"]
num_samples = 16
[passes.profile_statistics.weight_statistics.abs_mean]
[passes.profile_statistics.activation_statistics.range_min_max]
)";
  Graph g = BuildGraph(*ZooModel("jsc-tiny"), 8);
  FakeBackend without(g);
  auto r = RunPasses(Passes(quant), g, without, PipelineOptions{});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("run profile_statistics before quantize"), std::string::npos)
      << r.status();
  FakeBackend with(g);
  r = RunPasses(Passes(profile + quant), g, with, PipelineOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  const auto* n = r->plan->Find("seq_blocks_2");
  ASSERT_NE(n, nullptr);
  const Node* node = r->graph.Find("seq_blocks_2");
  EXPECT_EQ(*n->Operand("weight")->format.mean,
            node->args.at("weight").stat["abs_mean"]["abs_mean"].get<double>());
  EXPECT_TRUE(n->Operand("data_in")->format.max.has_value());
  EXPECT_EQ(r->outputs.back().json["ok"], true);
}

TEST(Pipeline, BadPassConfigs) {
  auto j = ParseTomlToJson("[passes.quantise]\nby = \"type\"\n", "x.toml");
  auto p = ParsePassList((*j)["passes"]);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("passes.quantise: unknown pass name"), std::string::npos);
  EXPECT_NE(p.status().message().find("profile_statistics"), std::string::npos);
  j = ParseTomlToJson("[passes.prune]\n", "x.toml");
  EXPECT_NE(ParsePassList((*j)["passes"]).status().message().find("does not implement"),
            std::string::npos);
  j = ParseTomlToJson("[transform]\nstyle = \"module\"\n", "x.toml");
  EXPECT_NE(CheckTransformTable(*j).message().find("\"module\""), std::string::npos);
  Graph g = BuildGraph(*ZooModel("jsc-tiny"), 8);
  auto bad_target = Passes(
      "[passes.profile_statistics]\nby = \"name\"\n"
      "target_weight_nodes = [\"seq_blocks_7\"]\n");
  auto s = ValidatePasses(bad_target, g);
  EXPECT_NE(s.message().find("'seq_blocks_7'"), std::string::npos) << s;
  auto bad_which = Passes("[passes.report_node_meta_param]\nwhich = [\"sw\"]\n");
  EXPECT_NE(ValidatePasses(bad_which, g).message().find("'sw'"), std::string::npos);
}

}  // namespace
}  // namespace qsweep

namespace qsweep {
namespace {

// Every examples/lab2 config loads with the training-config reader and its
// passes validate against the model it names.
TEST(Examples, Lab2ConfigsValidate) {
  int seen = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(QSWEEP_SOURCE_DIR "/examples/lab2")) {
    if (entry.path().extension() != ".toml") continue;
    ++seen;
    SCOPED_TRACE(entry.path().string());
    ConfigLayers layers = NewConfigLayers();
    ASSERT_TRUE(LoadTomlConfigFile(entry.path().string(), layers).ok());
    ASSERT_TRUE(CheckTransformTable(layers.tables).ok());
    auto passes = ParsePassList(layers.tables["passes"]);
    ASSERT_TRUE(passes.ok()) << passes.status();
    EXPECT_EQ((*passes)[0].name, "profile_statistics");  // file order is kept
    auto spec = ZooModel(layers.file["model"].get<std::string>());
    ASSERT_TRUE(spec.ok());
    Graph g = BuildGraph(*spec, layers.file["batch_size"].get<int64_t>());
    EXPECT_TRUE(ValidatePasses(*passes, g).ok()) << ValidatePasses(*passes, g);
    for (const auto& p : *passes) {
      if (p.name != "quantize") continue;
      auto q = QuantizeGraph(g, p.args);
      ASSERT_TRUE(q.ok());
      auto s = SummarizeQuantization(g, q->first);
      int linears = spec->name == "jsc-toy" ? 3 : 1;
      EXPECT_EQ(s.histogram[1].original_type, "Linear");
      EXPECT_EQ(s.histogram[1].changed, linears);
    }
  }
  EXPECT_EQ(seen, 4);
}

}  // namespace
}  // namespace qsweep

namespace qsweep {
namespace {

// MASE's configs/examples/jsc_toy_by_type.toml (M), as MASE.md §4.4 and §7.2
// reproduce it: the transform reads it unchanged and ignores [search.*].
constexpr char kMaseJscToyByType[] = R"(
model = "jsc-tiny"
dataset = "jsc"
task = "cls"
max_epochs = 5
batch_size = 512
learning_rate = 1e-2
accelerator = "gpu"
project = "jsc-tiny"
seed = 42
log_every_n_steps = 5
# load_name = "../mase_output/jsc-tiny_classification_jsc_2023-11-15/software/training_ckpts/best.ckpt"
# load_type = "pl"

[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
"data_in_width" = 8
"data_in_frac_width" = 4
"weight_width" = 8
"weight_frac_width" = 4
"bias_width" = 8
"bias_frac_width" = 4

[transform]
style = "graph"

[search.search_space]
name = "graph/quantize/mixed_precision_ptq"
[search.search_space.setup]
by = "name"
[search.search_space.seed.default.config]
name = ["NA"]
[search.search_space.seed.linear.config]
name = ["integer"]
data_in_width = [4, 8]
data_in_frac_width = ["NA"]
weight_width = [2, 4, 8]
weight_frac_width = ["NA"]
bias_width = [2, 4, 8]
bias_frac_width = ["NA"]
[search.search_space.seed.seq_blocks_2.config]
name = ["integer"]
data_in_width = [4, 8]
data_in_frac_width = ["NA"]
weight_width = [2, 4, 8]
weight_frac_width = ["NA"]
bias_width = [2, 4, 8]
bias_frac_width = ["NA"]
[search.strategy]
name = "optuna"
eval_mode = true
[search.strategy.sw_runner.basic_evaluation]
data_loader = "val_dataloader"
num_samples = 512
[search.strategy.hw_runner.average_bitwidth]
compare_to = 32
[search.strategy.setup]
n_jobs = 1
n_trials = 5
timeout = 20000
sampler = "tpe"
sum_scaled_metrics = false
[search.strategy.metrics]
accuracy.scale = 1.0
accuracy.direction = "maximize"
average_bitwidth.scale = 0.2
average_bitwidth.direction = "minimize"
)";

TEST(Examples, MaseJscToyByTypeTomlAcceptedUnchanged) {
  ConfigLayers layers = NewConfigLayers();
  auto s = LoadTomlConfig(kMaseJscToyByType, "jsc_toy_by_type.toml", layers);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(CheckTransformTable(layers.tables).ok());
  auto passes = ParsePassList(layers.tables["passes"]);
  ASSERT_TRUE(passes.ok()) << passes.status();
  ASSERT_EQ(passes->size(), 1u);
  Graph g = BuildGraph(*ZooModel("jsc-tiny"), 512);
  EXPECT_TRUE(ValidatePasses(*passes, g).ok());
}

}  // namespace
}  // namespace qsweep
