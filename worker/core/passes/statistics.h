// profile_statistics: MASE's statistic collectors on float arrays, the pass's
// arguments, and the profiler that routes weights and activations of target
// nodes to collectors and writes results into the graph's software metadata.
// Torch-free: the torch layer feeds it tensors' data. Count semantics follow
// MASE: `count` is the number of elements seen.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/graph/graph.h"

namespace qsweep {

// One statistic over a stream of samples. Update() takes one sample (all its
// elements); Compute() returns MASE's result dict.
class StatCollector {
 public:
  virtual ~StatCollector() = default;
  virtual void Update(const float* data, size_t n) = 0;
  virtual nlohmann::ordered_json Compute() const = 0;
};

// Stat names, in display order: variance_precise, variance_online,
// range_min_max, range_quantile, range_n_sigma, abs_mean.
const std::vector<std::string>& StatNames();

// Builds a collector from MASE's name and kwargs:
//   variance_precise {device, dims="all"}          -> mean, variance (N-1), count
//   variance_online  {device, dims="all"}          -> mean, variance, count
//   range_min_max    {device, dims="all", abs=false} -> min, max, range, count
//   range_quantile   {device, dims="all", abs=false, quantile=0.975} -> min, max, range, count
//   range_n_sigma    {device, dims="all", abs=false, var_mode="online", num_sigma=3}
//   abs_mean         {device, dims="all"}          -> abs_mean, count
// `device` is accepted and ignored. INVALID_ARGUMENT naming `where` and the
// field for an unknown name or kwarg, dims other than "all", quantile outside (0, 1].
absl::StatusOr<std::unique_ptr<StatCollector>> MakeStatCollector(
    const std::string& name, const nlohmann::ordered_json& kwargs, const std::string& where);

struct ProfileStatisticsConfig {
  std::string by = "type";                       // "type" (mase_op) or "name"
  std::vector<std::string> target_weight_nodes;  // ops or node names
  std::vector<std::string> target_activation_nodes;
  nlohmann::ordered_json weight_statistics = nlohmann::ordered_json::object();
  nlohmann::ordered_json activation_statistics = nlohmann::ordered_json::object();
  int64_t num_samples = 64;  // Default: 64
};

// Parses `[passes.profile_statistics]`. INVALID_ARGUMENT naming the field.
absl::StatusOr<ProfileStatisticsConfig> ParseProfileStatisticsConfig(
    const nlohmann::ordered_json& args);

// Routes data to collectors for one graph.
class Profiler {
 public:
  // Validates stat names/kwargs and selects targets. Only call_module nodes
  // qualify as weight targets; activation targets record their data_in args
  // only (never parameters).
  static absl::StatusOr<Profiler> Create(const ProfileStatisticsConfig& config, const Graph& graph);

  // Number of whole batches the act pass runs: ceil(num_samples / batch_size).
  int64_t NumBatches(int64_t batch_size) const;

  // (node, arg) pairs that want weight data, e.g. ("seq_blocks_2", "weight").
  std::vector<std::pair<std::string, std::string>> WeightTargets() const;
  // (node, arg) pairs that want activation data, e.g. ("seq_blocks_1", "data_in_0").
  std::vector<std::pair<std::string, std::string>> ActivationTargets() const;

  // A parameter tensor, recorded once as one sample.
  void UpdateWeight(const std::string& node, const std::string& arg, const float* data, size_t n);
  // A batch of `rows` samples of `cols` elements each (row-major), recorded
  // one sample at a time.
  void UpdateActivation(const std::string& node, const std::string& arg, const float* data,
                        int64_t rows, int64_t cols);

  // Writes every result to graph.nodes[*].args[arg].stat[stat_name].
  void WriteResults(Graph& graph) const;
  // {node: {arg: {stat: result}}} in graph order.
  nlohmann::ordered_json Results() const;

  int64_t weight_nodes_profiled() const { return weight_nodes_profiled_; }

 private:
  struct Slot {
    std::string node, arg;
    bool weight = false;
    std::vector<std::pair<std::string, std::unique_ptr<StatCollector>>> stats;
  };
  Slot* Find(const std::string& node, const std::string& arg, bool weight);

  std::vector<std::shared_ptr<Slot>> slots_;
  int64_t num_samples_ = 0;
  int64_t weight_nodes_profiled_ = 0;
};

}  // namespace qsweep
