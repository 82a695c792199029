// The transform pipeline: `[passes.*]` tables run in file order on a graph,
// each producing a structured report (JSON), its text rendering and the files
// MASE writes under <project>/software/transform/. Torch-free: work that needs
// tensors (replacing modules, feeding activations, reading parameters) goes
// through the PassBackend interface, which the torch layer implements and
// tests fake.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/graph/graph.h"
#include "worker/core/passes/quant_reports.h"
#include "worker/core/passes/quantize_config.h"
#include "worker/core/passes/statistics.h"

namespace qsweep {

// One `[passes.<name>]` table.
struct PassSpec {
  std::string name;  // "quantize", "profile_statistics", ...
  nlohmann::ordered_json args = nlohmann::ordered_json::object();
};

// Passes qsweep runs: quantize, profile_statistics, report_graph,
// report_node_type, report_node_shape, report_node_meta_param,
// summarize_quantization, calculate_avg_bits, flops_bitops, verify_quantization.
const std::vector<std::string>& KnownPassNames();

// The `passes` table (file order) -> pass list. INVALID_ARGUMENT naming the
// pass for an unknown pass name (listing the known ones), a MASE pass qsweep
// does not implement, a pass table that is not a table, or bad pass args.
absl::StatusOr<std::vector<PassSpec>> ParsePassList(const nlohmann::ordered_json& passes);

// `[transform]`: style must be "graph" (the default when absent).
absl::Status CheckTransformTable(const nlohmann::ordered_json& tables);

// Pass arguments that name an output file: report_graph.file_name,
// report_node_meta_param.save_path.
// Checks them: a string of at most 128 bytes with no NUL or control
// character, not absolute, no "." or ".." component, no backslash. With
// `plain_names_only` (the service: sweeps, transform jobs) it must also be
// one plain name (no '/'); otherwise (a local `qsweep transform`) a relative
// path inside the output folder is allowed. INVALID_ARGUMENT naming the pass
// and key.
absl::Status CheckReportFileNames(const std::vector<PassSpec>& passes, bool plain_names_only);
absl::Status CheckReportFileName(const std::string& field, const std::string& name,
                                 bool plain_names_only);

// Checks every pass against the graph without touching data: by-name
// quantize keys, profile targets, stat kwargs, `which`.
absl::Status ValidatePasses(const std::vector<PassSpec>& passes, const Graph& graph);

// Tensor work the pipeline delegates. Implemented by the torch layer.
class PassBackend {
 public:
  virtual ~PassBackend() = default;
  // Swaps the planned nodes' modules for quantized ones (graph metadata is
  // already updated).
  virtual absl::Status ApplyQuantization(const QuantizePlan& plan) = 0;
  // Feeds every weight target once and `num_batches` batches of the training
  // split through the network, handing each activation target's input to
  // `profiler`.
  virtual absl::Status Profile(Profiler& profiler, int64_t num_batches) = 0;
  // The stored (full-precision) and effective (used in forward) values of a
  // quantized node's parameter ("weight"/"bias") and its shape.
  struct ParameterValues {
    std::vector<float> stored, effective;
    std::vector<int64_t> shape;
  };
  virtual absl::StatusOr<ParameterValues> Parameter(const std::string& node,
                                                    const std::string& arg) = 0;
  // Rows per activation batch (the config's batch_size).
  virtual int64_t batch_size() const = 0;
};

// The output of one pass.
struct PassOutput {
  std::string pass;
  std::string text;  // what the CLI prints
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  // Files to write, paths relative to <project>/software/transform/.
  std::vector<std::pair<std::string, std::string>> files;
};

struct PipelineResult {
  Graph original;  // before any pass
  Graph graph;     // after all passes
  std::optional<QuantizePlan> plan;
  std::vector<PassOutput> outputs;        // in run order
  nlohmann::ordered_json ToJson() const;  // {pass: json} in run order
};

struct PipelineOptions {
  // After a quantize pass, also run summarize_quantization (as MASE's CLI
  // does) and, at the end, flops_bitops and verify_quantization unless the
  // config lists them. Default: true.
  bool implicit_quantize_reports = true;
};

// Runs `passes` in order on `graph`. Errors name the pass.
absl::StatusOr<PipelineResult> RunPasses(const std::vector<PassSpec>& passes, Graph graph,
                                         PassBackend& backend, const PipelineOptions& options);

// Fills ternary thresholds the config left empty from profiled statistics
// (mean <- abs_mean, max <- the larger |min|/|max| of range_min_max).
void FillTernaryStatistics(const Graph& graph, QuantizePlan& plan);

}  // namespace qsweep
