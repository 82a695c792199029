#include "worker/core/model/model_spec.h"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace qsweep {

std::string LayerSpec::TypeName() const {
  switch (kind) {
    case LayerKind::kBatchNorm1d:
      return "BatchNorm1d";
    case LayerKind::kReLU:
      return "ReLU";
    case LayerKind::kLinear:
      return "Linear";
    case LayerKind::kDropout:
      return "Dropout";
  }
  return "?";
}

std::string LayerSpec::MaseOp() const {
  switch (kind) {
    case LayerKind::kBatchNorm1d:
      return "batch_norm1d";
    case LayerKind::kReLU:
      return "relu";
    case LayerKind::kLinear:
      return "linear";
    case LayerKind::kDropout:
      return "dropout";
  }
  return "?";
}

std::string LayerSpec::Repr() const {
  switch (kind) {
    case LayerKind::kBatchNorm1d:
      return absl::StrCat("BatchNorm1d(", out,
                          ", eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
    case LayerKind::kReLU:
      return "ReLU(inplace=True)";
    case LayerKind::kLinear:
      return absl::StrCat("Linear(in_features=", in, ", out_features=", out, ", bias=True)");
    case LayerKind::kDropout: {
      std::ostringstream p_text;
      p_text << p;
      std::string s = p_text.str();
      if (s.find('.') == std::string::npos) s += ".0";
      return absl::StrCat("Dropout(p=", s, ", inplace=False)");
    }
  }
  return "?";
}

int64_t LayerSpec::TrainableParams() const {
  switch (kind) {
    case LayerKind::kBatchNorm1d:
      return 2 * out;
    case LayerKind::kLinear:
      return in * out + out;
    default:
      return 0;
  }
}

int64_t ModelSpec::TrainableParams() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.TrainableParams();
  return n;
}

int64_t ModelSpec::BufferEntries() const {
  int64_t n = 0;
  for (const auto& l : layers)
    if (l.kind == LayerKind::kBatchNorm1d) n += 2 * l.out + 1;
  return n;
}

std::string ModelSpec::NodeName(size_t i) const { return absl::StrCat(container, "_", i); }
std::string ModelSpec::ModulePath(size_t i) const { return absl::StrCat(container, ".", i); }

namespace {

LayerSpec BN(int64_t n) { return {LayerKind::kBatchNorm1d, n, n, 0.0}; }
LayerSpec R() { return {LayerKind::kReLU, 0, 0, 0.0}; }
LayerSpec L(int64_t i, int64_t o) { return {LayerKind::kLinear, i, o, 0.0}; }
LayerSpec D(double p) { return {LayerKind::kDropout, 0, 0, p}; }

// Fills ReLU/Dropout widths from the preceding layer, so every layer knows its width.
void PropagateWidths(ModelSpec& spec) {
  int64_t width = spec.in_features;
  for (auto& l : spec.layers) {
    if (l.kind == LayerKind::kReLU || l.kind == LayerKind::kDropout) {
      l.in = l.out = width;
    } else if (l.kind == LayerKind::kBatchNorm1d) {
      if (l.out == 0) l.in = l.out = width;
      width = l.out;
    } else {
      if (l.in == 0) l.in = width;
      width = l.out;
    }
  }
}

}  // namespace

std::vector<std::string> ZooModelNames() { return {"jsc-tiny", "jsc-toy", "jsc-s", "jsc-trt"}; }

absl::StatusOr<ModelSpec> ZooModel(const std::string& name, int64_t in, int64_t k) {
  if (in <= 0 || k <= 0)
    return absl::InvalidArgumentError("model input and output widths must be positive");
  ModelSpec s;
  s.name = name;
  s.in_features = in;
  s.num_classes = k;
  if (name == "jsc-tiny") {
    s.layers = {BN(in), R(), L(in, k), R()};
  } else if (name == "jsc-toy") {
    s.layers = {BN(in), R(), L(in, 8), BN(8), R(), L(8, 8), BN(8), R(), L(8, k), BN(k), R()};
  } else if (name == "jsc-s") {
    s.container = "module_list";
    s.layers = {BN(in),    R(), L(in, 64), BN(64), R(),      L(64, 32), R(),
                L(32, 32), R(), L(32, 32), R(),    L(32, k), BN(k),     R()};
  } else if (name == "jsc-trt") {
    s.layers = {BN(in), R(),       L(in, 32), BN(32), R(),      L(32, 48), BN(48), R(),
                D(0.5), L(48, 16), BN(16),    R(),    L(16, k), BN(k),     R()};
  } else {
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "': known models are ",
                                            absl::StrJoin(ZooModelNames(), ", "),
                                            ", or a path to a model .toml file"));
  }
  PropagateWidths(s);
  return s;
}

