// Every size and count limit of the qsweep service, in one place. The server
// enforces them (INVALID_ARGUMENT naming the field, the limit and the value;
// RESOURCE_EXHAUSTED for server-wide capacity), and the worker and the CLI
// stay within them (the worker splits metric batches and shortens error
// texts; the CLI follows pages). Sizes are bytes. Header-only, torch-free:
// the server, the worker and the client include it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace qsweep {

// ---- transport ---------------------------------------------------------------------------

// Largest gRPC message the server accepts (its max receive message size):
// every request, and every chunk of an upload. Larger messages are refused by
// gRPC with RESOURCE_EXHAUSTED ("Received message larger than max (N vs. M)").
inline constexpr size_t kMaxRequestBytes = 4u << 20;
// Target size of one page of ListJobs/ListSweeps and of one WatchSweep event:
// a page ends early once it holds this many bytes (it always holds at least
// one item), so responses stay under the clients' default 4 MiB receive size.
inline constexpr size_t kMaxPageBytes = 1u << 20;
// Items per page of ListJobs and per WatchSweep event; a larger page_size is
// lowered to it, and page_size 0 means this.
inline constexpr int32_t kMaxJobsPerPage = 1000;
// Sweeps per page of ListSweeps (each carries a summary of its jobs).
inline constexpr int32_t kMaxSweepsPerPage = 200;

// ---- strings -----------------------------------------------------------------------------

// Ids and names in requests: request ids, idempotency keys, sweep, job, lease
// and worker ids, sweep/worker/source names, metric and pass names, artifact
// kinds and names, final metric names. Also [sweep].name in a sweep file.
inline constexpr size_t kMaxIdBytes = 256;
// A sweep file (SubmitSweep.sweep_toml) or transform config
// (SubmitTransform.config_toml).
inline constexpr size_t kMaxSweepTomlBytes = 1u << 20;
// One string value of a train config in a sweep (base or swept), e.g.
// `project` or an unused MASE key.
inline constexpr size_t kMaxConfigStringBytes = 4096;
// The swept values of one trial (its trial JSON), stored with every job.
inline constexpr size_t kMaxTrialJsonBytes = 64u << 10;
// The swept values of all trials of a sweep together: what a sweep's jobs
// store beyond fixed-size fields. The base config is stored once per sweep.
inline constexpr size_t kMaxTrialBytesPerSweep = 16u << 20;
// Fail.error: the worker shortens longer texts before sending them.
inline constexpr size_t kMaxErrorBytes = 16u << 10;
// Complete.result_json.
inline constexpr size_t kMaxResultJsonBytes = 64u << 10;
// One report of Complete.reports (its json and text together).
inline constexpr size_t kMaxReportBytes = 1u << 20;

// ---- counts ------------------------------------------------------------------------------

// Trials of one sweep (the grid times random trials per grid point); a sweep
// with [passes.*] has one TRANSFORM job more per trial.
inline constexpr int64_t kMaxTrialsPerSweep = 10000;
// Metrics in one Heartbeat (all updates together), Complete or Fail. The
// worker sends larger backlogs in several requests.
inline constexpr int32_t kMaxMetricsPerRequest = 5000;
// Lease updates in one Heartbeat (a worker holds at most 1024 leases:
// slots times pack).
inline constexpr int32_t kMaxLeaseUpdates = 1024;
// Jobs per pack (LeaseRequest.pack): trials trained together on one slot.
inline constexpr int32_t kMaxPack = 64;
// Complete.final_metrics entries.
inline constexpr int32_t kMaxFinalMetrics = 256;
// Complete.reports entries.
inline constexpr int32_t kMaxReportsPerComplete = 32;
// RetryJobs.job_ids entries.
inline constexpr int32_t kMaxRetryJobIds = 10000;

// ---- train configs of sweeps (checked per trial at submission) ---------------------------

// synthetic_rows: the server prepares served datasets in memory; 2M rows is
// about twice the JSC-sized set (~120 MB prepared), under kMaxArtifactBytes.
inline constexpr int64_t kMaxSyntheticRows = 2000000;
// threads: intra-op CPU threads. Workers also lower it to their core count
// (ThreadsForWorker below).
inline constexpr int64_t kMaxThreads = 256;
// max_epochs.
inline constexpr int64_t kMaxEpochs = 10000;
// batch_size.
inline constexpr int64_t kMaxBatchSize = 1 << 20;

// ---- artifacts ---------------------------------------------------------------------------

// One artifact (upload, download, fetch). Sizes are 64-bit everywhere.
inline constexpr int64_t kMaxArtifactBytes = int64_t{256} << 20;
// Uploads the server receives at once; one more is refused with
// RESOURCE_EXHAUSTED (workers retry it with backoff).
inline constexpr int32_t kMaxConcurrentUploads = 16;
// Bytes all uploads in progress may hold in server memory together.
inline constexpr int64_t kMaxUploadBytesInFlight = int64_t{1} << 30;

// ---- workers -----------------------------------------------------------------------------

// Registered workers per caller identity (today the worker name; the
// authenticated token once tokens exist); stale ones are expired first.
inline constexpr int32_t kMaxWorkersPerIdentity = 256;
// Registered workers in all.
inline constexpr int32_t kMaxWorkers = 4096;
// A worker that has not called Lease or Heartbeat for this long and holds no
// lease is removed (its row too); it registers again if it comes back.
inline constexpr int64_t kWorkerExpiryMs = 10 * 60 * 1000;

// The intra-op threads a worker uses for a job asking `requested`: at most its
// `cores` (at least 1).
inline int64_t ThreadsForWorker(int64_t requested, int64_t cores) {
  return std::max<int64_t>(1, std::min(requested, std::max<int64_t>(1, cores)));
}

}  // namespace qsweep
