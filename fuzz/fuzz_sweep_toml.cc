// Sweep files and transform configs as a submitter sends them: any text goes
// through ExpandSweep and ValidateTransformConfig. Either may refuse it (with
// INVALID_ARGUMENT); neither may crash, hang, or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "server/sweep.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return -1;  // the service limit is 1 MiB; keep runs fast
  const std::string text(reinterpret_cast<const char*>(data), size);
  qsweep::SweepPlanOptions options;
  options.max_trials = 64;  // larger grids take the same code path, only longer
  options.keep_configs = false;
  auto plan = qsweep::ExpandSweep(text, "fuzz.toml", options);
  if (!plan.ok() && plan.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
  const absl::Status t = qsweep::ValidateTransformConfig(text, "fuzz.toml", "jsc-toy", 64);
  if (!t.ok() && t.code() != absl::StatusCode::kInvalidArgument) std::abort();
  return 0;
}
