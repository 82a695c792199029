// Status helpers shared by every module. Errors cross module boundaries as
// absl::Status / absl::StatusOr<T>; these macros keep the call sites short.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define QSWEEP_CONCAT_INNER_(a, b) a##b
#define QSWEEP_CONCAT_(a, b) QSWEEP_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define QSWEEP_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::absl::Status qsweep_status_ = (expr);       \
    if (!qsweep_status_.ok()) return qsweep_status_; \
  } while (0)

// `lhs` = value of `rexpr` (an absl::StatusOr<T>), or returns its status.
#define QSWEEP_ASSIGN_OR_RETURN(lhs, rexpr) \
  QSWEEP_ASSIGN_OR_RETURN_IMPL_(QSWEEP_CONCAT_(qsweep_statusor_, __LINE__), lhs, rexpr)

#define QSWEEP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                  \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()
