#include "server/job_metrics.h"

#include <algorithm>
#include <map>

#include "common/status_macros.h"

namespace qsweep {

absl::StatusOr<std::vector<v1::Metric>> JobMetrics(Store& store, const v1::Job& job,
                                                   const std::string& name) {
  QSWEEP_ASSIGN_OR_RETURN(std::vector<v1::Metric> out,
                          store.ListMetrics(job.id(), job.attempt(), name));
  QSWEEP_ASSIGN_OR_RETURN(std::vector<v1::Attempt> attempts, store.ListAttempts(job.id()));
  std::map<int32_t, int64_t> started_at;  // attempt number -> resumed_from_epoch
  for (const auto& a : attempts) started_at[a.number()] = a.resumed_from_epoch();
  // Epochs [from, ...) are the latest attempt's; earlier ones come from the
  // attempts before it, each covering [its own start, from).
  int64_t from = started_at.count(job.attempt()) ? started_at[job.attempt()] : 0;
  bool merged = false;
  for (int32_t a = job.attempt() - 1; a >= 1 && from > 0; --a) {
    const int64_t start = started_at.count(a) ? started_at[a] : 0;
    if (start < from) {
      QSWEEP_ASSIGN_OR_RETURN(std::vector<v1::Metric> earlier,
                              store.ListMetrics(job.id(), a, name));
      for (auto& m : earlier)
        if (m.epoch() >= start && m.epoch() < from) out.push_back(std::move(m));
      merged = true;
    }
    from = std::min(from, start);
  }
  if (merged) {
    std::stable_sort(out.begin(), out.end(), [](const v1::Metric& x, const v1::Metric& y) {
      if (x.name() != y.name()) return x.name() < y.name();
      return x.step() < y.step();
    });
  }
  return out;
}

}  // namespace qsweep
