#include "worker/core/passes/quant_reports.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/core/passes/pyrepr.h"

namespace qsweep {
namespace {

using ojson = nlohmann::ordered_json;

int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

int BitsOf(const Node& n, const std::string& arg) {
  auto it = n.args.find(arg);
  if (it == n.args.end() || it->second.type == "float" || it->second.precision.empty()) return 32;
  return it->second.precision[0];
}

std::string PrecisionText(const std::vector<int>& p) {
  return absl::StrCat("[", absl::StrJoin(p, ", "), "]");
}

}  // namespace

QuantizationSummary SummarizeQuantization(const Graph& ori, const Graph& q) {
  QuantizationSummary s;
  size_t n = std::min(ori.nodes.size(), q.nodes.size());
  for (size_t i = 0; i < n; ++i) {
    const Node& a = ori.nodes[i];
    const Node& b = q.nodes[i];
    s.rows.push_back({a.name, b.name, b.mase_type, b.mase_op, a.type_name, b.type_name,
                      a.type_name != b.type_name});
  }
  std::map<std::string, HistogramRow> groups;  // std::string order = Python str order for ASCII
  for (const auto& r : s.rows) {
    auto [it, inserted] = groups.try_emplace(r.original_type);
    HistogramRow& h = it->second;
    if (inserted) {
      h.original_type = r.original_type;
      h.op = r.mase_op;
    }
    ++h.total;
    h.changed += r.changed ? 1 : 0;
    h.unchanged += r.changed ? 0 : 1;
  }
  for (auto& [k, h] : groups) s.histogram.push_back(h);
  return s;
}

Table QuantizationSummary::NodeTable() const {
  Table t;
  t.headers = {"Ori name",      "New name",       "MASE_TYPE", "Mase_OP",
               "Original type", "Quantized type", "Changed"};
  for (const auto& r : rows)
    t.rows.push_back({r.ori_name, r.new_name, r.mase_type, r.mase_op, r.original_type,
                      r.quantized_type, r.changed ? "True" : "False"});
  return t;
}

Table QuantizationSummary::HistogramTable() const {
  Table t;
  t.headers = {"Original type", "OP", "Total", "Changed", "Unchanged"};
  for (const auto& h : histogram)
    t.rows.push_back({h.original_type, h.op, std::to_string(h.total), std::to_string(h.changed),
                      std::to_string(h.unchanged)});
  return t;
}

std::string QuantizationSummary::HistogramText() const {
  return RenderTable(HistogramTable(), TableStyle::kOrgtbl);
}

std::string QuantizationSummary::TableCsv() const {
  Table t = NodeTable();
  t.headers.insert(t.headers.begin(), "");
  for (size_t i = 0; i < t.rows.size(); ++i) t.rows[i].insert(t.rows[i].begin(), std::to_string(i));
  return RenderCsv(t);
}

std::string QuantizationSummary::HistogramCsv() const { return RenderCsv(HistogramTable()); }

ojson QuantizationSummary::ToJson() const {
  ojson j;
  j["nodes"] = ojson::array();
  for (const auto& r : rows)
    j["nodes"].push_back({{"Ori name", r.ori_name},
                          {"New name", r.new_name},
                          {"MASE_TYPE", r.mase_type},
                          {"Mase_OP", r.mase_op},
                          {"Original type", r.original_type},
                          {"Quantized type", r.quantized_type},
                          {"Changed", r.changed}});
  j["histogram"] = ojson::array();
  for (const auto& h : histogram)
    j["histogram"].push_back({{"Original type", h.original_type},
                              {"OP", h.op},
                              {"Total", h.total},
                              {"Changed", h.changed},
                              {"Unchanged", h.unchanged}});
  return j;
}

ojson AvgBits::ToJson() const { return {{"data_avg_bit", data_avg_bit}, {"w_avg_bit", w_avg_bit}}; }

absl::StatusOr<AvgBits> CalculateAvgBits(const Graph& graph) {
  double data_bits = 0, data_n = 0, w_bits = 0, w_n = 0;
  for (const auto& n : graph.nodes) {
    if (n.mase_type != "module" && n.mase_type != "module_related_func") continue;
    if (n.mase_op != "linear" && n.mase_op != "conv2d" && n.mase_op != "conv1d") continue;
    auto sum = [](const TensorMeta& m) {
      double s = 0;
      for (int p : m.precision) s += p;
      return s;
    };
    if (auto it = n.args.find("data_in_0"); it != n.args.end()) {
      double k = static_cast<double>(Numel(it->second.shape));
      data_bits += sum(it->second) * k;
      data_n += k;
    }
    if (auto it = n.args.find("weight"); it != n.args.end()) {
      double k = static_cast<double>(Numel(it->second.shape));
      w_bits += sum(it->second) * k;
      w_n += k;
    }
  }
  if (data_n == 0 || w_n == 0)
    return absl::FailedPreconditionError(
        "calculate_avg_bits: the graph has no linear/conv layer to average over");
  return AvgBits{data_bits / data_n, w_bits / w_n};
}

double AverageBitwidth(const Graph& graph, const QuantizePlan& plan) {
  double num = 0, den = 0;
  for (const auto& q : plan.nodes) {
    if (q.mase_op != "linear") continue;
    const Node* n = graph.Find(q.node);
    if (n == nullptr || n->layer < 0) continue;
    const LayerSpec& l = graph.spec.layers[n->layer];
    double w = 32;
    if (q.normalized.contains("weight_width") && q.normalized["weight_width"].is_number())
      w = q.normalized["weight_width"].get<double>();
    num += static_cast<double>(l.in * l.out) * w;
    den += static_cast<double>(l.in * l.out);
  }
  return den == 0 ? 32.0 : num / den;
}

FlopsBitopsReport FlopsBitops(const Graph& graph) {
  FlopsBitopsReport r;
  bool bn_note = false;
  for (const auto& n : graph.nodes) {
    if (n.op != "call_module" || n.layer < 0) continue;
    const LayerSpec& l = graph.spec.layers[n.layer];
    LayerCost c;
    c.node = n.name;
    c.type = n.type_name;
    c.op = n.mase_op;
    c.weight_bits = BitsOf(n, "weight");
    c.data_in_bits = BitsOf(n, "data_in_0");
    if (l.kind == LayerKind::kLinear) {
      c.macs = l.in * l.out;
      c.computations = c.macs;
      c.bitops = c.macs * c.weight_bits * c.data_in_bits;
    } else if (l.kind == LayerKind::kReLU) {
      c.computations = l.in;
    } else if (l.kind == LayerKind::kBatchNorm1d) {
      bn_note = true;
    }
    r.macs += c.macs;
    r.computations += c.computations;
    r.bitops += c.bitops;
    r.layers.push_back(c);
  }
  r.notes.push_back(
      "BitOPs = MACs x weight bits x input bits per Linear (qsweep's definition; "
      "MASE has none); float operands count 32 bits; BN/ReLU/Dropout count 0.");
  if (bn_note)
    r.notes.push_back(
        "computations follow MASE's flop estimator, which does not support "
        "BatchNorm1d (counted as 0).");
  return r;
}

Table FlopsBitopsReport::LayerTable() const {
  Table t;
  t.headers = {"Node name",    "Type",   "Mase op", "MACs",
               "Computations", "W bits", "A bits",  "BitOPs"};
  for (const auto& c : layers)
    t.rows.push_back({c.node, c.type, c.op, std::to_string(c.macs), std::to_string(c.computations),
                      std::to_string(c.weight_bits), std::to_string(c.data_in_bits),
                      std::to_string(c.bitops)});
  t.rows.push_back({"total", "", "", std::to_string(macs), std::to_string(computations), "", "",
                    std::to_string(bitops)});
  return t;
}

std::string FlopsBitopsReport::Text() const {
  return absl::StrCat("Per-sample cost:\n", RenderTable(LayerTable(), TableStyle::kOrgtbl), "\n",
                      absl::StrJoin(notes, "\n"));
}

ojson FlopsBitopsReport::ToJson() const {
  ojson j;
  j["per_sample"] = {{"macs", macs}, {"computations", computations}, {"bitops", bitops}};
  j["layers"] = ojson::array();
  for (const auto& c : layers)
    j["layers"].push_back({{"node", c.node},
                           {"type", c.type},
                           {"mase_op", c.op},
                           {"macs", c.macs},
                           {"computations", c.computations},
                           {"weight_bits", c.weight_bits},
                           {"data_in_bits", c.data_in_bits},
                           {"bitops", c.bitops}});
  j["notes"] = notes;
  return j;
}

absl::StatusOr<TensorVerification> VerifyTensor(const std::string& node, const std::string& arg,
                                                const std::vector<float>& stored,
                                                const std::vector<float>& effective,
                                                const std::vector<int64_t>& shape,
                                                const QuantOperand& operand) {
  if (stored.size() != effective.size())
    return absl::InvalidArgumentError(absl::StrCat("verify_quantization: ", node, ".", arg,
                                                   ": stored and effective sizes differ"));
  TensorVerification v;
  v.node = node;
  v.arg = arg;
  v.format = operand.format.Describe();
  v.numel = static_cast<int64_t>(stored.size());
  QSWEEP_ASSIGN_OR_RETURN(auto requant,
                          QuantizeArray(effective, shape, operand.format, operand.is_signed));
  QSWEEP_ASSIGN_OR_RETURN(auto reference,
                          QuantizeArray(stored, shape, operand.format, operand.is_signed));
  std::set<float> levels;
  v.min = effective.empty() ? 0.0 : INFINITY;
  v.max = effective.empty() ? 0.0 : -INFINITY;
  for (size_t i = 0; i < stored.size(); ++i) {
    double e = effective[i];
    v.max_abs_change = std::max(v.max_abs_change, std::fabs(double(stored[i]) - e));
    double grid_error = std::fabs(e - double(requant[i]));
    if (operand.format.arithmetic == Arithmetic::kTernary) {
      // Ternary is not idempotent (its threshold depends on statistics), so
      // check membership of {-s, 0, +s} directly.
      double s = operand.format.scaling_factor ? operand.format.mean.value_or(1.0) : 1.0;
      grid_error = std::min({std::fabs(e), std::fabs(e - s), std::fabs(e + s)});
    }
    v.max_grid_error = std::max(v.max_grid_error, grid_error);
    v.max_reference_error = std::max(v.max_reference_error, std::fabs(e - double(reference[i])));
    levels.insert(effective[i] == 0.0f ? 0.0f : effective[i]);
    v.min = std::min(v.min, e);
    v.max = std::max(v.max, e);
  }
  v.distinct_levels = static_cast<int64_t>(levels.size());
  v.on_grid = v.max_grid_error == 0.0 && v.max_reference_error == 0.0;
  return v;
}

std::vector<PrecisionChange> PrecisionChanges(const Graph& ori, const Graph& q) {
  std::vector<PrecisionChange> out;
  size_t n = std::min(ori.nodes.size(), q.nodes.size());
  for (size_t i = 0; i < n; ++i) {
    for (const auto& [arg, before] : ori.nodes[i].args) {
      auto it = q.nodes[i].args.find(arg);
      if (it == q.nodes[i].args.end()) continue;
      out.push_back({ori.nodes[i].name, arg, before.type, it->second.type, before.precision,
                     it->second.precision});
    }
  }
  return out;
}

bool VerificationReport::ok() const {
  return std::all_of(tensors.begin(), tensors.end(),
                     [](const TensorVerification& t) { return t.on_grid; });
}

std::string VerificationReport::Text() const {
  Table t;
  t.headers = {"Node name", "Arg", "Format",       "Numel",      "Levels",
               "Min",       "Max", "max |w-q(w)|", "Grid error", "On grid"};
  for (const auto& v : tensors)
    t.rows.push_back(
        {v.node, v.arg, v.format, std::to_string(v.numel), std::to_string(v.distinct_levels),
         PyFloatRepr(v.min), PyFloatRepr(v.max), PyFloatRepr(v.max_abs_change),
         PyFloatRepr(std::max(v.max_grid_error, v.max_reference_error)), v.on_grid ? "yes" : "NO"});
  Table p;
  p.headers = {"Node name",        "Arg",        "Type before",
               "Precision before", "Type after", "Precision after"};
  for (const auto& c : precision)
    p.rows.push_back({c.node, c.arg, c.type_before, PrecisionText(c.precision_before), c.type_after,
                      PrecisionText(c.precision_after)});
  return absl::StrCat(
      "Quantized parameters (effective values used in the forward pass):\n",
      RenderTable(t, TableStyle::kOrgtbl), "\n\nArgument precision:\n",
      RenderTable(p, TableStyle::kOrgtbl), "\n\nResult: ",
      ok() ? "every quantized parameter lies on its grid" : "SOME PARAMETERS ARE OFF THEIR GRID");
}

ojson VerificationReport::ToJson() const {
  ojson j;
  j["ok"] = ok();
  j["tensors"] = ojson::array();
  for (const auto& v : tensors)
    j["tensors"].push_back({{"node", v.node},
                            {"arg", v.arg},
                            {"format", v.format},
                            {"numel", v.numel},
                            {"distinct_levels", v.distinct_levels},
                            {"min", v.min},
                            {"max", v.max},
                            {"max_abs_change", v.max_abs_change},
                            {"max_grid_error", v.max_grid_error},
                            {"max_reference_error", v.max_reference_error},
                            {"on_grid", v.on_grid}});
  j["precision"] = ojson::array();
  for (const auto& c : precision)
    j["precision"].push_back({{"node", c.node},
                              {"arg", c.arg},
                              {"type_before", c.type_before},
                              {"precision_before", c.precision_before},
                              {"type_after", c.type_after},
                              {"precision_after", c.precision_after}});
  return j;
}

}  // namespace qsweep
