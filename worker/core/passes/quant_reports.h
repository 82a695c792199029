// Reports about a quantized graph: summarize_quantization (MASE's per-node
// table and histogram), calculate_avg_bits (MASE's graph-level definition),
// average_bitwidth (MASE's module-level search metric), flops_bitops (ours:
// MACs x weight bits x input bits) and verify_quantization. Torch-free: the
// torch layer supplies weight values for verification.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/table.h"
#include "worker/core/graph/graph.h"
#include "worker/core/passes/quantize_config.h"

namespace qsweep {

// ---- summarize_quantization ----

struct QuantSummaryRow {
  std::string ori_name, new_name, mase_type, mase_op, original_type, quantized_type;
  bool changed = false;  // the module class changed
};

struct HistogramRow {
  std::string original_type, op;  // op = first Mase_OP of the group
  int64_t total = 0, changed = 0, unchanged = 0;
};

struct QuantizationSummary {
  std::vector<QuantSummaryRow> rows;    // graph order
  std::vector<HistogramRow> histogram;  // sorted by original type (byte order)

  Table NodeTable() const;  // Ori name | New name | MASE_TYPE | Mase_OP | Original type | Quantized
                            // type | Changed
  Table HistogramTable() const;  // Original type | OP | Total | Changed | Unchanged
  // tabulate orgtbl rendering of the histogram (MASE's logged table).
  std::string HistogramText() const;
  // pandas to_csv of the per-node table (leading unnamed index column).
  std::string TableCsv() const;
  // pandas to_csv of the histogram (index column "Original type").
  std::string HistogramCsv() const;
  nlohmann::ordered_json ToJson() const;
};

// Zips the nodes of both graphs in order (they must have the same nodes).
QuantizationSummary SummarizeQuantization(const Graph& original, const Graph& quantized);

// ---- calculate_avg_bits (MASE: calculate_avg_bits_mg_analysis_pass) ----

// Over module / module_related_func nodes with op linear, conv1d or conv2d:
// data_avg_bit = sum(sum(precision(data_in_0)) * numel) / sum(numel) (numel
// includes the batch dimension), w_avg_bit likewise over `weight`. The
// precision list is summed as MASE does, so integer 8/4 counts as 12.
struct AvgBits {
  double data_avg_bit = 0.0;
  double w_avg_bit = 0.0;
  nlohmann::ordered_json ToJson() const;
};
absl::StatusOr<AvgBits> CalculateAvgBits(const Graph& graph);

// MASE's module-level average_bitwidth: sum(in*out*weight_width) / sum(in*out)
// over replaced linear layers (bypassed ones included), 32 when none.
double AverageBitwidth(const Graph& graph, const QuantizePlan& plan);

// ---- flops_bitops (ours; MASE has no BitOPs pass) ----

struct LayerCost {
  std::string node, type, op;
  int64_t macs = 0;          // per sample: in*out for Linear, 0 otherwise
  int64_t computations = 0;  // MASE flop estimator: Linear MACs, ReLU numel, BN unsupported (0)
  int weight_bits = 32, data_in_bits = 32;  // quantized width, or 32 for float
  int64_t bitops = 0;                       // macs * weight_bits * data_in_bits
};

struct FlopsBitopsReport {
  std::vector<LayerCost> layers;                   // call_module nodes in graph order
  int64_t macs = 0, computations = 0, bitops = 0;  // per sample, totals
  std::vector<std::string> notes;

  Table LayerTable() const;
  std::string Text() const;
  nlohmann::ordered_json ToJson() const;
};
FlopsBitopsReport FlopsBitops(const Graph& graph);

// ---- verify_quantization ----

struct TensorVerification {
  std::string node, arg, format;
  int64_t numel = 0;
  double max_abs_change = 0.0;       // max |w - q(w)| (stored vs effective)
  double max_grid_error = 0.0;       // max |q(w) - Q(q(w))| (ternary: distance to {-s, 0, s})
  double max_reference_error = 0.0;  // max |effective - reference q(w)|
  int64_t distinct_levels = 0;       // distinct effective values
  double min = 0.0, max = 0.0;       // of the effective values
  bool on_grid = false;              // both errors are 0
};

// Checks one tensor: `stored` are the full-precision values, `effective` the
// values the quantized layer computes with.
absl::StatusOr<TensorVerification> VerifyTensor(const std::string& node, const std::string& arg,
                                                const std::vector<float>& stored,
                                                const std::vector<float>& effective,
                                                const std::vector<int64_t>& shape,
                                                const QuantOperand& operand);

struct PrecisionChange {
  std::string node, arg;
  std::string type_before, type_after;
  std::vector<int> precision_before, precision_after;
};
std::vector<PrecisionChange> PrecisionChanges(const Graph& original, const Graph& quantized);

struct VerificationReport {
  std::vector<TensorVerification> tensors;
  std::vector<PrecisionChange> precision;
  bool ok() const;  // every tensor on its grid
  std::string Text() const;
  nlohmann::ordered_json ToJson() const;
};

}  // namespace qsweep
