#include "worker/core/config/train_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/table.h"
#include "worker/core/config/toml_json.h"

namespace qsweep {

using nlohmann::json;

const std::vector<KeySpec>& TrainKeys() {
  static const std::vector<KeySpec> kKeys = [] {
    std::vector<KeySpec> k;
    auto add = [&](KeySpec s) { k.push_back(std::move(s)); };
    add({"model",
         "--model",
         {},
         KeyType::kString,
         nullptr,
         {},
         {},
         false,
         true,
         true,
         "model name (qsweep models) or a model .toml file"});
    add({"dataset",
         "--dataset",
         {},
         KeyType::kString,
         nullptr,
         {},
         {},
         false,
         true,
         true,
         "dataset: jsc, jsc-synthetic, or an imported dataset name"});
    add({"task",
         "--task",
         {},
         KeyType::kString,
         "classification",
         {"classification", "cls"},
         {},
         false,
         false,
         true,
         "task"});
    add({"load_name",
         "--load",
         {},
         KeyType::kString,
         nullptr,
         {},
         {},
         false,
         true,
         true,
         "checkpoint to load"});
    add({"load_type",
         "--load-type",
         {},
         KeyType::kString,
         "mz",
         {"pt", "pl", "mz", "ckpt"},
         {},
         false,
         false,
         true,
         "checkpoint type: ckpt/pl/mz = qsweep checkpoint, pt = state dict"});
    add({"batch_size",
         "--batch-size",
         {},
         KeyType::kInt,
         128,
         {},
         1.0,
         false,
         false,
         true,
         "batch size"});
    add({"to_debug",
         "--debug",
         {},
         KeyType::kBool,
         false,
         {},
         {},
         false,
         false,
         true,
         "limit every split to 5 batches"});
    add({"log_level",
         "--log-level",
         {},
         KeyType::kString,
         "info",
         {"debug", "info", "warning", "error", "critical"},
         {},
         false,
         false,
         true,
         "log level"});
    add({"report_to",
         "--report-to",
         {},
         KeyType::kString,
         "tensorboard",
         {"wandb", "tensorboard"},
         {},
         false,
         false,
         false,
         "accepted for MASE compatibility"});
    add({"seed", "--seed", {}, KeyType::kInt, 0, {}, 0.0, false, false, true, "random seed"});
    add({"quant_config",
         "--quant-config",
         {},
         KeyType::kString,
         nullptr,
         {},
         {},
         false,
         true,
         false,
         "accepted for MASE compatibility"});
    add({"training_optimizer",
         "--training-optimizer",
         {},
         KeyType::kString,
         "adam",
         {"adam", "sgd", "adamw"},
         {},
         false,
         false,
         true,
         "optimizer"});
    add({"trainer_precision",
         "--trainer-precision",
         {},
         KeyType::kString,
         "32",
         {"32"},
         {},
         false,
         false,
         true,
         "numeric precision (qsweep trains in fp32)"});
    add({"learning_rate",
         "--learning-rate",
         {},
         KeyType::kFloat,
         1e-5,
         {},
         0.0,
         true,
         false,
         true,
         "learning rate"});
    add({"weight_decay",
         "--weight-decay",
         {},
         KeyType::kFloat,
         0.0,
         {},
         0.0,
         false,
         false,
         true,
         "weight decay (adam: L2 in the gradient; adamw: decoupled)"});
    add({"max_epochs",
         "--max-epochs",
         {},
         KeyType::kInt,
         20,
         {},
         1.0,
         false,
         false,
         true,
         "epochs"});
    add({"max_steps",
         "--max-steps",
         {},
         KeyType::kInt,
         -1,
         {},
         {},
         false,
         true,
         true,
         "stop after this many optimizer steps (<= 0: no limit)"});
    add({"accumulate_grad_batches",
         "--accumulate-grad-batches",
         {},
         KeyType::kInt,
         1,
         {},
         1.0,
         false,
         false,
         true,
         "batches per optimizer step"});
    add({"log_every_n_steps",
         "--log-every-n-steps",
         {},
         KeyType::kInt,
         50,
         {},
         {},
         false,
         true,
         true,
         "train_loss_step interval (<= 0: never)"});
    add({"num_workers",
         "--cpu",
         {"--num-workers"},
         KeyType::kInt,
         0,
         {},
         0.0,
         false,
         false,
         false,
         "accepted for MASE compatibility (qsweep loads data in-process)"});
    add({"num_devices",
         "--gpu",
         {"--num-devices"},
         KeyType::kInt,
         1,
         {},
         1.0,
         false,
         false,
         false,
         "accepted for MASE compatibility"});
    add({"num_nodes",
         "--nodes",
         {},
         KeyType::kInt,
         1,
         {},
         1.0,
         false,
         false,
         false,
         "accepted for MASE compatibility"});
    add({"accelerator",
         "--accelerator",
         {},
         KeyType::kString,
         "auto",
         {"auto", "cpu", "gpu", "cuda", "mps"},
         {},
         false,
         false,
         true,
         "auto/cpu/gpu; --device picks an exact device"});
    add({"strategy",
         "--strategy",
         {},
         KeyType::kString,
         "auto",
         {"auto", "ddp", "ddp_find_unused_parameters_true"},
         {},
         false,
         false,
         false,
         "accepted for MASE compatibility"});
    add({"device",
         "--device",
         {},
         KeyType::kString,
         nullptr,
         {},
         {},
         false,
         true,
         true,
         "cpu, cuda or cuda:N (overrides accelerator)"});
    add({"threads",
         "--threads",
         {},
         KeyType::kInt,
         1,
         {},
         1.0,
         false,
         false,
         true,
         "intra-op CPU threads"});
    add({"project_dir",
         "--project-dir",
         {},
         KeyType::kString,
         "qsweep_output",
         {},
         {},
         false,
         false,
         true,
         "output root"});
    add({"project",
         "--project",
         {},
         KeyType::kString,
         nullptr,
         {},
         {},
         false,
         true,
         true,
         "project folder name (default {model}_{task}_{dataset}_{date})"});
    add({"data_dir",
         "--data-dir",
         {},
         KeyType::kString,
         nullptr,
         {},
         {},
         false,
         true,
         true,
         "dataset cache folder (default $QSWEEP_DATA_DIR or ~/.cache/qsweep/datasets)"});
    add({"synthetic_rows",
         "--synthetic-rows",
         {},
         KeyType::kInt,
         0,
         {},
         0.0,
         false,
         false,
         true,
         "rows of jsc-synthetic (0: JSC-sized)"});
    add({"synthetic_seed",
         "--synthetic-seed",
         {},
         KeyType::kInt,
         0,
         {},
         0.0,
         false,
         false,
         true,
         "generator seed of jsc-synthetic"});
    // MASE keys read from config files only, with no effect in qsweep.
    for (const char* name :
         {"t_max", "eta_min", "is_to_auto_requeue", "github_ci", "disable_dataset_cache", "target",
          "num_targets", "is_pretrained", "max_token_len", "run_emit", "skip_build", "skip_test",
          "profile", "no_warnings"}) {
      KeySpec s;
      s.name = name;
      s.type = KeyType::kString;  // type-checked loosely: any scalar
      s.used = false;
      s.help = "accepted for MASE compatibility";
      k.push_back(s);
    }
    return k;
  }();
  return kKeys;
}

const KeySpec* FindTrainKey(const std::string& name) {
  for (const auto& k : TrainKeys())
    if (k.name == name) return &k;
  return nullptr;
}

ConfigLayers NewConfigLayers() {
  ConfigLayers layers;
  for (const auto& k : TrainKeys())
    if (!k.flag.empty()) layers.defaults[k.name] = k.default_value;
  return layers;
}

json ConfigLayers::Effective() const {
  json e = defaults;
  for (auto& [k, v] : file.items()) e[k] = v;
  for (auto& [k, v] : cli.items()) e[k] = v;
  return e;
}

namespace {

std::string TypeName(KeyType t) {
  switch (t) {
    case KeyType::kInt:
      return "an integer";
    case KeyType::kFloat:
      return "a number";
    case KeyType::kString:
      return "a string";
    case KeyType::kBool:
      return "true or false";
  }
  return "?";
}

absl::Status KeyError(const KeySpec& key, const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, "'", key.name, "' ", what));
}

}  // namespace

