// The job lifecycle (JobState in proto/qsweep/v1/common.proto) as one
// transition function. Legal moves:
//   PENDING -> LEASED            a worker is granted the job
//   PENDING -> CANCELLED         cancelled before it ran
//   LEASED  -> RUNNING           first heartbeat of the attempt
//   LEASED|RUNNING -> SUCCEEDED  the worker completed it
//   LEASED|RUNNING -> FAILED     the attempt failed and no retries are left
//   LEASED|RUNNING -> CANCELLED  cancel delivered to the worker (or lease lost)
//   LEASED|RUNNING -> PENDING    lease expired, job handed back, or retried
//   FAILED|CANCELLED -> PENDING  a user retried it (a new attempt)
// Everything else, including leaving SUCCEEDED, is illegal.
#pragma once

#include "absl/status/status.h"
#include "qsweep/v1/common.pb.h"

namespace qsweep {

// OK if `from -> to` is legal; FAILED_PRECONDITION naming both states otherwise.
absl::Status Transition(v1::JobState from, v1::JobState to);

// True for SUCCEEDED, FAILED and CANCELLED.
bool IsTerminal(v1::JobState state);

// True for LEASED and RUNNING (the job holds a lease).
bool IsActive(v1::JobState state);

// "PENDING", "RUNNING", ...
const char* JobStateName(v1::JobState state);

}  // namespace qsweep
