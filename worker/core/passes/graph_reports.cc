#include "worker/core/passes/graph_reports.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace qsweep {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

PyValue IntList(const std::vector<int64_t>& v) {
  std::vector<PyValue> items;
  for (auto x : v) items.push_back(PyValue::Int(x));
  return PyValue::List(std::move(items));
}

PyValue MetaDict(const TensorMeta& m, bool is_data) {
  PyValue d = PyValue::Dict();
  d.Set("shape", IntList(m.shape));
  d.Set("torch_dtype", PyValue::Raw(m.torch_dtype));
  d.Set("type", PyValue::Str(m.type));
  std::vector<int64_t> prec(m.precision.begin(), m.precision.end());
  d.Set("precision", IntList(prec));
  if (is_data) d.Set("from", m.from.empty() ? PyValue::None() : PyValue::Raw(m.from));
  return d;
}

bool IsData(const std::string& arg) { return arg.rfind("data_", 0) == 0; }

}  // namespace

std::string ModuleRepr(const Graph& graph, const Node& node) {
  if (node.layer < 0 || node.layer >= static_cast<int>(graph.spec.layers.size()))
    return node.type_name;
  const LayerSpec& l = graph.spec.layers[node.layer];
  const std::string original = l.TypeName();
  if (node.type_name == original || node.type_name.empty()) return l.Repr();
  if (l.kind == LayerKind::kLinear)
    return absl::StrCat(node.type_name, "(in_features=", l.in, ", out_features=", l.out,
                        ", bias=True)");
  return node.type_name + "()";
}

GraphReport ReportGraph(const Graph& graph) {
  GraphReport r;
  r.fx_graph = FxGraphText(graph);
  const char* kOps[] = {"placeholder", "get_attr",    "call_function",
                        "call_method", "call_module", "output"};
  for (const char* op : kOps) {
    int64_t n = std::count_if(graph.nodes.begin(), graph.nodes.end(),
                              [&](const Node& node) { return node.op == op; });
    r.op_counts.emplace_back(op, n);
  }
  for (const auto& n : graph.nodes)
    if (n.op == "call_module") r.layer_types.push_back(ModuleRepr(graph, n));
  return r;
}

std::string GraphReport::Text() const {
  std::vector<std::string> counts;
  for (const auto& [op, n] : op_counts) counts.push_back(absl::StrCat("'", op, "': ", n));
  return absl::StrCat(fx_graph, "\nNetwork overview:\n{", absl::StrJoin(counts, ", "),
                      "}\nLayer types:\n[", absl::StrJoin(layer_types, ", "), "]");
}

nlohmann::ordered_json GraphReport::ToJson() const {
  nlohmann::ordered_json j;
  j["fx_graph"] = fx_graph;
  j["op_counts"] = nlohmann::ordered_json::object();
  for (const auto& [op, n] : op_counts) j["op_counts"][op] = n;
  j["layer_types"] = layer_types;
  return j;
}

Table ReportNodeType(const Graph& graph) {
  Table t;
  t.headers = {"Node name", "Fx Node op", "Mase type", "Mase op", "Value type"};
  for (const auto& n : graph.nodes) {
    auto it = n.args.find("data_in_0");
    t.rows.push_back(
        {n.name, n.op, n.mase_type, n.mase_op, it == n.args.end() ? "NA" : it->second.type});
  }
  return t;
}

std::string ReportNodeShape(const Graph& graph) {
  std::vector<std::string> lines;
  for (const auto& n : graph.nodes) {
    lines.push_back("name: " + n.name);
    lines.push_back("in:");
    for (const auto& [arg, m] : n.args)
      if (IsData(arg)) lines.push_back(absl::StrCat(arg, " = ", ShapeText(m.shape)));
    lines.push_back("out:");
    for (const auto& [arg, m] : n.results)
      lines.push_back(absl::StrCat(arg, " = ", ShapeText(m.shape)));
  }
  return absl::StrJoin(lines, "\n");
}

PyValue CommonParam(const Node& node) {
  PyValue d = PyValue::Dict();
  d.Set("mase_type", PyValue::Str(node.mase_type));
  d.Set("mase_op", PyValue::Str(node.mase_op));
  PyValue args = PyValue::Dict();
  for (const auto& [name, m] : node.args) args.Set(name, MetaDict(m, IsData(name)));
  PyValue results = PyValue::Dict();
  for (const auto& [name, m] : node.results) results.Set(name, MetaDict(m, false));
  d.Set("args", std::move(args));
  d.Set("results", std::move(results));
  return d;
}

PyValue SoftwareParam(const Node& node) {
  PyValue d = PyValue::Dict();
  auto section = [](const std::map<std::string, TensorMeta>& metas) {
    PyValue s = PyValue::Dict();
    for (const auto& [name, m] : metas) {
      PyValue e = PyValue::Dict();
      e.Set("stat", PyFromJson(m.stat));
      s.Set(name, std::move(e));
    }
    return s;
  };
  if (node.op != "placeholder") d.Set("args", section(node.args));
  if (node.op != "output") d.Set("results", section(node.results));
  return d;
}

