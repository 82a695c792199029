// Training configuration with MASE's keys, defaults and precedence
// (default < TOML file < explicitly given flag), "NA" as none. Torch-free: the
// client and the server validate configs with it.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qsweep {

enum class KeyType { kInt, kFloat, kString, kBool };

// One configuration key: the TOML key (= MASE's argparse dest) and its flag.
struct KeySpec {
  std::string name;                  // "batch_size"
  std::string flag;                  // "--batch-size"
  std::vector<std::string> aliases;  // extra flags, e.g. "--num-workers" for "--cpu"
  KeyType type = KeyType::kString;
  nlohmann::json default_value;      // null means none ("NA")
  std::vector<std::string> allowed;  // allowed string values; empty = any
  std::optional<double> min;         // inclusive lower bound for numbers
  bool exclusive_min = false;        // true: value must be > min
  bool nullable = true;              // may be "NA"
  bool used = true;                  // false: accepted for MASE compatibility, no effect
  std::string help;
};

// All keys, in the order of the argument table.
const std::vector<KeySpec>& TrainKeys();
const KeySpec* FindTrainKey(const std::string& name);

// Layered values: each layer maps key -> value (null = "NA").
struct ConfigLayers {
  nlohmann::json defaults = nlohmann::json::object();
  nlohmann::json file = nlohmann::json::object();
  nlohmann::json cli = nlohmann::json::object();
  bool has_file = false;
  // Tables of the config file other than top-level keys ("passes", "transform",
  // "sweep", ...), converted to JSON with "NA" -> null, in file order.
  nlohmann::ordered_json tables = nlohmann::ordered_json::object();

  nlohmann::json Effective() const;  // defaults < file < cli
};

// Layers with `defaults` filled from TrainKeys().
ConfigLayers NewConfigLayers();

// Reads a TOML config text. Top-level scalars must be known keys of the right
// type; tables are kept in `tables`. INVALID_ARGUMENT naming the key otherwise.
// `source` names the file in error messages.
absl::Status LoadTomlConfig(const std::string& toml_text, const std::string& source,
                            ConfigLayers& layers);
absl::Status LoadTomlConfigFile(const std::string& path, ConfigLayers& layers);

// Converts a flag's string value to the key's type and checks it.
absl::StatusOr<nlohmann::json> ParseKeyValue(const KeySpec& key, const std::string& text);
// Checks an already-typed value (from TOML or JSON).
absl::Status CheckKeyValue(const KeySpec& key, const nlohmann::json& value,
                           const std::string& where);

struct TrainConfig {
  std::string model;            // zoo name, model TOML path, or the inline model's name
  nlohmann::json model_inline;  // the inline [model] definition; null when by name
  std::string dataset;          // "jsc", "jsc-synthetic", or an imported dataset name
  std::string task = "classification";
  std::string load_name;  // checkpoint to load ("" = none)
  std::string load_type = "mz";
  int64_t batch_size = 128;
  int64_t seed = 0;
  std::string training_optimizer = "adam";
  std::string trainer_precision = "32";
  double learning_rate = 1e-5;
  double weight_decay = 0.0;
  int64_t max_epochs = 20;
  int64_t max_steps = -1;  // <= 0: no limit
  int64_t accumulate_grad_batches = 1;
  int64_t log_every_n_steps = 50;  // <= 0: never
  bool debug = false;              // limit train/val/test to 5 batches
  std::string accelerator = "auto";
  std::string device;   // "" (from accelerator), "cpu", "cuda", "cuda:N"
  int64_t threads = 1;  // intra-op threads
  std::string project_dir = "qsweep_output";
  std::string project;         // "" = {model}_{task}_{dataset}_{YYYY-MM-DD}
  std::string data_dir;        // "" = $QSWEEP_DATA_DIR or ~/.cache/qsweep/datasets
  int64_t synthetic_rows = 0;  // 0 = JSC-sized
  int64_t synthetic_seed = 0;
  std::string log_level = "info";
};

// Keys that name a file or folder (load_name, project_dir, data_dir,
// quant_config). Local commands honour them; the service refuses them: its
// storage places are set by the flags of qsweep-server and qsweep-worker.
const std::vector<std::string>& PlaceKeys();

// Checks the keys of a config sent to the service or received from it:
// INVALID_ARGUMENT "key 'data_dir' names a place on the server; ..." for a
// place key with a value (null is allowed; with `allow_default_project_dir`,
// project_dir "qsweep_output", which earlier servers stored, is too), and for
// a dataset that is not a plain name. `where` prefixes the message.
absl::Status CheckServiceConfig(const nlohmann::json& keys, const std::string& where,
                                bool allow_default_project_dir = false);

// Builds a TrainConfig from effective values. INVALID_ARGUMENT if a required
// key (model, dataset) is missing.
absl::StatusOr<TrainConfig> TrainConfigFromJson(const nlohmann::json& effective,
                                                bool require_model_and_dataset = true);
nlohmann::json TrainConfigToJson(const TrainConfig& config);

// The project folder name: config.project, or {model}_{task}_{dataset}_{date}
// with '/' in the model replaced by '-'.
std::string ProjectName(const TrainConfig& config, const std::string& date_yyyy_mm_dd);

// MASE's argument table (Name | Default | Config. File | Manual Override |
// Effective), tabulate "pretty" layout; the file column only when a file was given.
std::string RenderArgumentTable(const ConfigLayers& layers);

// Value as MASE prints it: null -> "NA"... strings bare.
std::string ValueText(const nlohmann::json& v);

}  // namespace qsweep
