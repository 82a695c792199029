#include "worker/local/train_args.h"

#include <CLI/CLI.hpp>

#include <cctype>
#include <map>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace qsweep {

absl::StatusOr<LocalArgs> ParseLocalArgs(const std::string& command,
                                         const std::vector<std::string>& args,
                                         bool model_dataset) {
  LocalArgs out;
  out.layers = NewConfigLayers();
  CLI::App app(absl::StrCat("qsweep ", command), absl::StrCat("qsweep ", command));
  app.allow_extras(false);
  app.add_option("--config", out.config_path, "TOML config file (MASE keys)");
  if (model_dataset) {
    app.add_option("positionals", out.positionals, "MODEL DATASET")->expected(0, 2);
  } else {
    app.add_option("positionals", out.positionals, "arguments")->expected(0, 3);
  }
  if (command == "test") app.add_option("-o,--output", out.output, "also write the results as JSON to this file");
  if (command == "transform")
    app.add_option("-o,--output", out.output,
                   "folder for reports and the transformed checkpoint (default "
                   "<project-dir>/<project>/software/transform)");
  if (command == "transform") {
    app.add_option("--fine-tune-epochs", out.fine_tune_epochs,
                   "quantization-aware fine-tuning epochs after the passes (default 0)");
    app.add_flag("--no-eval", out.no_eval, "skip the test-split evaluation before/after");
  }

  std::map<std::string, std::string> values;
  std::map<std::string, CLI::Option*> options;
  // `test` evaluates: only the keys that choose the checkpoint, data and device apply.
  static const std::set<std::string> kTestKeys = {
      "model",       "dataset",       "load_name",    "load_type",      "batch_size",
      "accelerator", "device",        "threads",      "data_dir",       "synthetic_rows",
      "synthetic_seed", "log_level",  "task",         "num_workers",    "to_debug"};
  for (const auto& key : TrainKeys()) {
    if (key.flag.empty()) continue;
    if (command == "test" && !kTestKeys.count(key.name)) continue;
    std::string names = key.flag;
    for (const auto& a : key.aliases) names += "," + a;
    CLI::Option* opt;
    if (key.type == KeyType::kBool) {
      opt = app.add_flag(names, key.help);
    } else {
      opt = app.add_option(names, values[key.name], key.help);
    }
    options[key.name] = opt;
  }
  // Name unknown flags ourselves: CLI11 may otherwise count them as positionals.
  for (const auto& arg : args) {
    if (arg.size() < 2 || arg[0] != '-' || arg == "--") continue;
    if (arg[1] != '-' && !std::isalpha(static_cast<unsigned char>(arg[1]))) continue;  // "-5"
    std::string name = arg.substr(0, arg.find('='));
    bool known = false;
    for (const CLI::Option* o : app.get_options()) known |= o->check_name(name);
    if (!known)
      return absl::InvalidArgumentError(absl::StrCat("qsweep ", command, ": unknown flag '", name,
                                                     "' (see 'qsweep ", command, " --help')"));
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out.help = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("qsweep ", command, ": ", e.what(), " (see 'qsweep ", command, " --help')"));
  }
  if (out.fine_tune_epochs < 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "flag --fine-tune-epochs must be >= 0, got ", out.fine_tune_epochs));
  if (!out.config_path.empty()) {
    QSWEEP_RETURN_IF_ERROR(LoadTomlConfigFile(out.config_path, out.layers));
  }
  for (const auto& key : TrainKeys()) {
    auto it = options.find(key.name);
    if (it == options.end() || it->second->count() == 0) continue;
    if (key.type == KeyType::kBool) {
      out.layers.cli[key.name] = true;
      continue;
    }
    QSWEEP_ASSIGN_OR_RETURN(out.layers.cli[key.name], ParseKeyValue(key, values[key.name]));
  }
  if (model_dataset) {
    if (out.positionals.size() >= 1) out.layers.cli["model"] = out.positionals[0];
    if (out.positionals.size() >= 2) out.layers.cli["dataset"] = out.positionals[1];
  }
  return out;
}

}  // namespace qsweep
