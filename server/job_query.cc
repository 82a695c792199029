#include "server/job_query.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "server/job_config.h"

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
  auto offset = PageOffset(request.page_token(), jobs.size(), "job");
  if (!offset.ok()) return offset.status();
  const size_t size = static_cast<size_t>(PageSize(request.page_size(), kMaxJobsPerPage));
  v1::ListJobsResponse response;
  size_t bytes = 0, end = *offset;
  while (end < jobs.size() && end - *offset < size && (end == *offset || bytes < kMaxPageBytes)) {
    v1::Job* job = response.add_jobs();
    *job = ListedJob(std::move(jobs[end++]));
    bytes += job->ByteSizeLong();
  }
  if (end < jobs.size()) response.set_next_page_token(absl::StrCat(end));
  return response;
}

int32_t PageSize(int32_t requested, int32_t max) {
  return requested <= 0 || requested > max ? max : requested;
}

absl::StatusOr<size_t> PageOffset(const std::string& token, size_t count, const char* what) {
  const size_t offset = token.empty() ? 0 : std::strtoull(token.c_str(), nullptr, 10);
  if (offset > count)
    return absl::InvalidArgumentError(absl::StrCat("field 'page_token' is past the last ", what,
                                                   " (", offset, " > ", count, ")"));
  return offset;
}

}  // namespace qsweep
