#include "server/paged_queries.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "server/grpc_status_util.h"
#include "server/job_config.h"
#include "server/job_query.h"

namespace qsweep {

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

}  // namespace qsweep