absl::Status CheckKeyValue(const KeySpec& key, const json& v, const std::string& where) {
  if (key.flag.empty() && !key.used) return absl::OkStatus();  // config-only compat key
  if (v.is_null()) {
    if (!key.nullable) return KeyError(key, where, "may not be \"NA\"");
    return absl::OkStatus();
  }
  bool type_ok = false;
  switch (key.type) {
    case KeyType::kInt:
      type_ok = v.is_number_integer();
      break;
    case KeyType::kFloat:
      type_ok = v.is_number();
      break;
    case KeyType::kString:
      type_ok = v.is_string();
      break;
    case KeyType::kBool:
      type_ok = v.is_boolean();
      break;
  }
  // `model` may also be an inline definition (a [model] table), checked by the model layer.
  if (key.name == "model" && v.is_object()) return absl::OkStatus();
  if (!type_ok)
    return KeyError(key, where, absl::StrCat("must be ", TypeName(key.type), ", got ", v.dump()));
  if (key.name == "project") {
    std::string p = v.get<std::string>();
    if (p.empty() || p == "." || p == ".." || p.find('/') != std::string::npos ||
        p.find('\\') != std::string::npos)
      return KeyError(key, where,
                      absl::StrCat("is '", p,
                                   "'; it names one folder inside project_dir, so it "
                                   "may not be empty, contain '/' or be '.' or '..'"));
  }
  if (!key.allowed.empty()) {
    std::string s = v.get<std::string>();
    bool found = false;
    for (const auto& a : key.allowed) found |= (a == s);
    if (!found)
      return KeyError(key, where,
                      absl::StrCat("is '", s, "'; allowed: ", absl::StrJoin(key.allowed, ", ")));
  }
  if (key.min && v.is_number()) {
    double d = v.get<double>();
    if (!std::isfinite(d)) return KeyError(key, where, "must be finite");
    if (key.exclusive_min ? !(d > *key.min) : !(d >= *key.min)) {
      std::ostringstream m;
      m << "must be " << (key.exclusive_min ? "> " : ">= ") << *key.min << ", got " << v.dump();
      return KeyError(key, where, m.str());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<json> ParseKeyValue(const KeySpec& key, const std::string& text) {
  const std::string where = absl::StrCat("flag ", key.flag, ": ");
  if (text == "NA") {
    json v = nullptr;
    QSWEEP_RETURN_IF_ERROR(CheckKeyValue(key, v, where));
    return v;
  }
  json v;
  switch (key.type) {
    case KeyType::kInt: {
      errno = 0;
      char* end = nullptr;
      long long n = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE)
        return KeyError(key, where, absl::StrCat("must be an integer, got '", text, "'"));
      v = static_cast<int64_t>(n);
      break;
    }
    case KeyType::kFloat: {
      errno = 0;
      char* end = nullptr;
      double d = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(d))
        return KeyError(key, where, absl::StrCat("must be a number, got '", text, "'"));
      v = d;
      break;
    }
    case KeyType::kBool:
      if (text == "true" || text == "1" || text.empty())
        v = true;
      else if (text == "false" || text == "0")
        v = false;
      else
        return KeyError(key, where, absl::StrCat("must be true or false, got '", text, "'"));
      break;
    case KeyType::kString:
      v = text;
      break;
  }
  QSWEEP_RETURN_IF_ERROR(CheckKeyValue(key, v, where));
  return v;
}

absl::Status LoadTomlConfig(const std::string& text, const std::string& source,
                            ConfigLayers& layers) {
  QSWEEP_ASSIGN_OR_RETURN(nlohmann::ordered_json doc, ParseTomlToJson(text, source));
  for (auto& [key, value] : doc.items()) {
    if (value.is_object()) {
      layers.tables[key] = value;
      continue;
    }
    const KeySpec* spec = FindTrainKey(key);
    if (!spec && (key == "passes" || key == "transform" || key == "search" || key == "sweep"))
      return absl::InvalidArgumentError(absl::StrCat(source, ": '", key, "' must be a table ([",
                                                     key, "] or [", key, ".NAME]), not a value"));
    if (!spec) {
      std::vector<std::string> names;
      for (const auto& k : TrainKeys())
        if (k.used) names.push_back(k.name);
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": unknown key '", key, "'; known keys: ", absl::StrJoin(names, ", ")));
    }
    json v = json::parse(value.dump());
    QSWEEP_RETURN_IF_ERROR(CheckKeyValue(*spec, v, absl::StrCat(source, ": key ")));
    layers.file[key] = v;
  }
  layers.has_file = true;
  return absl::OkStatus();
}

