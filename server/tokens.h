// Minting and managing bearer tokens on the server: the Tokens service, the
// one-time admin token written at first start, and the worker token of
// `--local-workers`. Token format and hashing are in common/secrets.h.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "qsweep/v1/experiments.grpc.pb.h"
#include "server/auth.h"
#include "server/clock.h"
#include "storage/store.h"

namespace qsweep {

// OK if `owner` is a user name qsweep accepts: 1-64 characters of
// [A-Za-z0-9._@-]; INVALID_ARGUMENT naming `field` otherwise.
absl::Status ValidateOwner(const std::string& field, const std::string& owner);

struct IssuedToken {
  v1::Token record;    // as stored (with sha256)
  std::string secret;  // the whole token string, shown once
};

// Mints and stores a token. `ttl_seconds` 0 = never expires.
absl::StatusOr<IssuedToken> IssueToken(Store& store, Clock& clock, v1::Role role,
                                       const std::string& owner, const std::string& name,
                                       int64_t ttl_seconds, const std::string& created_by);

// First start: if the store holds no live admin token, issues one (owner
// "admin") and writes it to `path` with mode 0600. Returns whether it did.
absl::StatusOr<bool> BootstrapAdminToken(Store& store, Clock& clock, const std::string& path);

// `qsweep-server --admin-token-file`: makes the admin token the operator
// provides in `path` (one well-formed token in a regular file readable by
// owner and possibly group only: 0600, 0400, 0640 or 0440, as a Kubernetes
// Secret is in a pod with fsGroup) a live admin token of the
// store, instead of minting one. Idempotent: a start with the same file finds
// it stored. FAILED_PRECONDITION naming the flag if the file cannot be read,
// or if its id is stored with another secret or role, revoked or expired.
absl::Status ImportAdminToken(Store& store, Clock& clock, const std::string& path);

// A worker token for the server's own local workers, written to `path`
// (0600). Revokes the live tokens an earlier start made for them, so restarts
// do not pile up live tokens.
absl::Status IssueLocalWorkerToken(Store& store, Clock& clock, const std::string& path);

class TokenServiceImpl final : public v1::Tokens::CallbackService {
 public:
  // None is owned; all must outlive the service.
  TokenServiceImpl(Store& store, Clock& clock, Authenticator& auth);

  grpc::ServerUnaryReactor* CreateToken(grpc::CallbackServerContext* ctx,
                                        const v1::CreateTokenRequest* request,
                                        v1::CreateTokenResponse* response) override;
  grpc::ServerUnaryReactor* ListTokens(grpc::CallbackServerContext* ctx,
                                       const v1::ListTokensRequest* request,
                                       v1::ListTokensResponse* response) override;
  grpc::ServerUnaryReactor* RevokeToken(grpc::CallbackServerContext* ctx,
                                        const v1::RevokeTokenRequest* request,
                                        v1::RevokeTokenResponse* response) override;

 private:
  Store& store_;
  Clock& clock_;
  Authenticator& auth_;
};

}  // namespace qsweep
