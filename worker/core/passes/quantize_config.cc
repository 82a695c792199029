#include "worker/core/passes/quantize_config.h"

#include <algorithm>
#include <regex>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace qsweep {
namespace {

using ojson = nlohmann::ordered_json;

enum class FieldKind { kInt, kIntOrNull, kBool, kIntList, kNumberOrNull };

struct FieldSpec {
  const char* suffix;
  bool required;
  FieldKind kind;
};

// Fields of one operand per arithmetic (after the operand prefix).
const std::vector<FieldSpec>& OperandFields(Arithmetic a) {
  static const std::vector<FieldSpec> kInteger = {{"width", true, FieldKind::kInt},
                                                  {"frac_width", false, FieldKind::kIntOrNull}};
  static const std::vector<FieldSpec> kMinifloat = {
      {"width", true, FieldKind::kInt},
      {"exponent_width", true, FieldKind::kInt},
      {"exponent_bias", false, FieldKind::kIntOrNull}};
  static const std::vector<FieldSpec> kLog = {{"width", true, FieldKind::kInt},
                                              {"exponent_bias", false, FieldKind::kIntOrNull}};
  static const std::vector<FieldSpec> kBlockFp = {{"width", true, FieldKind::kInt},
                                                  {"exponent_width", false, FieldKind::kIntOrNull},
                                                  {"exponent_bias", false, FieldKind::kIntOrNull},
                                                  {"block_size", false, FieldKind::kIntList}};
  static const std::vector<FieldSpec> kBinary = {{"width", false, FieldKind::kInt},
                                                 {"stochastic", false, FieldKind::kBool},
                                                 {"bipolar", false, FieldKind::kBool}};
  static const std::vector<FieldSpec> kTernary = {{"width", false, FieldKind::kInt},
                                                  {"scaling_factor", false, FieldKind::kBool},
                                                  {"mean", false, FieldKind::kNumberOrNull},
                                                  {"median", false, FieldKind::kNumberOrNull},
                                                  {"max", false, FieldKind::kNumberOrNull}};
  switch (a) {
    case Arithmetic::kInteger:
      return kInteger;
    case Arithmetic::kMinifloatIeee:
    case Arithmetic::kMinifloatDenorm:
      return kMinifloat;
    case Arithmetic::kLog:
      return kLog;
    case Arithmetic::kBlockFp:
      return kBlockFp;
    case Arithmetic::kBinary:
      return kBinary;
    case Arithmetic::kTernary:
      return kTernary;
  }
  return kInteger;
}

struct OperandSlot {
  const char* name;
  const char* arg;
  bool is_signed;
};

// Operands of each op: linear quantizes data_in, weight and bias (all
// signed); relu quantizes its data_in with the unsigned quantizer.
std::vector<OperandSlot> OpOperands(const std::string& op) {
  if (op == "linear")
    return {{"data_in", "data_in_0", true}, {"weight", "weight", true}, {"bias", "bias", true}};
  return {{"data_in", "data_in_0", false}};
}

// Optional entries kept by normalisation (MASE keeps them when any key has the prefix).
std::vector<std::string> OptionalPrefixes(const std::string& op) {
  if (op == "linear") return {"bypass", "data_out", "additional_layers"};
  return {"bypass"};
}

std::string TypeName(const ojson& v) {
  if (v.is_null()) return "\"NA\"";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a float";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "a table";
}

absl::Status CheckField(const ojson& v, FieldKind kind, const std::string& where) {
  auto bad = [&](const char* want) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " must be ", want, ", got ", TypeName(v)));
  };
  switch (kind) {
    case FieldKind::kInt:
      if (!v.is_number_integer()) return bad("an integer");
      break;
    case FieldKind::kIntOrNull:
      if (!v.is_null() && !v.is_number_integer()) return bad("an integer or \"NA\"");
      break;
    case FieldKind::kBool:
      if (!v.is_boolean()) return bad("true or false");
      break;
    case FieldKind::kIntList:
      if (v.is_number_integer()) break;
      if (!v.is_array() || v.empty()) return bad("an integer or a non-empty array of integers");
      for (const auto& e : v)
        if (!e.is_number_integer()) return bad("an array of integers");
      break;
    case FieldKind::kNumberOrNull:
      if (!v.is_null() && !v.is_number()) return bad("a number or \"NA\"");
      break;
  }
  return absl::OkStatus();
}

