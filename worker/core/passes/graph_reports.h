// Analysis report passes on the graph IR: report_graph, report_node_type,
// report_node_shape and report_node_meta_param. Each returns a structured
// report whose text rendering follows MASE's layout (MASE.md §6.4-6.7).
// Torch-free.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/table.h"
#include "worker/core/graph/graph.h"
#include "worker/core/passes/pyrepr.h"

namespace qsweep {

// PyTorch repr of a call_module node's module, after transforms, e.g.
// "LinearInteger(in_features=16, out_features=5, bias=True)", "ReLU(inplace=True)".
std::string ModuleRepr(const Graph& graph, const Node& node);

struct GraphReport {
  std::string fx_graph;  // FxGraphText()
  // placeholder, get_attr, call_function, call_method, call_module, output (this order).
  std::vector<std::pair<std::string, int64_t>> op_counts;
  std::vector<std::string> layer_types;  // module reprs of call_module nodes

  // MASE's text: graph, "Network overview:", the count dict, "Layer types:", the list.
  std::string Text() const;
  nlohmann::ordered_json ToJson() const;
};
GraphReport ReportGraph(const Graph& graph);

// report_node_type: Node name | Fx Node op | Mase type | Mase op | Value type
// (the data_in_0 type or "NA"); rendered in tabulate's simple format.
Table ReportNodeType(const Graph& graph);

// report_node_shape: per node "name: <n>", "in:", "data_in_k = [shape]",
// "out:", "data_out_0 = [shape]".
std::string ReportNodeShape(const Graph& graph);

// MASE's per-node parameter dicts (as Python values).
PyValue CommonParam(const Node& node);
PyValue SoftwareParam(const Node& node);
PyValue HardwareParam(const Node& node);

// report_node_meta_param. `which` entries: "all", "common", "hardware",
// "software"; empty means {"all"}. INVALID_ARGUMENT naming the bad entry.
absl::StatusOr<Table> ReportNodeMetaParam(const Graph& graph,
                                          const std::vector<std::string>& which);

// MASE's node_meta_param.toml (save_node_meta_param): one table per node with
// its common / software / hardware parameters; null written as "NA".
std::string NodeMetaParamToml(const Graph& graph);

// Parses `which` from the pass table ({"which": [...], "save_path": ...}).
absl::StatusOr<std::vector<std::string>> ParseWhich(const nlohmann::ordered_json& args);

}  // namespace qsweep