PyValue HardwareParam(const Node&) { return PyValue::Dict(); }

namespace {

nlohmann::ordered_json PyToJson(const PyValue& v) {
  using K = PyValue::Kind;
  switch (v.kind) {
    case K::kNone:
      return "NA";
    case K::kBool:
      return v.b;
    case K::kInt:
      return v.i;
    case K::kFloat:
      return std::isfinite(v.f) ? nlohmann::ordered_json(v.f) : "NA";
    case K::kStr:
    case K::kRaw:
      return v.s;
    case K::kList: {
      auto a = nlohmann::ordered_json::array();
      for (const auto& e : v.list) a.push_back(PyToJson(e));
      return a;
    }
    case K::kDict: {
      auto o = nlohmann::ordered_json::object();
      for (const auto& [k, e] : v.dict) o[k] = PyToJson(e);
      return o;
    }
  }
  return "NA";
}

toml::table ToToml(const nlohmann::ordered_json& j);

void Insert(toml::table& t, const std::string& k, const nlohmann::ordered_json& v);

toml::array ToTomlArray(const nlohmann::ordered_json& j) {
  toml::array a;
  for (const auto& e : j) {
    if (e.is_object())
      a.push_back(ToToml(e));
    else if (e.is_array())
      a.push_back(ToTomlArray(e));
    else if (e.is_boolean())
      a.push_back(e.get<bool>());
    else if (e.is_number_integer())
      a.push_back(e.get<int64_t>());
    else if (e.is_number())
      a.push_back(e.get<double>());
    else
      a.push_back(e.is_string() ? e.get<std::string>() : std::string("NA"));
  }
  return a;
}

void Insert(toml::table& t, const std::string& k, const nlohmann::ordered_json& v) {
  if (v.is_object())
    t.insert(k, ToToml(v));
  else if (v.is_array())
    t.insert(k, ToTomlArray(v));
  else if (v.is_boolean())
    t.insert(k, v.get<bool>());
  else if (v.is_number_integer())
    t.insert(k, v.get<int64_t>());
  else if (v.is_number())
    t.insert(k, v.get<double>());
  else
    t.insert(k, v.is_string() ? v.get<std::string>() : std::string("NA"));
}

toml::table ToToml(const nlohmann::ordered_json& j) {
  toml::table t;
  for (auto it = j.begin(); it != j.end(); ++it) Insert(t, it.key(), it.value());
  return t;
}

}  // namespace

std::string NodeMetaParamToml(const Graph& graph) {
  toml::table root;
  for (const auto& n : graph.nodes) {
    nlohmann::ordered_json p = nlohmann::ordered_json::object();
    p["common"] = PyToJson(CommonParam(n));
    p["software"] = PyToJson(SoftwareParam(n));
    p["hardware"] = PyToJson(HardwareParam(n));
    root.insert(n.name, ToToml(p));
  }
  std::ostringstream out;
  out << root << "\n";
  return out.str();
}

absl::StatusOr<std::vector<std::string>> ParseWhich(const nlohmann::ordered_json& args) {
  std::vector<std::string> which;
  if (!args.is_object() || !args.contains("which") || args["which"].is_null()) return which;
  const auto& w = args["which"];
  if (!w.is_array())
    return absl::InvalidArgumentError(
        "passes.report_node_meta_param.which must be a list, e.g. [\"all\"]; allowed entries: "
        "all, common, hardware, software");
  for (const auto& e : w) {
    if (!e.is_string())
      return absl::InvalidArgumentError(
          "passes.report_node_meta_param.which entries must be strings");
    which.push_back(e.get<std::string>());
  }
  return which;
}

absl::StatusOr<Table> ReportNodeMetaParam(const Graph& graph,
                                          const std::vector<std::string>& which_in) {
  std::vector<std::string> which = which_in.empty() ? std::vector<std::string>{"all"} : which_in;
  bool common = false, hardware = false, software = false;
  for (const auto& w : which) {
    if (w == "all") {
      common = hardware = software = true;
    } else if (w == "common") {
      common = true;
    } else if (w == "hardware") {
      hardware = true;
    } else if (w == "software") {
      software = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("passes.report_node_meta_param.which: '", w,
                       "' is not allowed; allowed: all, common, hardware, software"));
    }
  }
  Table t;
  t.headers = {"Node name", "Fx Node op", "Mase type", "Mase op"};
  if (common) t.headers.push_back("Common Param");
  if (hardware) t.headers.push_back("Hardware Param");
  if (software) t.headers.push_back("Software Param");
  for (const auto& n : graph.nodes) {
    std::vector<std::string> row = {n.name, n.op, n.mase_type, n.mase_op};
    if (common) row.push_back(PyPformat(CommonParam(n)));
    if (hardware) row.push_back(PyPformat(HardwareParam(n)));
    if (software) row.push_back(PyPformat(SoftwareParam(n)));
    t.rows.push_back(std::move(row));
  }
  return t;
}

}  // namespace qsweep