std::optional<int> OptInt(const ojson& cfg, const std::string& key) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  return cfg[key].get<int>();
}

std::optional<double> OptDouble(const ojson& cfg, const std::string& key) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  return cfg[key].get<double>();
}

OperandFormat BuildFormat(Arithmetic a, const ojson& cfg, const std::string& p) {
  OperandFormat f;
  f.arithmetic = a;
  int default_width = a == Arithmetic::kBinary ? 1 : (a == Arithmetic::kTernary ? 2 : 8);
  f.width = OptInt(cfg, p + "_width").value_or(default_width);
  f.frac_width = OptInt(cfg, p + "_frac_width");
  f.exponent_width = OptInt(cfg, p + "_exponent_width");
  f.exponent_bias = OptInt(cfg, p + "_exponent_bias");
  if (cfg.contains(p + "_block_size")) {
    const ojson& b = cfg[p + "_block_size"];
    f.block_size = b.is_array() ? b.get<std::vector<int>>() : std::vector<int>{b.get<int>()};
  }
  if (cfg.contains(p + "_bipolar")) f.bipolar = cfg[p + "_bipolar"].get<bool>();
  if (cfg.contains(p + "_scaling_factor"))
    f.scaling_factor = cfg[p + "_scaling_factor"].get<bool>();
  f.mean = OptDouble(cfg, p + "_mean");
  f.median = OptDouble(cfg, p + "_median");
  f.max = OptDouble(cfg, p + "_max");
  return f;
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// Normalises the fields of one operand into `out`.
absl::Status NormalizeOperand(const ojson& config, const OperandSlot& slot, Arithmetic a,
                              const std::string& op, bool required, const std::string& where,
                              NodeQuantConfig& out) {
  std::vector<std::string> required_names;
  for (const auto& f : OperandFields(a))
    if (f.required) required_names.push_back(absl::StrCat(slot.name, "_", f.suffix));
  for (const auto& f : OperandFields(a)) {
    std::string key = absl::StrCat(slot.name, "_", f.suffix);
    if (!config.contains(key)) {
      if (f.required && required) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": missing required field '", key, "' for ", op, " with arithmetic '", out.name,
            "' (required: name, ", absl::StrJoin(required_names, ", "),
            op == "linear" && std::string(slot.name) != "bias" ? ", and the weight/bias fields"
                                                               : "",
            ")"));
      }
      continue;
    }
    QSWEEP_RETURN_IF_ERROR(CheckField(config[key], f.kind, absl::StrCat(where, ".", key)));
    out.normalized[key] = config[key];
  }
  if (a == Arithmetic::kBinary && config.value(std::string(slot.name) + "_stochastic", false))
    return absl::InvalidArgumentError(absl::StrCat(
        where, ".", slot.name, "_stochastic = true is not supported (deterministic only)"));
  QuantOperand operand;
  operand.name = slot.name;
  operand.arg = slot.arg;
  operand.is_signed = slot.is_signed;
  operand.format = BuildFormat(a, config, slot.name);
  QSWEEP_RETURN_IF_ERROR(ValidateFormat(operand.format, absl::StrCat(where, ".", slot.name)));
  out.operands.push_back(std::move(operand));
  return absl::OkStatus();
}

std::vector<std::string> NodeNames(const Graph& graph) {
  std::vector<std::string> names;
  for (const auto& n : graph.nodes) names.push_back(n.name);
  return names;
}

}  // namespace

bool IsQuantizableOp(const std::string& op) { return op == "linear" || op == "relu"; }

