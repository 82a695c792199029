#include "server/paged_queries.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "server/grpc_status_util.h"
#include "server/job_config.h"
#include "server/job_query.h"

namespace qsweep {
namespace {

// Bytes that are equal exactly when the messages are (map order fixed).
std::string Deterministic(const google::protobuf::MessageLite& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace

absl::StatusOr<v1::SweepSummary> LoadSummary(Store& store, const std::string& sweep_id) {
  QSWEEP_ASSIGN_OR_RETURN(v1::Sweep sweep, store.GetSweep(sweep_id));
  JobFilter filter;
  filter.sweep_id = sweep_id;
  QSWEEP_ASSIGN_OR_RETURN(auto jobs, store.ListJobs(filter));
  return Summarize(sweep, jobs);
}

absl::StatusOr<v1::ListSweepsResponse> ListSweepsPage(Store& store, const Caller& caller,
                                                      const v1::ListSweepsRequest& request) {
  QSWEEP_ASSIGN_OR_RETURN(std::vector<v1::Sweep> sweeps, store.ListSweeps());
  std::erase_if(sweeps, [&](const v1::Sweep& s) { return !caller.MayAccess(s.owner()); });
  size_t first = 0;
  if (request.limit() > 0 && sweeps.size() > static_cast<size_t>(request.limit()))
    first = sweeps.size() - static_cast<size_t>(request.limit());  // the newest
  QSWEEP_ASSIGN_OR_RETURN(size_t offset,
                          PageOffset(request.page_token(), sweeps.size() - first, "sweep"));
  const size_t size = static_cast<size_t>(PageSize(request.page_size(), kMaxSweepsPerPage));
  v1::ListSweepsResponse response;
  size_t bytes = 0, at = first + offset;
  while (at < sweeps.size() && at - first - offset < size &&
         (at == first + offset || bytes < kMaxPageBytes)) {
    QSWEEP_ASSIGN_OR_RETURN(v1::SweepSummary summary, LoadSummary(store, sweeps[at].id()));
    *summary.mutable_sweep() = ListedSweep(std::move(*summary.mutable_sweep()));
    bytes += summary.ByteSizeLong();
    *response.add_sweeps() = std::move(summary);
    ++at;
  }
  if (at < sweeps.size()) response.set_next_page_token(absl::StrCat(at - first));
  return response;
}

absl::StatusOr<v1::Job> LoadFullJob(Store& store, const std::string& job_id) {
  QSWEEP_ASSIGN_OR_RETURN(v1::Job job, store.GetJob(job_id));
  if (!job.config_json().empty()) return job;  // stored whole (before base configs)
  QSWEEP_ASSIGN_OR_RETURN(v1::Sweep sweep, store.GetSweep(job.sweep_id()));
  return FullJob(sweep, std::move(job));
}

WatchReactor::WatchReactor(Store& store, std::string sweep_id, int64_t interval_ms,
                           int32_t page_size)
    : store_(store),
      sweep_id_(std::move(sweep_id)),
      interval_ms_(interval_ms),
      page_size_(static_cast<size_t>(PageSize(page_size, kMaxJobsPerPage))) {
  Poll();
}

void WatchReactor::WaitAndPoll() {
  alarm_.Set(std::chrono::system_clock::now() + std::chrono::milliseconds(interval_ms_),
             [this](bool) { Poll(); });
}

void WatchReactor::OnWriteDone(bool ok) {
  if (!ok) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client left"));
    return;
  }
  if (next_ < changed_.size()) {
    WriteNextEvent();  // the rest of this look
    return;
  }
  if (finished_sweep_) {
    Finish(grpc::Status::OK);
    return;
  }
  WaitAndPoll();
}

void WatchReactor::Poll() {
  if (cancelled_) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client left"));
    return;
  }
  auto sweep = store_.GetSweep(sweep_id_);
  if (!sweep.ok()) {
    Finish(ToGrpcStatus(sweep.status()));
    return;
  }
  JobFilter filter;
  filter.sweep_id = sweep_id_;
  auto jobs = store_.ListJobs(filter);
  if (!jobs.ok()) {
    Finish(ToGrpcStatus(jobs.status()));
    return;
  }
  v1::SweepSummary summary = Summarize(ListedSweep(std::move(*sweep)), *jobs);
  finished_sweep_ = SweepFinished(summary);
  changed_.clear();
  next_ = 0;
  for (auto& j : *jobs) {
    v1::Job listed = ListedJob(std::move(j));
    const size_t hash = std::hash<std::string>{}(Deterministic(listed));
    auto [it, added] = sent_.try_emplace(listed.id(), hash);
    if (!added && it->second == hash) continue;
    it->second = hash;
    changed_.push_back(std::move(listed));
  }
  std::string summary_bytes = Deterministic(summary);
  if (changed_.empty() && summary_bytes == last_summary_ && !finished_sweep_) {
    WaitAndPoll();  // nothing new: look again later
    return;
  }
  last_summary_ = std::move(summary_bytes);
  *event_.mutable_summary() = std::move(summary);
  WriteNextEvent();
}

void WatchReactor::WriteNextEvent() {
  event_.clear_jobs();
  size_t bytes = event_.summary().ByteSizeLong();
  while (next_ < changed_.size() && static_cast<size_t>(event_.jobs_size()) < page_size_ &&
         (event_.jobs_size() == 0 || bytes < kMaxPageBytes)) {
    bytes += changed_[next_].ByteSizeLong();
    *event_.add_jobs() = std::move(changed_[next_++]);
  }
  event_.set_more_jobs(next_ < changed_.size());
  StartWrite(&event_);
}

}  // namespace qsweep
