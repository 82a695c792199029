// The gRPC health checking protocol (grpc.health.v1.Health) from the client
// side, for `qsweep-server --check` and tests. The server side is gRPC's
// default health service, enabled in server.cc; the auth processor lets
// /grpc.health.v1.Health/ through without a token, so probes (Kubernetes
// grpc probes, scripts) need none.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace qsweep {

// grpc.health.v1.HealthCheckResponse.ServingStatus.
enum class ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

// Calls Health/Check for `service` ("" = the whole server) with a deadline of
// `timeout_ms`. An error when the call fails (UNAVAILABLE: nothing answers)
// or the answer cannot be read.
absl::StatusOr<ServingStatus> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                          const std::string& service, int64_t timeout_ms);

// "SERVING", "NOT_SERVING", ...
std::string ServingStatusName(ServingStatus status);

}  // namespace qsweep
