// Pure helpers behind the read RPCs: summaries, and filter/sort/page of jobs.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "qsweep/v1/experiments.pb.h"

namespace qsweep {

// Counts of `jobs` per state.
v1::SweepSummary Summarize(const v1::Sweep& sweep, const std::vector<v1::Job>& jobs);

// True when no job can change any more by itself (all terminal).
bool SweepFinished(const v1::SweepSummary& summary);

// Filters by request.state, sorts by request.sort_by ("index" or "" = by
// index, "state", or a final metric name; jobs without that metric last) and
// returns one page. INVALID_ARGUMENT for a page_token past the end.
absl::StatusOr<v1::ListJobsResponse> QueryJobs(std::vector<v1::Job> jobs,
                                               const v1::ListJobsRequest& request);

}  // namespace qsweep
