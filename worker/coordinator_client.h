// The worker's view of the coordinator: the Workers API as blocking calls.
// The gRPC implementation is in grpc_coordinator_client.h; tests may supply
// their own. Thread-safe: calls may come from several threads at once.
// Errors are the server's status (UNAVAILABLE when it cannot be reached).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/channel.h"
#include "qsweep/v1/workers.pb.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace qsweep {

class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;
  virtual absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& r) = 0;
  // Blocks up to about r.wait_ms() for work.
  virtual absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& r) = 0;
  virtual absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r) = 0;
  virtual absl::Status Complete(const v1::CompleteRequest& r) = 0;
  virtual absl::Status Fail(const v1::FailRequest& r) = 0;
  // Uploads content for info.job_id under the lease that job holds;
  // `info.sha256` must be its hash.
  virtual absl::Status UploadArtifact(const std::string& lease_id, int64_t lease_epoch,
                                      const v1::ArtifactInfo& info, const std::string& bytes) = 0;
  // NOT_FOUND if the server has no such content.
  virtual absl::StatusOr<std::string> FetchArtifact(const std::string& sha256) = 0;
};

// A client over a channel made by MakeChannel (common/channel.h): transport
// security by address, and the worker token on every call.
absl::StatusOr<std::unique_ptr<CoordinatorClient>> NewGrpcCoordinatorClient(
    const ChannelOptions& options);
// A client over an existing channel (e.g. a server's in-process channel).
std::unique_ptr<CoordinatorClient> NewGrpcCoordinatorClient(std::shared_ptr<grpc::Channel> channel);

}  // namespace qsweep