absl::Status LoadTomlConfigFile(const std::string& path, ConfigLayers& layers) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat("config file '", path, "' cannot be opened"));
  if (path.size() < 5 || path.substr(path.size() - 5) != ".toml")
    return absl::InvalidArgumentError(absl::StrCat("config file '", path, "' must end in .toml"));
  std::stringstream buf;
  buf << f.rdbuf();
  return LoadTomlConfig(buf.str(), path, layers);
}

namespace {

template <typename T>
T Get(const json& e, const std::string& key, T fallback) {
  auto it = e.find(key);
  if (it == e.end() || it->is_null()) return fallback;
  return it->get<T>();
}

}  // namespace

const std::vector<std::string>& PlaceKeys() {
  static const std::vector<std::string> kKeys = {"load_name", "project_dir", "data_dir",
                                                 "quant_config"};
  return kKeys;
}

absl::Status CheckServiceConfig(const json& keys, const std::string& where,
                                bool allow_default_project_dir) {
  if (!keys.is_object()) return absl::InvalidArgumentError(where + "the config must be a table");
  for (const auto& key : PlaceKeys()) {
    auto it = keys.find(key);
    if (it == keys.end() || it->is_null()) continue;
    if (allow_default_project_dir && key == "project_dir" && *it == "qsweep_output") continue;
    return absl::InvalidArgumentError(absl::StrCat(
        where, "key '", key,
        "' names a place on the server or a worker; the service does not take file or folder "
        "names from a sweep (storage places are set by the --data-dir/--work-dir flags of "
        "qsweep-server and qsweep-worker, and checkpoints by job: qsweep transform submit "
        "--from JOB)"));
  }
  if (auto it = keys.find("dataset"); it != keys.end() && it->is_string()) {
    const std::string name = it->get<std::string>();
    const bool ok = !name.empty() && name.size() <= 64 && name[0] != '.' && name[0] != '-' &&
                    std::all_of(name.begin(), name.end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                             c == '_' || c == '-';
                    });
    if (!ok)
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          "key 'dataset' must be jsc, jsc-synthetic or an imported dataset's name (1-64 "
          "characters from a-z, 0-9, '.', '_', '-', not starting with '.' or '-'), got ",
          it->dump()));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainConfig> TrainConfigFromJson(const json& e, bool require) {
  for (auto& [k, v] : e.items()) {
    const KeySpec* spec = FindTrainKey(k);
    if (!spec) return absl::InvalidArgumentError(absl::StrCat("unknown config key '", k, "'"));
    QSWEEP_RETURN_IF_ERROR(CheckKeyValue(*spec, v, "config key "));
  }
  TrainConfig c;
  if (e.contains("model") && e["model"].is_object()) {
    c.model_inline = e["model"];
    auto name = c.model_inline.find("name");
    c.model =
        name != c.model_inline.end() && name->is_string() ? name->get<std::string>() : "custom";
  } else {
    c.model = Get<std::string>(e, "model", "");
  }
  c.dataset = Get<std::string>(e, "dataset", "");
  if (require && c.model.empty())
    return absl::InvalidArgumentError(
        "config key 'model' is required: give MODEL on the command line or model = \"...\" in the "
        "config");
  if (require && c.dataset.empty())
    return absl::InvalidArgumentError(
        "config key 'dataset' is required: give DATASET on the command line or dataset = \"...\" "
        "in the config");
  c.task = Get<std::string>(e, "task", c.task);
  c.load_name = Get<std::string>(e, "load_name", "");
  c.load_type = Get<std::string>(e, "load_type", c.load_type);
  c.batch_size = Get<int64_t>(e, "batch_size", c.batch_size);
  c.seed = Get<int64_t>(e, "seed", c.seed);
  c.training_optimizer = Get<std::string>(e, "training_optimizer", c.training_optimizer);
  c.trainer_precision = Get<std::string>(e, "trainer_precision", c.trainer_precision);
  c.learning_rate = Get<double>(e, "learning_rate", c.learning_rate);
  c.weight_decay = Get<double>(e, "weight_decay", c.weight_decay);
  c.max_epochs = Get<int64_t>(e, "max_epochs", c.max_epochs);
  c.max_steps = Get<int64_t>(e, "max_steps", -1);
  c.accumulate_grad_batches = Get<int64_t>(e, "accumulate_grad_batches", 1);
  c.log_every_n_steps = Get<int64_t>(e, "log_every_n_steps", -1);
  if (e.contains("log_every_n_steps") && e["log_every_n_steps"].is_null())
    c.log_every_n_steps = -1;
  else
    c.log_every_n_steps = Get<int64_t>(e, "log_every_n_steps", 50);
  c.debug = Get<bool>(e, "to_debug", false);
  c.accelerator = Get<std::string>(e, "accelerator", c.accelerator);
  c.device = Get<std::string>(e, "device", "");
  if (!c.device.empty() && c.device != "cpu" && c.device != "cuda" &&
      c.device.rfind("cuda:", 0) != 0)
    return absl::InvalidArgumentError(
        absl::StrCat("config key 'device' is '", c.device, "'; allowed: cpu, cuda, cuda:N"));
  c.threads = Get<int64_t>(e, "threads", 1);
  c.project_dir = Get<std::string>(e, "project_dir", c.project_dir);
  c.project = Get<std::string>(e, "project", "");
  c.data_dir = Get<std::string>(e, "data_dir", "");
  c.synthetic_rows = Get<int64_t>(e, "synthetic_rows", 0);
  c.synthetic_seed = Get<int64_t>(e, "synthetic_seed", 0);
  c.log_level = Get<std::string>(e, "log_level", c.log_level);
  return c;
}

