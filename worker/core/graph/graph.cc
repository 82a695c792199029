#include "worker/core/graph/graph.h"

#include <sstream>

#include "absl/strings/str_cat.h"

namespace qsweep {

const Node* Graph::Find(const std::string& name) const {
  for (const auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

Node* Graph::Find(const std::string& name) {
  for (auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

namespace {

TensorMeta Activation(int64_t batch, int64_t width, const std::string& from) {
  TensorMeta m;
  m.shape = {batch, width};
  m.from = from;
  return m;
}

TensorMeta Param(std::vector<int64_t> shape) {
  TensorMeta m;
  m.shape = std::move(shape);
  return m;
}

}  // namespace

Graph BuildGraph(const ModelSpec& spec, int64_t batch) {
  Graph g;
  g.spec = spec;
  Node x;
  x.name = x.target = x.type_name = "x";
  x.op = x.mase_type = x.mase_op = "placeholder";
  x.results["data_out_0"] = Activation(batch, spec.in_features, "");
  g.nodes.push_back(x);

  std::string prev = "x";
  int64_t width = spec.in_features;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    Node n;
    n.name = spec.NodeName(i);
    n.target = spec.ModulePath(i);
    n.op = "call_module";
    n.layer = static_cast<int>(i);
    n.mase_op = l.MaseOp();
    n.type_name = l.TypeName();
    n.mase_type = (l.kind == LayerKind::kBatchNorm1d) ? "module" : "module_related_func";
    n.args["data_in_0"] = Activation(batch, width, prev);
    if (l.kind == LayerKind::kLinear) {
      n.args["weight"] = Param({l.out, l.in});
      n.args["bias"] = Param({l.out});
      width = l.out;
    } else if (l.kind == LayerKind::kBatchNorm1d) {
      n.args["weight"] = Param({l.out});
      n.args["bias"] = Param({l.out});
      n.args["running_mean"] = Param({l.out});
      n.args["running_var"] = Param({l.out});
    }
    n.results["data_out_0"] = Activation(batch, width, "");
    g.nodes.push_back(n);
    prev = n.name;
  }
  Node out;
  out.name = out.target = out.type_name = "output";
  out.op = out.mase_type = out.mase_op = "output";
  out.args["data_in_0"] = Activation(batch, width, prev);
  g.nodes.push_back(out);
  return g;
}

std::string FxGraphText(const Graph& graph) {
  std::ostringstream s;
  s << "graph():\n";
  std::string prev;
  for (const auto& n : graph.nodes) {
    if (n.op == "placeholder") {
      s << "    %" << n.name << " : [#users=1] = placeholder[target=" << n.target << "]\n";
    } else if (n.op == "call_module") {
      s << "    %" << n.name << " : [#users=1] = call_module[target=" << n.target
        << "](args = (%" << prev << ",), kwargs = {})\n";
    } else {
      s << "    return " << prev;
    }
    prev = n.name;
  }
  return s.str();
}

}  // namespace qsweep