bool IsKnownMaseOp(const std::string& op) {
  static const std::set<std::string> kOps = {"add",
                                             "bmm",
                                             "conv1d",
                                             "conv2d",
                                             "matmul",
                                             "mul",
                                             "linear",
                                             "relu",
                                             "sub",
                                             "batch_norm1d",
                                             "batch_norm2d",
                                             "layer_norm",
                                             "group_norm",
                                             "instance_norm2d",
                                             "rms_norm",
                                             "selu",
                                             "tanh",
                                             "gelu",
                                             "softsign",
                                             "softplus",
                                             "convtranspose2d",
                                             "dropout",
                                             "grouped_query_attention",
                                             "placeholder",
                                             "output",
                                             "flatten",
                                             "size",
                                             "constant"};
  return kOps.count(op) > 0;
}

const QuantOperand* NodeQuantConfig::Operand(const std::string& operand) const {
  for (const auto& o : operands)
    if (o.name == operand) return &o;
  return nullptr;
}

const NodeQuantConfig* QuantizePlan::Find(const std::string& node) const {
  for (const auto& n : nodes)
    if (n.node == node) return &n;
  return nullptr;
}

absl::StatusOr<NodeQuantConfig> NormalizeNodeConfig(const ojson& config, const std::string& op,
                                                    const std::string& where) {
  if (!config.is_object())
    return absl::InvalidArgumentError(absl::StrCat(where, " must be a table"));
  NodeQuantConfig out;
  out.mase_op = op;
  if (!config.contains("name"))
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": missing required field 'name' (an arithmetic or \"NA\")"));
  if (!config["name"].is_string())
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".name must be a string, got ", TypeName(config["name"])));
  out.name = config["name"].get<std::string>();
  auto arith = ParseArithmetic(out.name);
  if (!arith.ok())
    return absl::InvalidArgumentError(absl::StrCat(where, ".name: ", arith.status().message()));
  out.arithmetic = *arith;
  out.normalized["name"] = out.name;
  if (config.contains("bypass")) {
    QSWEEP_RETURN_IF_ERROR(CheckField(config["bypass"], FieldKind::kBool, where + ".bypass"));
    out.bypass = config["bypass"].get<bool>();
  }
  for (const auto& slot : OpOperands(op)) {
    // The bias of a linear layer is read unconditionally by the quantized
    // modules, so its fields are required like data_in's and weight's.
    QSWEEP_RETURN_IF_ERROR(
        NormalizeOperand(config, slot, out.arithmetic, op, !out.bypass, where, out));
  }
  for (const auto& prefix : OptionalPrefixes(op)) {
    for (auto it = config.begin(); it != config.end(); ++it)
      if (StartsWith(it.key(), prefix)) out.normalized[it.key()] = it.value();
  }
  for (auto it = config.begin(); it != config.end(); ++it)
    if (!out.normalized.contains(it.key())) out.ignored_fields.push_back(it.key());
  return out;
}

