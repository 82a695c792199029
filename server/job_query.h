// Pure helpers behind the read RPCs: summaries, and filter/sort/page of jobs.
#pragma once

#include <cstdint>
#include <string>
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
// returns one page of listed jobs (job_config.h: without config_json and
// transform_toml). A page holds at most PageSize(request.page_size(),
// kMaxJobsPerPage) jobs and ends early once it holds kMaxPageBytes (never
// empty while jobs remain). The page token is the offset of the next job in
// this order. INVALID_ARGUMENT for a page_token past the end.
absl::StatusOr<v1::ListJobsResponse> QueryJobs(std::vector<v1::Job> jobs,
                                               const v1::ListJobsRequest& request);

// A requested page size: 0 or more than `max` = `max`.
int32_t PageSize(int32_t requested, int32_t max);

// The offset a page token stands for ("" = 0); the validators have checked
// it is digits. INVALID_ARGUMENT if it is past `count`.
absl::StatusOr<size_t> PageOffset(const std::string& token, size_t count, const char* what);

}  // namespace qsweep
