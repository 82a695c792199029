#include "server/job_query.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace qsweep {

v1::SweepSummary Summarize(const v1::Sweep& sweep, const std::vector<v1::Job>& jobs) {
  v1::SweepSummary s;
  *s.mutable_sweep() = sweep;
  for (const auto& j : jobs) {
    switch (j.state()) {
      case v1::PENDING:
        s.set_pending(s.pending() + 1);
        break;
      case v1::LEASED:
        s.set_leased(s.leased() + 1);
        break;
      case v1::RUNNING:
        s.set_running(s.running() + 1);
        break;
      case v1::SUCCEEDED:
        s.set_succeeded(s.succeeded() + 1);
        break;
      case v1::FAILED:
        s.set_failed(s.failed() + 1);
        break;
      case v1::CANCELLED:
        s.set_cancelled(s.cancelled() + 1);
        break;
      default:
        break;
    }
  }
  return s;
}

bool SweepFinished(const v1::SweepSummary& s) {
  return s.pending() + s.leased() + s.running() == 0;
}

absl::StatusOr<v1::ListJobsResponse> QueryJobs(std::vector<v1::Job> jobs,
                                               const v1::ListJobsRequest& request) {
  if (request.state() != v1::JOB_STATE_UNSPECIFIED)
    std::erase_if(jobs, [&](const v1::Job& j) { return j.state() != request.state(); });
  const std::string& key = request.sort_by();
  auto less = [&](const v1::Job& a, const v1::Job& b) {
    if (key.empty() || key == "index") return a.index() < b.index();
    if (key == "state") return a.state() < b.state();
    auto ia = a.final_metrics().find(key), ib = b.final_metrics().find(key);
    bool ha = ia != a.final_metrics().end(), hb = ib != b.final_metrics().end();
    if (ha != hb) return ha;  // jobs with the metric first, in either direction
    return ha && ia->second < ib->second;
  };
  std::stable_sort(jobs.begin(), jobs.end(), less);
  if (request.descending()) {
    // Reverse the order of jobs that have the key, keep the others last.
    auto has = [&](const v1::Job& j) {
      return key.empty() || key == "index" || key == "state" || j.final_metrics().count(key);
    };
    auto split = std::stable_partition(jobs.begin(), jobs.end(), has);
    std::reverse(jobs.begin(), split);
  }
  const size_t offset =
      request.page_token().empty() ? 0 : std::strtoull(request.page_token().c_str(), nullptr, 10);
  if (offset > jobs.size())
    return absl::InvalidArgumentError("field 'page_token' is past the last job");
  const size_t size =
      request.page_size() > 0 ? static_cast<size_t>(request.page_size()) : jobs.size() - offset;
  v1::ListJobsResponse response;
  const size_t end = std::min(jobs.size(), offset + size);
  for (size_t i = offset; i < end; ++i) *response.add_jobs() = std::move(jobs[i]);
  if (end < jobs.size()) response.set_next_page_token(absl::StrCat(end));
  return response;
}

}  // namespace qsweep
