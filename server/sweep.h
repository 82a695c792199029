// Sweep files: a base config with the keys of `qsweep train`, plus a [sweep]
// table that says how to vary it. Expansion is torch-free and complete: every
// trial's config is checked (key types and ranges, model names resolved)
// before anything is stored.
//
//   model = "jsc-toy"                  # base config: any `qsweep train` key
//   dataset = "jsc-synthetic"
//   [sweep]
//   name = "lab1"                      # optional
//   max_concurrency = 4                # 0 = unlimited (default)
//   retries = 1                        # extra attempts after a failure (default 0)
//   priority = 0                       # higher runs first (default 0)
//   timeout = 3600                     # seconds one attempt of a job may run
//                                      # (default per job kind, see scheduler.h)
//   pack = true                        # false: never train these trials packed
//                                      # with others on one worker slot (default true)
//   [sweep.grid]                       # cartesian product; first key varies slowest
//   batch_size = [64, 256, 1024]
//   model = ["jsc-tiny", "jsc-toy"]
//   [sweep.random]                     # `trials` samples per grid point
//   trials = 8
//   seed = 0
//   learning_rate = { distribution = "loguniform", low = 1e-5, high = 1e-2 }
//   weight_decay = { distribution = "uniform", low = 0.0, high = 0.1 }
//   max_epochs = { distribution = "int", low = 5, high = 20 }     # inclusive
//   training_optimizer = { distribution = "choice", values = ["adam", "sgd"] }
//   [sweep.transform]                  # options of the dependent transform jobs
//   fine_tune_epochs = 0               # quantization-aware fine-tuning epochs
//   [passes.quantize]                  # MASE transform tables: when present, each
//   ...                                # trial's best checkpoint is transformed by a
//   [transform]                        # dependent TRANSFORM job
//   style = "graph"
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/limits.h"

namespace qsweep {

struct SweepPlanOptions {
  // Upper bound on the number of trials of one sweep.
  // Default: kMaxTrialsPerSweep (common/limits.h).
  int64_t max_trials = kMaxTrialsPerSweep;
  // Keep every trial's effective config in SweepPlan::configs. The server
  // turns it off: a sweep's configs are `base` + each trial, and keeping them
  // all would hold the base config once per trial in memory. Default: true.
  bool keep_configs = true;
};

struct SweepPlan {
  std::string name;  // [sweep].name, "" if not given
  int32_t max_concurrency = 0;
  int32_t retries = 0;
  int32_t priority = 0;
  int64_t timeout_s = 0;  // [sweep] timeout; 0 = the default of each job kind
  bool pack = true;  // [sweep].pack
  // Per trial, in expansion order: the swept keys only, and the full
  // effective config (defaults < base < swept values; empty unless
  // SweepPlanOptions::keep_configs). A trial's effective config is always
  // `base` with the trial's keys set.
  std::vector<nlohmann::json> trials;
  std::vector<nlohmann::json> configs;
  nlohmann::json base = nlohmann::json::object();  // defaults < the file's keys
  // True when the file has [passes.*] tables: every trial gets a dependent
  // TRANSFORM job running them on its best checkpoint.
  bool transform = false;
  int64_t fine_tune_epochs = 0;  // [sweep.transform].fine_tune_epochs
};

// Parses and expands a sweep file's text. `source` names the file in errors.
// INVALID_ARGUMENT naming the field and the allowed values on any error. The
// model is a zoo name or an inline [model] table (never a file); keys naming a
// file or folder (PlaceKeys()) are refused, and the configs carry none.
absl::StatusOr<SweepPlan> ExpandSweep(const std::string& toml_text, const std::string& source,
                                      const SweepPlanOptions& options = {});

// Checks a stand-alone transform config (MASE keys, [passes.*], optional
// [transform]) for a checkpoint of `model` (the trained job's config value: a
// zoo name or an inline definition) trained with `batch_size`.
// INVALID_ARGUMENT naming the field on any error.
absl::Status ValidateTransformConfig(const std::string& toml_text, const std::string& source,
                                     const nlohmann::json& model, int64_t batch_size);

}  // namespace qsweep
