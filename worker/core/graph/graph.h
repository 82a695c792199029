// The graph IR: a small stand-in for MASE's MaseGraph over a sequential model.
// Nodes are named as torch.fx names them ("x", "seq_blocks_0", ..., "output")
// and carry MASE's mase_type / mase_op and per-argument metadata (shape,
// dtype, arithmetic type and precision, statistics). Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/core/model/model_spec.h"

namespace qsweep {

// Metadata of one argument or result of a node (MASE's common.args.<name>).
struct TensorMeta {
  std::vector<int64_t> shape;
  std::string torch_dtype = "torch.float32";
  std::string type = "float";         // "float", "integer", "minifloat_ieee", ...
  std::vector<int> precision = {32};  // [32] for float, [width, frac_width] for integer
  std::string from;                   // producing node for data_in_k, "" for parameters
  nlohmann::json stat = nlohmann::json::object();  // software.args.<name>.stat
};

struct Node {
  std::string name;         // "x", "seq_blocks_2", "output"
  std::string op;           // fx op: "placeholder", "call_module", "output"
  std::string target;       // "x", "seq_blocks.2", "output"
  std::string mase_type;    // "placeholder", "module", "module_related_func", "output"
  std::string mase_op;      // "placeholder", "batch_norm1d", "linear", "relu", "dropout", "output"
  int layer = -1;           // index into ModelSpec::layers for call_module nodes
  // Ordered maps keyed "data_in_0", "weight", "bias", "running_mean", ... / "data_out_0".
  std::map<std::string, TensorMeta> args;
  std::map<std::string, TensorMeta> results;
  // The module's class name after transforms ("Linear" or "LinearInteger");
  // for non-module nodes the fx target ("x", "output").
  std::string type_name;
};

struct Graph {
  ModelSpec spec;
  std::vector<Node> nodes;

  const Node* Find(const std::string& name) const;
  Node* Find(const std::string& name);
  // call_module node of layer i.
  Node& LayerNode(size_t i) { return nodes[i + 1]; }
  const Node& LayerNode(size_t i) const { return nodes[i + 1]; }
};

// Builds the graph of a sequential model with metadata for a batch of
// `batch` rows: shapes from the layer widths, float32 everywhere, precision
// [32]. The torch layer confirms the shapes by running a dummy batch.
Graph BuildGraph(const ModelSpec& spec, int64_t batch);

// torch.fx-style printout of the graph (used by report_graph), e.g.
//   graph():
//       %x : [#users=1] = placeholder[target=x]
//       %seq_blocks_0 : [#users=1] = call_module[target=seq_blocks.0](args = (%x,), kwargs = {})
//       ...
//       return seq_blocks_3
std::string FxGraphText(const Graph& graph);

}  // namespace qsweep