json TrainConfigToJson(const TrainConfig& c) {
  auto opt = [](const std::string& s) -> json { return s.empty() ? json(nullptr) : json(s); };
  return json{{"model", c.model},
              {"dataset", c.dataset},
              {"task", c.task},
              {"load_name", opt(c.load_name)},
              {"load_type", c.load_type},
              {"batch_size", c.batch_size},
              {"seed", c.seed},
              {"training_optimizer", c.training_optimizer},
              {"trainer_precision", c.trainer_precision},
              {"learning_rate", c.learning_rate},
              {"weight_decay", c.weight_decay},
              {"max_epochs", c.max_epochs},
              {"max_steps", c.max_steps},
              {"accumulate_grad_batches", c.accumulate_grad_batches},
              {"log_every_n_steps", c.log_every_n_steps},
              {"to_debug", c.debug},
              {"accelerator", c.accelerator},
              {"device", opt(c.device)},
              {"threads", c.threads},
              {"project_dir", c.project_dir},
              {"project", opt(c.project)},
              {"data_dir", opt(c.data_dir)},
              {"synthetic_rows", c.synthetic_rows},
              {"synthetic_seed", c.synthetic_seed},
              {"log_level", c.log_level}};
}

std::string ProjectName(const TrainConfig& c, const std::string& date) {
  if (!c.project.empty()) return c.project;
  std::string model = c.model;
  for (auto& ch : model)
    if (ch == '/') ch = '-';
  return absl::StrCat(model, "_", c.task, "_", c.dataset, "_", date);
}

std::string ValueText(const json& v) {
  if (v.is_null()) return "NA";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_number_float()) {
    std::ostringstream s;
    s << v.get<double>();
    return s.str();
  }
  return v.dump();
}

std::string RenderArgumentTable(const ConfigLayers& layers) {
  Table t;
  t.headers = {"Name", "Default"};
  if (layers.has_file) t.headers.push_back("Config. File");
  t.headers.push_back("Manual Override");
  t.headers.push_back("Effective");
  json eff = layers.Effective();
  for (const auto& k : TrainKeys()) {
    if (!k.used) continue;
    std::vector<std::string> row = {k.name, ValueText(layers.defaults.value(k.name, json()))};
    if (layers.has_file)
      row.push_back(layers.file.contains(k.name) ? ValueText(layers.file[k.name]) : "");
    row.push_back(layers.cli.contains(k.name) ? ValueText(layers.cli[k.name]) : "");
    row.push_back(ValueText(eff.value(k.name, json())));
    t.rows.push_back(row);
  }
  return RenderTable(t, TableStyle::kPretty);
}

}  // namespace qsweep