absl::StatusOr<QuantizeConfig> ParseQuantizeConfig(const ojson& args) {
  const std::string where = "passes.quantize";
  if (!args.is_object()) return absl::InvalidArgumentError(where + " must be a table");
  QuantizeConfig cfg;
  cfg.raw = args;
  if (!args.contains("by"))
    return absl::InvalidArgumentError(
        where + ".by is required; allowed: \"type\", \"name\", \"regex_name\"");
  if (!args["by"].is_string() ||
      (args["by"] != "type" && args["by"] != "name" && args["by"] != "regex_name"))
    return absl::InvalidArgumentError(absl::StrCat(where, ".by = ", args["by"].dump(),
                                                   " is not allowed; allowed: \"type\", "
                                                   "\"name\", \"regex_name\""));
  cfg.by = args["by"].get<std::string>();
  for (auto it = args.begin(); it != args.end(); ++it) {
    const std::string& key = it.key();
    if (!it.value().is_object()) continue;  // by, report, baseline_weight_path, ...: not entries
    const std::string entry_where = absl::StrCat(where, ".", key);
    if (!it.value().contains("config") || !it.value()["config"].is_object())
      return absl::InvalidArgumentError(
          absl::StrCat(entry_where, " must contain a 'config' table ([", entry_where, ".config])"));
    const ojson& c = it.value()["config"];
    if (key == "default") {
      cfg.has_default = true;
      cfg.default_config = c;
      continue;
    }
    if (cfg.by == "type" && !IsKnownMaseOp(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(entry_where, ": '", key,
                       "' is not a MASE op (by = \"type\" keys are ops such as "
                       "\"linear\" and \"relu\"",
                       key != absl::AsciiStrToLower(key)
                           ? absl::StrCat("; did you mean '", absl::AsciiStrToLower(key), "'?")
                           : "",
                       ")"));
    }
    if (cfg.by == "regex_name") {
      try {
        std::regex re(key);
      } catch (const std::regex_error& e) {
        return absl::InvalidArgumentError(
            absl::StrCat(entry_where, ": regex '", key, "' does not compile: ", e.what()));
      }
    }
    cfg.entries.emplace_back(key, c);
  }
  if (!cfg.has_default) cfg.default_config = ojson::object();
  return cfg;
}

