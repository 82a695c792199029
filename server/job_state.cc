#include "server/job_state.h"

#include "absl/strings/str_cat.h"

namespace qsweep {

absl::Status Transition(v1::JobState from, v1::JobState to) {
  bool legal = false;
  switch (from) {
    case v1::PENDING:
      legal = to == v1::LEASED || to == v1::CANCELLED;
      break;
    case v1::LEASED:
      legal = to == v1::RUNNING || to == v1::SUCCEEDED || to == v1::FAILED || to == v1::CANCELLED ||
              to == v1::PENDING;
      break;
    case v1::RUNNING:
      legal = to == v1::SUCCEEDED || to == v1::FAILED || to == v1::CANCELLED || to == v1::PENDING;
      break;
    case v1::FAILED:
    case v1::CANCELLED:
      legal = to == v1::PENDING;
      break;
    default:
      legal = false;
  }
  if (legal) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("illegal job state transition ", JobStateName(from), " -> ", JobStateName(to)));
}

bool IsTerminal(v1::JobState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELLED;
}

bool IsActive(v1::JobState s) { return s == v1::LEASED || s == v1::RUNNING; }

const char* JobStateName(v1::JobState s) {
  switch (s) {
    case v1::PENDING:
      return "PENDING";
    case v1::LEASED:
      return "LEASED";
    case v1::RUNNING:
      return "RUNNING";
    case v1::SUCCEEDED:
      return "SUCCEEDED";
    case v1::FAILED:
      return "FAILED";
    case v1::CANCELLED:
      return "CANCELLED";
    default:
      return "UNSPECIFIED";
  }
}

}  // namespace qsweep
