// Reads of the Experiments service that answer with many items, bounded by
// common/limits.h: ListSweeps pages and GetJob's full job (WatchSweep is in
// sweep_watch.h). They read the store only (thread-safe), never the
// scheduler strand.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qsweep/v1/experiments.pb.h"
#include "server/caller.h"
#include "storage/store.h"

namespace qsweep {

// The sweep's summary (with its full Sweep message).
absl::StatusOr<v1::SweepSummary> LoadSummary(Store& store, const std::string& sweep_id);

// One page of summaries, oldest first, within the newest request.limit()
// sweeps (all when 0): at most PageSize(page_size, kMaxSweepsPerPage)
// summaries, ending early at kMaxPageBytes; sweeps without source_toml and
// base_config_json. INVALID_ARGUMENT for a page_token past the end.
// Only sweeps `caller` may access are listed.
absl::StatusOr<v1::ListSweepsResponse> ListSweepsPage(Store& store, const Caller& caller,
                                                      const v1::ListSweepsRequest& request);

// The job with its full config (job_config.h FullJob). NOT_FOUND if unknown.
absl::StatusOr<v1::Job> LoadFullJob(Store& store, const std::string& job_id);

}  // namespace qsweep
