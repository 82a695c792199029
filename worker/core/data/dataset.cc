#include "worker/core/data/dataset.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qsweep {

std::string Dataset::DisplayName() const {
  if (!synthetic) return name;
  return absl::StrCat(name, " (SYNTHETIC data, not JSC)");
}

std::string DefaultDataDir() {
  if (const char* d = std::getenv("QSWEEP_DATA_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return absl::StrCat(x, "/qsweep/datasets");
  const char* home = std::getenv("HOME");
  return absl::StrCat(home && *home ? home : ".", "/.cache/qsweep/datasets");
}

absl::StatusOr<Dataset> LoadDataset(const DatasetRequest& request) {
  return absl::UnimplementedError("LoadDataset: not implemented yet");
}

std::vector<std::string> ListDatasets(const std::string& cache_dir) {
  return {"jsc", "jsc-synthetic"};
}

}  // namespace qsweep
