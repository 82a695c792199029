// Reads of the Experiments service that answer with many items, bounded by
// common/limits.h: ListSweeps pages, GetJob's full job, and the WatchSweep
// stream (the summary plus changed jobs in bounded events). They read the
// store only (thread-safe), never the scheduler strand.
#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

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

// Streams the sweep's summary and jobs: it looks at the sweep every
// `interval_ms`, and each look that finds a change (or the sweep finished)
// sends the summary with the jobs that changed since the previous look (all
// of them the first time), `page_size` jobs at most per event (and about
// kMaxPageBytes), more_jobs set on all but the last event of a look. Ends
// after the look that finds the sweep finished, or when the client leaves.
// Exactly one write or one alarm is outstanding at any time, and Finish is
// called only from their completions, so the reactor is never deleted under
// a pending callback. Deletes itself when done.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchSweepEvent> {
 public:
  WatchReactor(Store& store, std::string sweep_id, int64_t interval_ms, int32_t page_size);
  void OnWriteDone(bool ok) override;
  // A pending alarm fires within one interval and Poll() then finishes; the
  // alarm is not touched here, so it is only ever used from its own callback
  // and OnWriteDone (never two threads at once).
  void OnCancel() override { cancelled_ = true; }
  void OnDone() override { delete this; }

 private:
  void Poll();
  void WriteNextEvent();
  void WaitAndPoll();

  Store& store_;
  const std::string sweep_id_;
  const int64_t interval_ms_;
  const size_t page_size_;
  grpc::Alarm alarm_;
  v1::WatchSweepEvent event_;
  std::map<std::string, size_t> sent_;  // job id -> hash of the listed job last sent
  std::string last_summary_;            // as last sent
  std::vector<v1::Job> changed_;        // of the current look
  size_t next_ = 0;                     // first of changed_ not yet sent
  bool finished_sweep_ = false;
  std::atomic<bool> cancelled_{false};
};

}  // namespace qsweep
