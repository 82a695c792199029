// The service's limits on what a sweep may ask for (common/limits.h): trial
// count, string lengths, the size of the swept values, and the train keys
// that size a job's work (synthetic_rows, threads, max_epochs, batch_size).
// Local `qsweep train` runs are not bound by them; sweeps sent to the server
// are. Torch-free.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/sweep.h"

namespace qsweep {

// INVALID_ARGUMENT naming the key (with the trial, for a swept value), the
// limit and the value, for the first limit `plan` exceeds.
absl::Status CheckSweepLimits(const SweepPlan& plan, const std::string& source);

// The same limits on the train keys of a stand-alone transform config.
absl::Status CheckTransformConfigLimits(const std::string& toml_text, const std::string& source);

// ExpandSweep without per-trial configs (SweepPlanOptions::keep_configs
// false), then CheckSweepLimits. What the server uses for SubmitSweep.
absl::StatusOr<SweepPlan> ExpandSweepForService(const std::string& toml_text,
                                                const std::string& source);
// How many times this process has called ExpandSweepForService (for tests
// and diagnostics: a submission expands its sweep once).
int64_t ServiceSweepExpansions();

// The effective config of trial `index` of `plan`: its base with the trial's
// keys set.
nlohmann::json TrialConfig(const SweepPlan& plan, size_t index);

}  // namespace qsweep
