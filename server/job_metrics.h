// The metric history of a job across resumed attempts (issue 9 §1).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qsweep/v1/common.pb.h"
#include "storage/store.h"

namespace qsweep {

// The metrics of `job` as its latest attempt sees them, ordered by name, then
// step (`name` "" = all names): that attempt's own and, when it continued
// from a resume state at epoch k (Attempt.resumed_from_epoch > 0), those of
// the epochs before k from the attempts that trained them, walking back
// through earlier resumed attempts. Each epoch comes from one attempt only,
// so a metric is never shown twice (a partial epoch of a stopped attempt,
// trained again by its successor, is left out).
absl::StatusOr<std::vector<v1::Metric>> JobMetrics(Store& store, const v1::Job& job,
                                                   const std::string& name);

}  // namespace qsweep
