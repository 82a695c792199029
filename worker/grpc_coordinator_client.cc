#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "qsweep/v1/workers.grpc.pb.h"
#include "worker/coordinator_client.h"

namespace qsweep {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

class GrpcCoordinatorClient final : public CoordinatorClient {
 public:
  explicit GrpcCoordinatorClient(std::shared_ptr<grpc::Channel> channel)
      : stub_(v1::Workers::NewStub(std::move(channel))) {}

  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& r) override {
    return Unary(&v1::Workers::Stub::Register, r, v1::RegisterResponse(), 10000);
  }
  absl::StatusOr<v1::LeaseResponse> Lease(const v1::LeaseRequest& r) override {
    return Unary(&v1::Workers::Stub::Lease, r, v1::LeaseResponse(), r.wait_ms() + 10000);
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r) override {
    return Unary(&v1::Workers::Stub::Heartbeat, r, v1::HeartbeatResponse(), 10000);
  }
  absl::Status Complete(const v1::CompleteRequest& r) override {
    return Unary(&v1::Workers::Stub::Complete, r, v1::CompleteResponse(), 10000).status();
  }
  absl::Status Fail(const v1::FailRequest& r) override {
    return Unary(&v1::Workers::Stub::Fail, r, v1::FailResponse(), 10000).status();
  }

  absl::Status UploadArtifact(const std::string& lease_id, int64_t lease_epoch,
                              const v1::ArtifactInfo& info, const std::string& bytes) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::UploadArtifactResponse resp;
    auto writer = stub_->UploadArtifact(&ctx, &resp);
    constexpr size_t kChunk = 1 << 20;
    size_t offset = 0;
    do {
      v1::ArtifactChunk chunk;
      if (offset == 0) {
        *chunk.mutable_info() = info;
        chunk.set_lease_id(lease_id);
        chunk.set_lease_epoch(lease_epoch);
      }
      chunk.set_data(bytes.substr(offset, kChunk));
      offset += kChunk;
      if (!writer->Write(chunk)) break;
    } while (offset < bytes.size());
    writer->WritesDone();
    return FromGrpc(writer->Finish());
  }

  absl::StatusOr<std::string> FetchArtifact(const std::string& sha256) override {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::FetchArtifactRequest req;
    req.set_sha256(sha256);
    auto reader = stub_->FetchArtifact(&ctx, req);
    v1::ArtifactChunk chunk;
    std::string out;
    while (reader->Read(&chunk)) {
      if (static_cast<int64_t>(out.size() + chunk.data().size()) > kMaxArtifactBytes) {
        ctx.TryCancel();
        (void)reader->Finish();
        return absl::FailedPreconditionError(
            absl::StrCat("artifact ", sha256, " is larger than ", kMaxArtifactBytes, " bytes"));
      }
      out += chunk.data();
    }
    auto s = FromGrpc(reader->Finish());
    if (!s.ok()) return s;
    return out;
  }

 private:
  template <typename Method, typename Req, typename Resp>
  absl::StatusOr<Resp> Unary(Method method, const Req& req, Resp resp, int64_t deadline_ms) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    grpc::Status s = ((*stub_).*method)(&ctx, req, &resp);
    if (!s.ok()) return FromGrpc(s);
    return resp;
  }

  std::unique_ptr<v1::Workers::Stub> stub_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorClient>> NewGrpcCoordinatorClient(
    const ChannelOptions& options) {
  auto channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<CoordinatorClient>(
      std::make_unique<GrpcCoordinatorClient>(std::move(*channel)));
}

std::unique_ptr<CoordinatorClient> NewGrpcCoordinatorClient(
    std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<GrpcCoordinatorClient>(std::move(channel));
}

}  // namespace qsweep
