#include "worker/core/passes/pass_pipeline.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "worker/core/passes/graph_reports.h"

namespace qsweep {
namespace {

using ojson = nlohmann::ordered_json;

bool Known(const std::string& name) {
  const auto& k = KnownPassNames();
  return std::find(k.begin(), k.end(), name) != k.end();
}

absl::Status WithPass(const absl::Status& s, const std::string& pass) {
  if (s.ok()) return s;
  std::string msg(s.message());
  if (msg.rfind("passes.", 0) == 0) return s;  // already names the pass
  return absl::Status(s.code(), absl::StrCat("passes.", pass, ": ", msg));
}

std::string TableOrDefault(const ojson& args, const char* key, const std::string& def) {
  if (args.is_object() && args.contains(key) && args[key].is_string())
    return args[key].get<std::string>();
  return def;
}

PassOutput Summarize(const Graph& ori, const Graph& q) {
  QuantizationSummary s = SummarizeQuantization(ori, q);
  PassOutput out;
  out.pass = "summarize_quantization";
  out.text = "Quantized graph histogram:\n" + s.HistogramText();
  out.json = s.ToJson();
  out.files = {
      {"quantize/quantize_table.csv", s.TableCsv()},
      {"quantize/quantize_histogram.csv", s.HistogramCsv()},
      {"quantize/quantize_table.txt", RenderTable(s.NodeTable(), TableStyle::kOrgtbl) + "\n"},
      {"quantize/quantize_histogram.txt", s.HistogramText() + "\n"}};
  return out;
}

PassOutput Flops(const Graph& g) {
  FlopsBitopsReport r = FlopsBitops(g);
  PassOutput out;
  out.pass = "flops_bitops";
  out.text = r.Text();
  out.json = r.ToJson();
  out.files = {{"flops_bitops.txt", r.Text() + "\n"}, {"flops_bitops.json", r.ToJson().dump(2)}};
  return out;
}

absl::StatusOr<PassOutput> Verify(const PipelineResult& st, PassBackend& backend) {
  PassOutput out;
  out.pass = "verify_quantization";
  VerificationReport report;
  if (st.plan) {
    for (const auto& n : st.plan->nodes) {
      if (n.bypass) continue;
      for (const auto& op : n.operands) {
        if (op.name == "data_in") continue;
        QSWEEP_ASSIGN_OR_RETURN(auto values, backend.Parameter(n.node, op.arg));
        QSWEEP_ASSIGN_OR_RETURN(auto v, VerifyTensor(n.node, op.arg, values.stored,
                                                     values.effective, values.shape, op));
        report.tensors.push_back(v);
      }
    }
  }
  report.precision = PrecisionChanges(st.original, st.graph);
  out.text = report.Text();
  out.json = report.ToJson();
  out.files = {{"verify_quantization.txt", report.Text() + "\n"},
               {"verify_quantization.json", report.ToJson().dump(2)}};
  return out;
}

absl::StatusOr<PassOutput> RunOne(const PassSpec& p, PipelineResult& st, PassBackend& backend,
                                  const PipelineOptions& options, std::vector<PassOutput>& extra) {
  PassOutput out;
  out.pass = p.name;
  Graph& g = st.graph;
  if (p.name == "quantize") {
    Graph before = g;
    QSWEEP_ASSIGN_OR_RETURN(auto quantized, QuantizeGraph(g, p.args));
    QuantizePlan plan = std::move(quantized.second);
    FillTernaryStatistics(g, plan);
    for (const auto& n : plan.nodes) {
      if (n.arithmetic != Arithmetic::kTernary || n.bypass) continue;
      for (const auto& o : n.operands)
        if (!o.format.mean && !o.format.max && !o.format.median)
          return absl::FailedPreconditionError(absl::StrCat(
              "passes.quantize: ternary ", n.node, ".", o.name,
              " needs a threshold statistic: run profile_statistics before quantize with "
              "abs_mean or range_min_max for this ",
              o.name == "data_in" ? "activation" : "weight", " (or set ", o.name,
              "_mean / _max / _median)"));
    }
    QSWEEP_RETURN_IF_ERROR(backend.ApplyQuantization(plan));
    g = std::move(quantized.first);
    out.json = QuantizePlanToJson(plan);
    std::vector<std::string> lines;
    for (const auto& n : plan.nodes) {
      std::vector<std::string> formats;
      for (const auto& o : n.operands) formats.push_back(o.name + " " + o.format.Describe());
      lines.push_back(
          absl::StrCat(n.node, " (", n.mase_op, ") -> ", QuantizedTypeName(n.mase_op, n.arithmetic),
                       n.bypass ? " [bypass]" : "", ": ", absl::StrJoin(formats, ", ")));
    }
    for (const auto& w : plan.warnings) lines.push_back("warning: " + w);
    out.text = absl::StrJoin(lines, "\n");
    st.plan = std::move(plan);
    if (options.implicit_quantize_reports) extra.push_back(Summarize(before, g));
    return out;
  }
  if (p.name == "summarize_quantization") return Summarize(st.original, g);
  if (p.name == "profile_statistics") {
    QSWEEP_ASSIGN_OR_RETURN(auto cfg, ParseProfileStatisticsConfig(p.args));
    QSWEEP_ASSIGN_OR_RETURN(Profiler profiler, Profiler::Create(cfg, g));
    int64_t batches = profiler.NumBatches(backend.batch_size());
    QSWEEP_RETURN_IF_ERROR(backend.Profile(profiler, batches));
    profiler.WriteResults(g);
    out.json = {{"num_samples", cfg.num_samples},
                {"batch_size", backend.batch_size()},
                {"act_batches", batches},
                {"weight_nodes", profiler.weight_nodes_profiled()},
                {"stats", profiler.Results()}};
    out.text = absl::StrCat("Profiling weight statistics: ", g.nodes.size(), "/", g.nodes.size(),
                            "\nProfiling act statistics: ", batches, "/", batches);
    out.files = {{"profile_statistics.json", out.json.dump(2)}};
    return out;
  }
  if (p.name == "report_graph") {
    GraphReport r = ReportGraph(g);
    out.text = r.Text();
    out.json = r.ToJson();
    out.files = {{TableOrDefault(p.args, "file_name", "report_graph.txt"), r.Text() + "\n"}};
    return out;
  }
  if (p.name == "report_node_type") {
    out.text = RenderTable(ReportNodeType(g), TableStyle::kSimple);
    out.json = {{"text", out.text}};
    out.files = {{"report_node_type.txt", out.text + "\n"}};
    return out;
  }
  if (p.name == "report_node_shape") {
    out.text = ReportNodeShape(g);
    out.json = {{"text", out.text}};
    out.files = {{"report_node_shape.txt", out.text + "\n"}};
    return out;
  }
  if (p.name == "report_node_meta_param") {
    QSWEEP_ASSIGN_OR_RETURN(auto which, ParseWhich(p.args));
    QSWEEP_ASSIGN_OR_RETURN(Table t, ReportNodeMetaParam(g, which));
    out.text = "Inspecting graph [add_common_meta_param_analysis_pass]\n" +
               RenderTable(t, TableStyle::kGrid);
    out.json = {{"which", which.empty() ? std::vector<std::string>{"all"} : which}};
    out.files = {{TableOrDefault(p.args, "save_path", "report_node_meta_param.txt"),
                  RenderTable(t, TableStyle::kGrid) + "\n"}};
    return out;
  }
  if (p.name == "calculate_avg_bits") {
    QSWEEP_ASSIGN_OR_RETURN(AvgBits bits, CalculateAvgBits(g));
    out.json = bits.ToJson();
    if (st.plan) out.json["average_bitwidth"] = AverageBitwidth(g, *st.plan);
    out.text = absl::StrCat("calculate_avg_bits: data_avg_bit = ", bits.data_avg_bit,
                            ", w_avg_bit = ", bits.w_avg_bit,
                            " (MASE's definition: the precision list is summed, 8/4 counts 12)");
    out.files = {{"calculate_avg_bits.json", out.json.dump(2)}};
    return out;
  }
  if (p.name == "flops_bitops") return Flops(g);
  if (p.name == "verify_quantization") return Verify(st, backend);
  return absl::InvalidArgumentError(absl::StrCat("unknown pass '", p.name, "'"));
}

}  // namespace

const std::vector<std::string>& KnownPassNames() {
  static const std::vector<std::string> kNames = {
      "quantize",          "profile_statistics",     "report_graph",           "report_node_type",
      "report_node_shape", "report_node_meta_param", "summarize_quantization", "calculate_avg_bits",
      "flops_bitops",      "verify_quantization"};
  return kNames;
}

absl::StatusOr<std::vector<PassSpec>> ParsePassList(const ojson& passes) {
  std::vector<PassSpec> out;
  if (passes.is_null()) return out;
  if (!passes.is_object()) return absl::InvalidArgumentError("[passes] must be a table");
  static const std::vector<std::string> kMaseOnly = {"report_node_hardware_type",
                                                     "save_mase_graph",
                                                     "load_mase_graph",
                                                     "save_node_meta_param",
                                                     "load_node_meta_param",
                                                     "prune",
                                                     "conv_bn_fusion",
                                                     "logicnets_fusion",
                                                     "tensorrt",
                                                     "onnxruntime"};
  for (auto it = passes.begin(); it != passes.end(); ++it) {
    const std::string& name = it.key();
    if (!Known(name)) {
      bool mase = std::find(kMaseOnly.begin(), kMaseOnly.end(), name) != kMaseOnly.end();
      return absl::InvalidArgumentError(
          absl::StrCat("passes.", name, ": ",
                       mase ? "a MASE pass qsweep does not implement" : "unknown pass name",
                       "; known passes: ", absl::StrJoin(KnownPassNames(), ", ")));
    }
    if (!it.value().is_object())
      return absl::InvalidArgumentError(
          absl::StrCat("passes.", name, " must be a table ([passes.", name, "])"));
    out.push_back({name, it.value()});
  }
  return out;
}

absl::Status CheckTransformTable(const ojson& tables) {
  if (!tables.is_object() || !tables.contains("transform")) return absl::OkStatus();
  const ojson& t = tables["transform"];
  if (!t.is_object()) return absl::InvalidArgumentError("[transform] must be a table");
  if (t.contains("style") && t["style"] != "graph")
    return absl::InvalidArgumentError(absl::StrCat(
        "transform.style = ", t["style"].dump(),
        " is not supported; allowed: \"graph\" (qsweep runs MASE's graph-style passes)"));
  return absl::OkStatus();
}

absl::Status CheckReportFileName(const std::string& field, const std::string& name,
                                 bool plain_names_only) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", what, "; report files are ",
                     plain_names_only ? "plain names (like \"report.txt\")"
                                      : "relative paths (like \"reports/graph.txt\")",
                     " inside the job's output folder"));
  };
  if (name.empty()) return bad("is empty");
  if (name.size() > 128) return bad("is longer than 128 bytes");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return bad("contains a control character");
  if (name.find('\\') != std::string::npos) return bad("contains a backslash");
  if (name[0] == '/') return bad(absl::StrCat("is an absolute path ('", name, "')"));
  if (plain_names_only && name.find('/') != std::string::npos)
    return bad(absl::StrCat("contains '/' ('", name, "')"));
  for (absl::string_view part : absl::StrSplit(name, '/'))
    if (part.empty() || part == "." || part == "..")
      return bad(absl::StrCat("has an empty, '.' or '..' component ('", name, "')"));
  return absl::OkStatus();
}

