#include "client/model_commands.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/table.h"
#include "worker/core/model/model_spec.h"

namespace qsweep {
namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "error: %s\n", msg.c_str());
  return 2;
}

// Parses "--format X" (table|json) from args; the rest goes to `positionals`.
bool ParseFormat(const std::vector<std::string>& args, std::string& format,
                 std::vector<std::string>& positionals, std::string& error) {
  format = "table";
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-h" || args[i] == "--help") {
      error = "help";
      return false;
    }
    if (args[i] == "--format" || args[i].rfind("--format=", 0) == 0) {
      std::string v;
      if (args[i] == "--format") {
        if (i + 1 >= args.size()) {
          error = "--format needs a value: table or json";
          return false;
        }
        v = args[++i];
      } else {
        v = args[i].substr(9);
      }
      if (v != "table" && v != "json") {
        error = absl::StrCat("--format is '", v, "'; allowed: table, json");
        return false;
      }
      format = v;
    } else if (args[i].rfind("-", 0) == 0) {
      error = absl::StrCat("unknown flag '", args[i], "'; allowed: --format table|json");
      return false;
    } else {
      positionals.push_back(args[i]);
    }
  }
  return true;
}

nlohmann::json LayerJson(const ModelSpec& s, size_t i) {
  const LayerSpec& l = s.layers[i];
  nlohmann::json j = {{"node", s.NodeName(i)}, {"module", s.ModulePath(i)},
                      {"type", l.TypeName()}, {"mase_op", l.MaseOp()},
                      {"in", l.in}, {"out", l.out}, {"params", l.TrainableParams()}};
  if (l.kind == LayerKind::kDropout) j["p"] = l.p;
  return j;
}

}  // namespace

constexpr const char* kModelsUsage =
    "usage: qsweep models [--format table|json]\n"
    "  lists the built-in JSC models with their trainable parameter counts\n";
constexpr const char* kModelUsage =
    "usage: qsweep model show NAME|FILE.toml [--format table|json]\n"
    "  prints the layer table and parameter count of a zoo model or a model file\n";

int Help(const char* usage) {
  std::printf("%s", usage);
  return 0;
}

int RunModelsCommand(const std::vector<std::string>& args) {
  std::string format, error;
  std::vector<std::string> pos;
  if (!ParseFormat(args, format, pos, error)) return error == "help" ? Help(kModelsUsage) : Fail(error);
  if (!pos.empty()) return Fail(absl::StrCat("qsweep models takes no arguments, got '", pos[0], "'"));
  nlohmann::json arr = nlohmann::json::array();
  Table t;
  t.headers = {"model", "params", "layers", "architecture"};
  for (const auto& name : ZooModelNames()) {
    auto s = ZooModel(name);
    std::string arch;
    for (size_t i = 0; i < s->layers.size(); ++i) {
      const auto& l = s->layers[i];
      if (i) arch += " ";
      if (l.kind == LayerKind::kLinear) arch += absl::StrCat("L(", l.in, ",", l.out, ")");
      else if (l.kind == LayerKind::kBatchNorm1d) arch += absl::StrCat("BN(", l.out, ")");
      else if (l.kind == LayerKind::kReLU) arch += "R";
      else arch += absl::StrCat("D(", l.p, ")");
    }
    t.rows.push_back({name, std::to_string(s->TrainableParams()), std::to_string(s->layers.size()), arch});
    arr.push_back({{"name", name}, {"params", s->TrainableParams()},
                   {"layers", s->layers.size()}, {"architecture", arch}});
  }
  if (format == "json") std::printf("%s\n", arr.dump(2).c_str());
  else std::printf("%s\n", RenderTable(t, TableStyle::kSimple).c_str());
  return 0;
}

int RunModelCommand(const std::vector<std::string>& args) {
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) return Help(kModelUsage);
  if (args.empty() || args[0] != "show")
    return Fail("usage: qsweep model show NAME|FILE.toml [--format table|json]");
  std::string format, error;
  std::vector<std::string> pos;
  if (!ParseFormat({args.begin() + 1, args.end()}, format, pos, error))
    return error == "help" ? Help(kModelUsage) : Fail(error);
  if (pos.size() != 1) return Fail("usage: qsweep model show NAME|FILE.toml [--format table|json]");
  auto spec = ResolveModel(pos[0]);
  if (!spec.ok()) return Fail(std::string(spec.status().message()));
  if (format == "json") {
    nlohmann::json j = {{"name", spec->name}, {"container", spec->container},
                        {"in_features", spec->in_features}, {"num_classes", spec->num_classes},
                        {"params", spec->TrainableParams()},
                        {"buffer_entries", spec->BufferEntries()},
                        {"layers", nlohmann::json::array()}};
    for (size_t i = 0; i < spec->layers.size(); ++i) j["layers"].push_back(LayerJson(*spec, i));
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  Table t;
  t.headers = {"node", "module", "type", "in", "out", "params"};
  for (size_t i = 0; i < spec->layers.size(); ++i) {
    const auto& l = spec->layers[i];
    t.rows.push_back({spec->NodeName(i), l.Repr(), l.TypeName(),
                      std::to_string(l.in), std::to_string(l.out),
                      std::to_string(l.TrainableParams())});
  }
  std::printf("Model '%s' (%s), %lld inputs, %lld classes\n%s\n", spec->name.c_str(),
              spec->container.c_str(), static_cast<long long>(spec->in_features),
              static_cast<long long>(spec->num_classes), RenderTable(t, TableStyle::kSimple).c_str());
  std::printf("%lld Trainable params\n0 Non-trainable params\n%lld Total params\n",
              static_cast<long long>(spec->TrainableParams()),
              static_cast<long long>(spec->TrainableParams()));
  return 0;
}

}  // namespace qsweep