namespace {

// Finds the config table for `node`; "" key when it falls back to the default.
const ojson* Lookup(const QuantizeConfig& cfg, const Node& node, std::string& key) {
  for (const auto& [k, c] : cfg.entries) {
    bool hit = false;
    if (cfg.by == "type") hit = k == node.mase_op;
    if (cfg.by == "name") hit = k == node.name;
    if (cfg.by == "regex_name") hit = std::regex_match(node.name, std::regex(k));
    if (hit) {
      key = k;
      return &c;
    }
  }
  key = "default";
  return cfg.has_default ? &cfg.default_config : nullptr;
}

absl::Status CheckByNameKeys(const QuantizeConfig& cfg, const Graph& graph, QuantizePlan& plan) {
  for (const auto& [k, c] : cfg.entries) {
    bool any = false, quantizable = false;
    for (const auto& n : graph.nodes) {
      bool hit = cfg.by == "name"   ? n.name == k
                 : cfg.by == "type" ? n.mase_op == k
                                    : std::regex_match(n.name, std::regex(k));
      if (!hit) continue;
      any = true;
      quantizable = quantizable || IsQuantizableOp(n.mase_op);
    }
    if (cfg.by != "type" && !any) {
      return absl::InvalidArgumentError(absl::StrCat(
          "passes.quantize.", k, ": by = \"", cfg.by, "\" key '", k, "' matches no node of model '",
          graph.spec.name, "'; nodes: ", absl::StrJoin(NodeNames(graph), ", ")));
    }
    if (!quantizable) {
      plan.warnings.push_back(
          absl::StrCat("passes.quantize.", k,
                       ": matches no quantizable node (only linear and relu are "
                       "quantized; batch_norm1d never is); ignored"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<QuantizePlan> ResolveQuantizeConfig(const QuantizeConfig& cfg, const Graph& graph) {
  QuantizePlan plan;
  plan.by = cfg.by;
  QSWEEP_RETURN_IF_ERROR(CheckByNameKeys(cfg, graph, plan));
  for (const auto& node : graph.nodes) {
    if (!IsQuantizableOp(node.mase_op)) continue;
    std::string key;
    const ojson* c = Lookup(cfg, node, key);
    if (c == nullptr)
      return absl::InvalidArgumentError(
          absl::StrCat("passes.quantize: node '", node.name, "' (", node.mase_op,
                       ") matches no entry and there is no [passes.quantize.default.config] "
                       "(add one, e.g. name = \"NA\" to leave other nodes in float)"));
    if (!c->contains("name") && key == "default" && c->empty()) {
      plan.skipped.push_back(node.name);
      continue;
    }
    if (c->contains("name") && (*c)["name"].is_null()) {
      plan.skipped.push_back(node.name);
      continue;
    }
    QSWEEP_ASSIGN_OR_RETURN(
        NodeQuantConfig n,
        NormalizeNodeConfig(*c, node.mase_op, absl::StrCat("passes.quantize.", key, ".config")));
    n.node = node.name;
    n.matched_key = key;
    if (!n.ignored_fields.empty())
      plan.warnings.push_back(absl::StrCat("passes.quantize.", key, ".config: fields ignored for ",
                                           node.mase_op, " ('", node.name,
                                           "'): ", absl::StrJoin(n.ignored_fields, ", ")));
    plan.nodes.push_back(std::move(n));
  }
  return plan;
}

std::string QuantizedTypeName(const std::string& op, Arithmetic a) {
  std::string base = op == "linear" ? "Linear" : (op == "relu" ? "ReLU" : op);
  switch (a) {
    case Arithmetic::kInteger:
      return base + "Integer";
    case Arithmetic::kMinifloatIeee:
      return base + "MinifloatIEEE";
    case Arithmetic::kMinifloatDenorm:
      return base + "MinifloatDenorm";
    case Arithmetic::kLog:
      return base + "Log";
    case Arithmetic::kBlockFp:
      return base + "BlockFP";
    case Arithmetic::kBinary:
      return base + "Binary";
    case Arithmetic::kTernary:
      return base + "Ternary";
  }
  return base;
}

void ApplyQuantizePlan(const QuantizePlan& plan, Graph& graph) {
  for (const auto& q : plan.nodes) {
    Node* node = graph.Find(q.node);
    if (node == nullptr) continue;
    node->type_name = QuantizedTypeName(q.mase_op, q.arithmetic);
    if (q.bypass) continue;
    for (const auto& operand : q.operands) {
      auto it = node->args.find(operand.arg);
      if (it == node->args.end()) continue;
      it->second.type = ArithmeticName(q.arithmetic);
      it->second.precision = operand.format.Precision();
    }
  }
}

absl::StatusOr<std::pair<Graph, QuantizePlan>> QuantizeGraph(const Graph& graph,
                                                             const ojson& args) {
  QSWEEP_ASSIGN_OR_RETURN(QuantizeConfig cfg, ParseQuantizeConfig(args));
  QSWEEP_ASSIGN_OR_RETURN(QuantizePlan plan, ResolveQuantizeConfig(cfg, graph));
  Graph out = graph;
  ApplyQuantizePlan(plan, out);
  return std::make_pair(std::move(out), std::move(plan));
}

ojson QuantizePlanToJson(const QuantizePlan& plan) {
  ojson j = ojson::object();
  j["by"] = plan.by;
  ojson nodes = ojson::object();
  for (const auto& n : plan.nodes) {
    ojson e = ojson::object();
    e["mase_op"] = n.mase_op;
    e["matched_key"] = n.matched_key;
    e["bypass"] = n.bypass;
    e["config"] = n.normalized;
    ojson formats = ojson::object();
    for (const auto& o : n.operands) {
      formats[o.name] = {{"format", o.format.Describe()},
                         {"precision", o.format.Precision()},
                         {"signed", o.is_signed}};
    }
    e["operands"] = formats;
    ojson thresholds = ojson::object();
    for (const auto& o : n.operands) {
      ojson t = ojson::object();
      if (o.format.mean) t["mean"] = *o.format.mean;
      if (o.format.max) t["max"] = *o.format.max;
      if (o.format.median) t["median"] = *o.format.median;
      if (!t.empty()) thresholds[o.name] = t;
    }
    if (!thresholds.empty()) e["thresholds"] = thresholds;
    nodes[n.node] = e;
  }
  j["nodes"] = nodes;
  j["skipped"] = plan.skipped;
  j["warnings"] = plan.warnings;
  return j;
}

}  // namespace qsweep
