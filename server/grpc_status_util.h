// The one place where absl::Status becomes grpc::Status (codes map 1:1; the
// message is kept as is, so the client shows the server's sentence).
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace qsweep {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace qsweep