absl::Status CheckReportFileNames(const std::vector<PassSpec>& passes, bool plain_names_only) {
  static const std::vector<std::pair<std::string, std::string>> kFileKeys = {
      {"report_graph", "file_name"}, {"report_node_meta_param", "save_path"}};
  for (const auto& p : passes)
    for (const auto& [pass, key] : kFileKeys) {
      if (p.name != pass || !p.args.is_object() || !p.args.contains(key)) continue;
      const std::string field = absl::StrCat("passes.", pass, ".", key);
      if (!p.args[key].is_string())
        return absl::InvalidArgumentError(absl::StrCat(field, " must be a string (a file name)"));
      QSWEEP_RETURN_IF_ERROR(
          CheckReportFileName(field, p.args[key].get<std::string>(), plain_names_only));
    }
  return absl::OkStatus();
}

absl::Status ValidatePasses(const std::vector<PassSpec>& passes, const Graph& graph) {
  for (const auto& p : passes) {
    if (p.name == "quantize") {
      auto q = QuantizeGraph(graph, p.args);
      QSWEEP_RETURN_IF_ERROR(WithPass(q.status(), p.name));
    } else if (p.name == "profile_statistics") {
      auto c = ParseProfileStatisticsConfig(p.args);
      QSWEEP_RETURN_IF_ERROR(WithPass(c.status(), p.name));
      QSWEEP_RETURN_IF_ERROR(WithPass(Profiler::Create(*c, graph).status(), p.name));
    } else if (p.name == "report_node_meta_param") {
      auto w = ParseWhich(p.args);
      QSWEEP_RETURN_IF_ERROR(WithPass(w.status(), p.name));
      QSWEEP_RETURN_IF_ERROR(WithPass(ReportNodeMetaParam(graph, *w).status(), p.name));
    }
  }
  return absl::OkStatus();
}