namespace {

absl::Status FieldError(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("model field '", field, "': ", what));
}

absl::StatusOr<int64_t> PositiveInt(const toml::node* n, const std::string& field) {
  auto v = n ? n->value<int64_t>() : std::nullopt;
  if (!v) return FieldError(field, "must be an integer");
  if (*v <= 0) return FieldError(field, absl::StrCat("must be > 0, got ", *v));
  return *v;
}

absl::StatusOr<double> Probability(const toml::node* n, const std::string& field) {
  auto v = n ? n->value<double>() : std::nullopt;
  if (!v) return FieldError(field, "must be a number");
  if (*v < 0.0 || *v >= 1.0) return FieldError(field, "must be in [0, 1)");
  return *v;
}

absl::Status ParseLayerList(const toml::array& arr, ModelSpec& spec) {
  for (size_t i = 0; i < arr.size(); ++i) {
    std::string field = absl::StrCat("layers[", i, "]");
    const toml::table* t = arr[i].as_table();
    if (!t) return FieldError(field, "must be a table like {type = \"linear\", width = 8}");
    auto type = (*t)["type"].value<std::string>();
    if (!type)
      return FieldError(field + ".type", "is required: one of linear, batch_norm, relu, dropout");
    for (auto&& [k, v] : *t) {
      std::string key(k.str());
      if (key != "type" && key != "width" && key != "p")
        return FieldError(absl::StrCat(field, ".", key), "unknown key; allowed: type, width, p");
    }
    if (*type == "linear") {
      const toml::node* w = t->get("width");
      bool last_linear = true;
      for (size_t j = i + 1; j < arr.size(); ++j) {
        const toml::table* u = arr[j].as_table();
        if (u && (*u)["type"].value<std::string>() == std::optional<std::string>("linear"))
          last_linear = false;
      }
      int64_t width = 0;
      if (!w || (w->value<std::string>() == std::optional<std::string>("classes"))) {
        if (!last_linear)
          return FieldError(field + ".width",
                            "is required (only the last linear layer may omit it)");
        width = spec.num_classes;
      } else {
        QSWEEP_ASSIGN_OR_RETURN(width, PositiveInt(w, field + ".width"));
      }
      spec.layers.push_back(L(0, width));
    } else if (*type == "batch_norm" || *type == "batchnorm" || *type == "batch_norm1d") {
      spec.layers.push_back(BN(0));
    } else if (*type == "relu") {
      spec.layers.push_back(R());
    } else if (*type == "dropout") {
      double p = 0.5;
      if (t->get("p")) {
        QSWEEP_ASSIGN_OR_RETURN(p, Probability(t->get("p"), field + ".p"));
      }
      spec.layers.push_back(D(p));
    } else {
      return FieldError(field + ".type",
                        absl::StrCat("unknown layer type '", *type,
                                     "'; allowed: linear, batch_norm, relu, dropout"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseHidden(const toml::table& tbl, ModelSpec& spec) {
  const toml::array* hidden = tbl["hidden"].as_array();
  if (!hidden) return FieldError("hidden", "must be a list of widths like [64, 40, 10]");
  bool bn = tbl["batch_norm"].value_or(true);
  if (tbl.contains("batch_norm") && !tbl["batch_norm"].is_boolean())
    return FieldError("batch_norm", "must be true or false");
  double dropout = 0.0;
  if (tbl.contains("dropout")) {
    QSWEEP_ASSIGN_OR_RETURN(dropout, Probability(tbl.get("dropout"), "dropout"));
  }
  spec.layers.push_back(BN(0));
  spec.layers.push_back(R());
  for (size_t i = 0; i < hidden->size(); ++i) {
    QSWEEP_ASSIGN_OR_RETURN(int64_t w,
                            PositiveInt(hidden->get(i), absl::StrCat("hidden[", i, "]")));
    spec.layers.push_back(L(0, w));
    if (bn) spec.layers.push_back(BN(0));
    spec.layers.push_back(R());
    if (dropout > 0) spec.layers.push_back(D(dropout));
  }
  spec.layers.push_back(L(0, spec.num_classes));
  if (bn) spec.layers.push_back(BN(0));
  spec.layers.push_back(R());
  return absl::OkStatus();
}

absl::StatusOr<ModelSpec> ModelFromTable(const toml::table& tbl, const std::string& default_name,
                                         int64_t in, int64_t k) {
  ModelSpec spec;
  spec.in_features = in;
  spec.num_classes = k;
  spec.name = tbl["name"].value_or(default_name);
  if (tbl.contains("name") && !tbl["name"].is_string())
    return FieldError("name", "must be a string");
  spec.container = tbl["container"].value_or(std::string("seq_blocks"));
  if (spec.container != "seq_blocks" && spec.container != "module_list")
    return FieldError("container", "must be \"seq_blocks\" or \"module_list\"");
  for (auto&& [key, v] : tbl) {
    std::string k2(key.str());
    if (k2 != "name" && k2 != "container" && k2 != "layers" && k2 != "hidden" &&
        k2 != "batch_norm" && k2 != "dropout")
      return FieldError(
          k2, "unknown key; allowed: name, container, layers, hidden, batch_norm, dropout");
  }
  if (tbl.contains("layers") == tbl.contains("hidden"))
    return FieldError("layers", "give exactly one of 'layers' (a layer list) or 'hidden' (widths)");
  if (tbl.contains("layers")) {
    const toml::array* arr = tbl["layers"].as_array();
    if (!arr || arr->empty())
      return FieldError("layers", "must be a non-empty list of layer tables");
    QSWEEP_RETURN_IF_ERROR(ParseLayerList(*arr, spec));
  } else {
    QSWEEP_RETURN_IF_ERROR(ParseHidden(tbl, spec));
  }
  PropagateWidths(spec);
  QSWEEP_RETURN_IF_ERROR(ValidateModel(spec));
  return spec;
}

// JSON (from a config's [model] table) back to TOML nodes, so that inline
// definitions take exactly the path of model files.
absl::Status JsonToToml(const nlohmann::json& v, const std::string& field, toml::array& out);

absl::Status JsonToToml(const nlohmann::json& v, const std::string& field, toml::table& out,
                        const std::string& key) {
  if (v.is_boolean())
    out.insert_or_assign(key, v.get<bool>());
  else if (v.is_number_integer())
    out.insert_or_assign(key, v.get<int64_t>());
  else if (v.is_number())
    out.insert_or_assign(key, v.get<double>());
  else if (v.is_string())
    out.insert_or_assign(key, v.get<std::string>());
  else if (v.is_array()) {
    toml::array a;
    for (size_t i = 0; i < v.size(); ++i)
      QSWEEP_RETURN_IF_ERROR(JsonToToml(v[i], absl::StrCat(field, "[", i, "]"), a));
    out.insert_or_assign(key, std::move(a));
  } else if (v.is_object()) {
    toml::table t;
    for (const auto& [k2, v2] : v.items())
      QSWEEP_RETURN_IF_ERROR(JsonToToml(v2, absl::StrCat(field, ".", k2), t, k2));
    out.insert_or_assign(key, std::move(t));
  } else {
    return FieldError(field, "may not be \"NA\"");
  }
  return absl::OkStatus();
}

absl::Status JsonToToml(const nlohmann::json& v, const std::string& field, toml::array& out) {
  if (v.is_boolean())
    out.push_back(v.get<bool>());
  else if (v.is_number_integer())
    out.push_back(v.get<int64_t>());
  else if (v.is_number())
    out.push_back(v.get<double>());
  else if (v.is_string())
    out.push_back(v.get<std::string>());
  else if (v.is_array()) {
    toml::array a;
    for (size_t i = 0; i < v.size(); ++i)
      QSWEEP_RETURN_IF_ERROR(JsonToToml(v[i], absl::StrCat(field, "[", i, "]"), a));
    out.push_back(std::move(a));
  } else if (v.is_object()) {
    toml::table t;
    for (const auto& [k2, v2] : v.items())
      QSWEEP_RETURN_IF_ERROR(JsonToToml(v2, absl::StrCat(field, ".", k2), t, k2));
    out.push_back(std::move(t));
  } else {
    return FieldError(field, "may not be \"NA\"");
  }
  return absl::OkStatus();
}

bool IsModelNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '+';
}

}  // namespace

absl::StatusOr<ModelSpec> ModelFromToml(const std::string& text, const std::string& default_name,
                                        int64_t in, int64_t k) {
  toml::table tbl;
  try {
    tbl = toml::parse(text);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "model file is not valid TOML: " << e.description() << " (line " << e.source().begin.line
        << ")";
    return absl::InvalidArgumentError(msg.str());
  }
  return ModelFromTable(tbl, default_name, in, k);
}

absl::StatusOr<ModelSpec> ModelFromJson(const nlohmann::json& definition,
                                        const std::string& default_name, int64_t in, int64_t k) {
  if (!definition.is_object())
    return absl::InvalidArgumentError("an inline model definition must be a table");
  toml::table tbl;
  for (const auto& [key, v] : definition.items())
    QSWEEP_RETURN_IF_ERROR(JsonToToml(v, key, tbl, key));
  return ModelFromTable(tbl, default_name, in, k);
}

std::string ModelValueName(const nlohmann::json& model) {
  if (model.is_string()) return model.get<std::string>();
  if (model.is_object()) {
    auto it = model.find("name");
    return it != model.end() && it->is_string() ? it->get<std::string>() : "custom";
  }
  return "";
}

absl::StatusOr<ModelSpec> ServiceModel(const nlohmann::json& model, int64_t in, int64_t k) {
  if (model.is_object()) {
    const std::string name = ModelValueName(model);
    const bool name_ok = !name.empty() && name.size() <= 64 && name != "." && name != ".." &&
                         std::all_of(name.begin(), name.end(), IsModelNameChar);
    if (!name_ok)
      return absl::InvalidArgumentError(
          "key 'model': an inline model's name must be 1-64 characters of A-Z a-z 0-9 . _ - +");
    auto spec = ModelFromJson(model, name, in, k);
    if (!spec.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("key 'model': inline model '", name, "': ", spec.status().message()));
    return spec;
  }
  if (model.is_string()) {
    const std::string name = model.get<std::string>();
    const auto zoo = ZooModelNames();
    if (std::find(zoo.begin(), zoo.end(), name) != zoo.end()) return ZooModel(name, in, k);
  }
  // One message for every other value: nothing about the server's files leaks.
  std::string given = model.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (given.size() > 80) given = given.substr(0, 77) + "...";
  return absl::InvalidArgumentError(absl::StrCat(
      "key 'model' is ", given, "; it must be a model zoo name (",
      absl::StrJoin(ZooModelNames(), ", "),
      ") or an inline [model] table; the service never reads model files: custom models are "
      "sent inline (qsweep submit and qsweep transform submit read a local model .toml and "
      "send its content)"));
}

absl::StatusOr<ModelSpec> ResolveModel(const std::string& name_or_path, int64_t in, int64_t k) {
  auto zoo = ZooModel(name_or_path, in, k);
  if (zoo.ok() || !absl::IsNotFound(zoo.status())) return zoo;
  namespace fs = std::filesystem;
  bool looks_like_path =
      name_or_path.find('/') != std::string::npos || fs::path(name_or_path).extension() == ".toml";
  if (!looks_like_path) return zoo.status();
  std::ifstream f(name_or_path);
  if (!f)
    return absl::NotFoundError(absl::StrCat("model file '", name_or_path, "' cannot be opened"));
  std::stringstream buf;
  buf << f.rdbuf();
  auto spec = ModelFromToml(buf.str(), fs::path(name_or_path).stem().string(), in, k);
  if (!spec.ok())
    return absl::Status(spec.status().code(),
                        absl::StrCat(name_or_path, ": ", spec.status().message()));
  return spec;
}

absl::Status ValidateModel(const ModelSpec& spec) {
  if (spec.layers.empty()) return FieldError("layers", "the model has no layers");
  int64_t width = spec.in_features;
  bool has_linear = false;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const auto& l = spec.layers[i];
    if (l.kind == LayerKind::kLinear || l.kind == LayerKind::kBatchNorm1d) {
      if (l.in != width)
        return FieldError(
            absl::StrCat("layers[", i, "]"),
            absl::StrCat(l.TypeName(), " expects width ", l.in, " but receives ", width));
      width = l.out;
      has_linear |= l.kind == LayerKind::kLinear;
    }
  }
  if (!has_linear) return FieldError("layers", "the model needs at least one linear layer");
  if (width != spec.num_classes)
    return FieldError(
        "layers", absl::StrCat("the last layer produces ", width, " outputs but the dataset has ",
                               spec.num_classes, " classes"));
  return absl::OkStatus();
}

}  // namespace qsweep
