#include "server/health.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <future>

#include "absl/strings/str_cat.h"

namespace qsweep {

namespace {

// HealthCheckRequest { string service = 1; } in protobuf wire format.
std::string EncodeRequest(const std::string& service) {
  if (service.empty()) return "";
  std::string out = "\x0a";  // field 1, length-delimited
  for (size_t n = service.size();; n >>= 7) {
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  return out + service;
}

// HealthCheckResponse { ServingStatus status = 1; }: the last varint of
// field 1 (absent = UNKNOWN); other fields are skipped.
absl::StatusOr<int64_t> DecodeStatus(const std::string& bytes) {
  int64_t status = 0;
  size_t i = 0;
  auto varint = [&](uint64_t& v) {
    v = 0;
    for (int shift = 0; i < bytes.size() && shift < 64; shift += 7) {
      const auto b = static_cast<uint8_t>(bytes[i++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  while (i < bytes.size()) {
    uint64_t key = 0, v = 0;
    if (!varint(key)) return absl::DataLossError("health answer: truncated field key");
    switch (key & 7) {
      case 0:
        if (!varint(v)) return absl::DataLossError("health answer: truncated varint");
        if (key >> 3 == 1) status = static_cast<int64_t>(v);
        break;
      case 2:
        if (!varint(v) || v > bytes.size() - i)
          return absl::DataLossError("health answer: truncated field");
        i += v;
        break;
      case 1:
        i += 8;
        break;
      case 5:
        i += 4;
        break;
      default:
        return absl::DataLossError("health answer: unknown wire type");
    }
  }
  if (i > bytes.size()) return absl::DataLossError("health answer: truncated");
  return status;
}

}  // namespace

std::string ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kServing:
      return "SERVING";
    case ServingStatus::kNotServing:
      return "NOT_SERVING";
    case ServingStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    default:
      return "UNKNOWN";
  }
}

absl::StatusOr<ServingStatus> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                          const std::string& service, int64_t timeout_ms) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  const std::string request_bytes = EncodeRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status s = done.get_future().get();
  if (!s.ok())
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat("health check failed: ", s.error_message()));
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::DataLossError("health answer: unreadable");
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  auto status = DecodeStatus(bytes);
  if (!status.ok()) return status.status();
  if (*status < 0 || *status > 3) return ServingStatus::kUnknown;
  return static_cast<ServingStatus>(*status);
}

}  // namespace qsweep
