// Authentication and authorization of every call to qsweep-server.
//
// A call carries "authorization: Bearer qsw_<id>_<secret>". The token's id
// selects its stored record; the SHA-256 of the whole string must match, and
// the token must be neither expired nor revoked. Its role decides the services
// it may call:
//   /qsweep.v1.Workers/*      worker tokens only
//   /qsweep.v1.Experiments/*  user and admin tokens
//   /qsweep.v1.Tokens/*       user and admin tokens (handlers narrow it down)
//   /grpc.health.v1.Health/*  anyone (liveness probes carry no token)
// Missing or bad tokens get UNAUTHENTICATED, a wrong role PERMISSION_DENIED;
// both name the method.
//
// Two ways in, one check: TokenAuthProcessor runs before any handler on TLS
// and local-credential ports and records the caller in the call's AuthContext;
// Authorize() in each handler reads that record, or, where no processor ran
// (in-process channels, --insecure-listen), authenticates the call's metadata
// itself. Identity is bound per call; each CLI or worker process uses one
// token.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_metadata_processor.h>

#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/caller.h"
#include "server/clock.h"
#include "storage/store.h"

namespace qsweep {

// Verifies tokens against the store. Thread-safe. Token records are cached
// for a few seconds; Forget() drops one at once (after a revocation).
class Authenticator {
 public:
  // Neither is owned; both must outlive the authenticator.
  Authenticator(Store& store, Clock& clock);

  // `header` is the value of the "authorization" metadata ("Bearer qsw_...").
  // UNAUTHENTICATED with a reason that never echoes the secret.
  absl::StatusOr<Caller> Authenticate(std::string_view header);
  void Forget(const std::string& token_id);

 private:
  struct Cached {
    v1::Token token;
    int64_t fetched_ms;
  };
  Store& store_;
  Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Cached> cache_;  // guarded by mu_
};

// The services of qsweep-server, as named in method paths.
enum class Service { kExperiments, kTokens, kWorkers, kHealth, kUnknown };
Service ServiceOf(std::string_view method_path);

// OK if `caller` may call a method of `service`; PERMISSION_DENIED naming the
// method and the roles allowed otherwise.
absl::Status CheckRole(const Caller& caller, Service service, std::string_view method_path);

// Runs before handlers on secure ports. Records the caller's token id, role
// and owner in the AuthContext (properties "qsweep.token_id", "qsweep.role",
// "qsweep.owner"), and can require a verified client certificate for worker
// tokens (mutual TLS).
class TokenAuthProcessor final : public grpc::AuthMetadataProcessor {
 public:
  TokenAuthProcessor(Authenticator& auth, bool require_worker_cert);
  bool IsBlocking() const override { return true; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  Authenticator& auth_;
  const bool require_worker_cert_;
};

// The caller of a handler's call to `method_path`; see the file comment.
absl::StatusOr<Caller> Authorize(grpc::CallbackServerContext* ctx, std::string_view method_path,
                                 Authenticator& auth);

}  // namespace qsweep