void FillTernaryStatistics(const Graph& graph, QuantizePlan& plan) {
  for (auto& n : plan.nodes) {
    if (n.arithmetic != Arithmetic::kTernary) continue;
    const Node* node = graph.Find(n.node);
    if (node == nullptr) continue;
    for (auto& o : n.operands) {
      auto it = node->args.find(o.arg);
      if (it == node->args.end()) continue;
      const auto& stat = it->second.stat;
      OperandFormat& f = o.format;
      if (!f.mean && stat.contains("abs_mean") && stat["abs_mean"]["abs_mean"].is_number())
        f.mean = stat["abs_mean"]["abs_mean"].get<double>();
      if (!f.max && stat.contains("range_min_max") && stat["range_min_max"]["max"].is_number())
        f.max = std::max(std::fabs(stat["range_min_max"]["min"].get<double>()),
                         std::fabs(stat["range_min_max"]["max"].get<double>()));
    }
  }
}

absl::StatusOr<PipelineResult> RunPasses(const std::vector<PassSpec>& passes, Graph graph,
                                         PassBackend& backend, const PipelineOptions& options) {
  PipelineResult st;
  st.original = graph;
  st.graph = std::move(graph);
  bool listed_flops = false, listed_verify = false;
  for (const auto& p : passes) {
    listed_flops = listed_flops || p.name == "flops_bitops";
    listed_verify = listed_verify || p.name == "verify_quantization";
  }
  for (const auto& p : passes) {
    std::vector<PassOutput> extra;
    auto out = RunOne(p, st, backend, options, extra);
    QSWEEP_RETURN_IF_ERROR(WithPass(out.status(), p.name));
    st.outputs.push_back(std::move(*out));
    for (auto& e : extra) st.outputs.push_back(std::move(e));
  }
  if (st.plan && options.implicit_quantize_reports) {
    if (!listed_flops) st.outputs.push_back(Flops(st.graph));
    if (!listed_verify) {
      auto v = Verify(st, backend);
      QSWEEP_RETURN_IF_ERROR(WithPass(v.status(), "verify_quantization"));
      st.outputs.push_back(std::move(*v));
    }
  }
  return st;
}

ojson PipelineResult::ToJson() const {
  ojson j = ojson::object();
  for (const auto& o : outputs) j[o.pass] = o.json;
  return j;
}

}  // namespace qsweep
