// The quantize pass configuration (MASE's `[passes.quantize]` table) and its
// resolution against a graph: `by` = type | name | regex_name, the `default`
// fallback, name "NA" (null) skips a node, `bypass`, and MASE's per-op
// normalisation (required and optional fields per operand). Torch-free.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/graph/graph.h"
#include "worker/core/passes/quantizers.h"

namespace qsweep {

// MASE ops qsweep can quantize (MASE's QUANTIZEABLE_OP restricted to the ops
// our graphs contain). batch_norm1d is never quantized.
bool IsQuantizableOp(const std::string& mase_op);
// Every mase_op MASE's quantize pass knows as a by-type key.
bool IsKnownMaseOp(const std::string& mase_op);

// One operand of a quantized node: "data_in", "weight" or "bias".
struct QuantOperand {
  std::string name;       // "data_in", "weight", "bias"
  std::string arg;        // metadata key: "data_in_0", "weight", "bias"
  bool is_signed = true;  // false only for a ReLU's data_in (MASE's unsigned quantizer)
  OperandFormat format;
};

// The resolved configuration of one quantized node.
struct NodeQuantConfig {
  std::string node;         // "seq_blocks_2"
  std::string mase_op;      // "linear" or "relu"
  std::string matched_key;  // the config key that applied: op, node name, regex or "default"
  std::string name;         // arithmetic name as written ("integer", "fixed", ...)
  Arithmetic arithmetic = Arithmetic::kInteger;
  bool bypass = false;                 // module replaced but does no quantization
  std::vector<QuantOperand> operands;  // data_in, weight, bias (those the op has)
  // MASE's normalised config (parse_node_config output), null for "NA" fields.
  nlohmann::ordered_json normalized = nlohmann::ordered_json::object();
  std::vector<std::string> ignored_fields;  // fields dropped by normalisation

  const QuantOperand* Operand(const std::string& operand) const;
};

// The parsed `[passes.quantize]` table (not yet matched to a graph).
struct QuantizeConfig {
  std::string by;  // "type", "name" or "regex_name"
  bool has_default = false;
  nlohmann::ordered_json default_config;  // default.config ({} if absent)
  // Non-default keys with their `config` tables, in file order.
  std::vector<std::pair<std::string, nlohmann::ordered_json>> entries;
  nlohmann::ordered_json raw;  // the table as given, for checkpoint metadata
};

// The per-node result of matching a QuantizeConfig to a graph.
struct QuantizePlan {
  std::string by;
  std::vector<NodeQuantConfig> nodes;  // quantized (or bypassed) nodes in graph order
  std::vector<std::string> skipped;    // quantizable nodes left in float (name = "NA")
  std::vector<std::string> warnings;   // keys that matched nothing quantizable, etc.

  const NodeQuantConfig* Find(const std::string& node) const;
};

// Parses `[passes.quantize]` (JSON form of the TOML, "NA" -> null).
// INVALID_ARGUMENT naming the key for: missing or unknown `by`, an entry
// without a `config` table, a by-type key that is not a MASE op, a regex that
// does not compile.
absl::StatusOr<QuantizeConfig> ParseQuantizeConfig(const nlohmann::ordered_json& pass_args);

// Matches the config to the graph's nodes and normalises each node's config.
// INVALID_ARGUMENT for a by-name key that names no node (the message lists the
// node names), a quantizable node with no entry and no default, and any
// normalisation error (unknown arithmetic, missing required field, width <= 0).
absl::StatusOr<QuantizePlan> ResolveQuantizeConfig(const QuantizeConfig& config,
                                                   const Graph& graph);

// MASE's parse_node_config for one node: keeps the required and optional
// fields of `mase_op` for the arithmetic in config["name"] and checks them.
// `where` prefixes error messages (e.g. "passes.quantize.linear.config").
absl::StatusOr<NodeQuantConfig> NormalizeNodeConfig(const nlohmann::ordered_json& config,
                                                    const std::string& mase_op,
                                                    const std::string& where);

// The class name of the quantized module, e.g. "LinearInteger", "ReLULog".
std::string QuantizedTypeName(const std::string& mase_op, Arithmetic arithmetic);

// Updates the graph as the quantize pass does: each planned node's type_name
// becomes the quantized class, and (unless bypassed) common.args.<operand>
// type and precision follow the format (MASE's update_quant_meta_param).
void ApplyQuantizePlan(const QuantizePlan& plan, Graph& graph);

// Convenience: parse + resolve + apply on a copy of `graph`.
absl::StatusOr<std::pair<Graph, QuantizePlan>> QuantizeGraph(const Graph& graph,
                                                             const nlohmann::ordered_json& args);

// The plan as JSON (per-node normalised configs), for reports and checkpoints.
nlohmann::ordered_json QuantizePlanToJson(const QuantizePlan& plan);

}  // namespace qsweep
