// Datasets as content-addressed artifacts: at submission the server prepares
// each distinct dataset a sweep asks for (with the data module, torch-free),
// stores the prepared file once as an artifact of kind "dataset" keyed by the
// SHA-256 of the whole file, and the scheduler records that hash in each job.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/store.h"

namespace qsweep {

struct DatasetServeOptions {
  // Where the server prepares and caches datasets when a config has no
  // data_dir of its own. Default: "" = DefaultDataDir() ($QSWEEP_DATA_DIR...).
  std::string data_dir;
};

// Identifies a config's dataset request: name, synthetic rows and seed, and
// data_dir. Configs with equal keys get the same prepared file.
// INVALID_ARGUMENT if the config is not a train config with a dataset.
absl::StatusOr<std::string> DatasetKeyOf(const nlohmann::json& config);

struct ServedDatasets {
  std::vector<std::string> sha256;  // per config, in order: the artifact hash
  int distinct = 0;                 // distinct dataset requests among the configs
  int stored = 0;                   // artifacts newly stored by this call
};

// Prepares the dataset of every config (each distinct request once) and
// stores each prepared file as a "dataset" artifact unless the store already
// has that content. FAILED_PRECONDITION naming the dataset when it cannot be
// prepared on the server (e.g. the real JSC file is missing there);
// INVALID_ARGUMENT for a bad config. Slow for large datasets: never call it
// on the scheduler strand.
absl::StatusOr<ServedDatasets> ServeDatasets(const std::vector<nlohmann::json>& configs,
                                             Store& store, const DatasetServeOptions& options);

// What prepares a submission's datasets: ServeDatasets, or a test's stand-in
// (e.g. one that holds until released, to show what runs meanwhile).
using DatasetPreparer = std::function<absl::StatusOr<ServedDatasets>(
    const std::vector<nlohmann::json>& configs, Store& store, const DatasetServeOptions& options)>;

}  // namespace qsweep
