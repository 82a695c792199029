#include "server/tokens.h"

#include "absl/strings/str_cat.h"
#include "common/secrets.h"
#include "server/grpc_status_util.h"

namespace qsweep {
namespace {

#define QSWEEP_METHOD(name) "/qsweep.v1.Tokens/" #name

constexpr char kLocalWorkersOwner[] = "local-workers";
constexpr int64_t kMaxTtlSeconds = int64_t{10} * 366 * 24 * 3600;

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

bool OwnerChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '@' || c == '-';
}

absl::Status ValidateName(const std::string& name) {
  if (name.size() > 100)
    return absl::InvalidArgumentError("field 'name' is longer than 100 characters");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f)
      return absl::InvalidArgumentError("field 'name' contains a control character");
  return absl::OkStatus();
}

v1::Token Public(v1::Token t) {
  t.clear_sha256();
  return t;
}

}  // namespace

absl::Status ValidateOwner(const std::string& field, const std::string& owner) {
  bool ok = !owner.empty() && owner.size() <= 64;
  for (char c : owner) ok = ok && OwnerChar(c);
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("field '", field, "' must be 1-64 characters of letters, digits and . _ @ -"));
}

absl::StatusOr<IssuedToken> IssueToken(Store& store, Clock& clock, v1::Role role,
                                       const std::string& owner, const std::string& name,
                                       int64_t ttl_seconds, const std::string& created_by) {
  MintedToken minted = MintToken();
  IssuedToken out;
  out.secret = minted.secret;
  v1::Token& t = out.record;
  t.set_id(minted.id);
  t.set_sha256(TokenSha256(minted.secret));
  t.set_role(role);
  t.set_owner(owner);
  t.set_name(name);
  t.set_created_unix_ms(clock.NowMs());
  if (ttl_seconds > 0) t.set_expires_unix_ms(t.created_unix_ms() + ttl_seconds * 1000);
  t.set_created_by(created_by);
  if (auto s = store.CreateToken(t); !s.ok()) return s;
  return out;
}

absl::StatusOr<bool> BootstrapAdminToken(Store& store, Clock& clock, const std::string& path) {
  auto tokens = store.ListTokens();
  if (!tokens.ok()) return tokens.status();
  const int64_t now = clock.NowMs();
  for (const auto& t : *tokens)
    if (t.role() == v1::ROLE_ADMIN && t.revoked_unix_ms() == 0 &&
        (t.expires_unix_ms() == 0 || t.expires_unix_ms() > now))
      return false;
  auto issued = IssueToken(store, clock, v1::ROLE_ADMIN, "admin", "bootstrap admin", 0, "");
  if (!issued.ok()) return issued.status();
  if (auto s = WriteSecretFile(path, issued->secret + "\n"); !s.ok()) {
    store.RevokeToken(issued->record.id(), now).IgnoreError();
    return s;
  }
  return true;
}

absl::Status ImportAdminToken(Store& store, Clock& clock, const std::string& path) {
  auto fail = [&path](absl::string_view why) {
    return absl::FailedPreconditionError(absl::StrCat("--admin-token-file '", path, "': ", why));
  };
  // Group read is allowed: a Secret in a pod with fsGroup is 0440.
  auto token = ReadTokenFile(path, TokenFileAccess::kOwnerAndGroupRead);
  if (!token.ok()) return fail(token.status().message());
  auto id = TokenIdOf(*token);
  if (!id.ok()) return fail(id.status().message());
  const std::string sha256 = TokenSha256(*token);
  auto stored = store.GetToken(*id);
  if (stored.ok()) {
    if (!ConstantTimeEquals(stored->sha256(), sha256))
      return fail(absl::StrCat("token id ", *id, " is stored with another secret"));
    if (stored->role() != v1::ROLE_ADMIN)
      return fail(absl::StrCat("token ", *id, " is stored with a role other than admin"));
    if (stored->revoked_unix_ms() != 0)
      return fail(absl::StrCat("token ", *id, " was revoked; provide a new one"));
    if (stored->expires_unix_ms() != 0 && stored->expires_unix_ms() <= clock.NowMs())
      return fail(absl::StrCat("token ", *id, " has expired; provide a new one"));
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(stored.status())) return stored.status();
  v1::Token t;
  t.set_id(*id);
  t.set_sha256(sha256);
  t.set_role(v1::ROLE_ADMIN);
  t.set_owner("admin");
  t.set_name("provided by --admin-token-file");
  t.set_created_unix_ms(clock.NowMs());
  return store.CreateToken(t);
}

absl::Status IssueLocalWorkerToken(Store& store, Clock& clock, const std::string& path) {
  auto tokens = store.ListTokens();
  if (!tokens.ok()) return tokens.status();
  for (const auto& t : *tokens)
    if (t.role() == v1::ROLE_WORKER && t.owner() == kLocalWorkersOwner && t.revoked_unix_ms() == 0)
      store.RevokeToken(t.id(), clock.NowMs()).IgnoreError();
  auto issued =
      IssueToken(store, clock, v1::ROLE_WORKER, kLocalWorkersOwner, "local workers", 0, "");
  if (!issued.ok()) return issued.status();
  return WriteSecretFile(path, issued->secret + "\n");
}

TokenServiceImpl::TokenServiceImpl(Store& store, Clock& clock, Authenticator& auth)
    : store_(store), clock_(clock), auth_(auth) {}

grpc::ServerUnaryReactor* TokenServiceImpl::CreateToken(grpc::CallbackServerContext* ctx,
                                                        const v1::CreateTokenRequest* request,
                                                        v1::CreateTokenResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(CreateToken), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  const v1::Role role = request->role();
  if (role != v1::ROLE_ADMIN && role != v1::ROLE_USER && role != v1::ROLE_WORKER)
    return Done(ctx, absl::InvalidArgumentError("field 'role' must be admin, user or worker"));
  const std::string owner = request->owner().empty() ? caller->owner : request->owner();
  if (auto s = ValidateOwner("owner", owner); !s.ok()) return Done(ctx, s);
  if (auto s = ValidateName(request->name()); !s.ok()) return Done(ctx, s);
  if (request->ttl_seconds() < 0 || request->ttl_seconds() > kMaxTtlSeconds)
    return Done(ctx, absl::InvalidArgumentError(absl::StrCat(
                         "field 'ttl_seconds' must be 0 (never expires) to ", kMaxTtlSeconds)));
  if (!caller->is_admin() && (role != v1::ROLE_USER || owner != caller->owner))
    return Done(ctx,
                absl::PermissionDeniedError("users may create only user tokens for themselves; "
                                            "ask an admin for "
                                            "worker, admin or other users' tokens"));
  auto issued = IssueToken(store_, clock_, role, owner, request->name(), request->ttl_seconds(),
                           caller->token_id);
  if (!issued.ok()) return Done(ctx, issued.status());
  *response->mutable_token() = Public(issued->record);
  response->set_secret(issued->secret);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* TokenServiceImpl::ListTokens(grpc::CallbackServerContext* ctx,
                                                       const v1::ListTokensRequest* request,
                                                       v1::ListTokensResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(ListTokens), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  auto tokens = store_.ListTokens();
  if (!tokens.ok()) return Done(ctx, tokens.status());
  for (auto& t : *tokens) {
    if (!caller->is_admin() && (t.owner() != caller->owner || t.role() != v1::ROLE_USER)) continue;
    if (!request->include_revoked() && t.revoked_unix_ms() != 0) continue;
    *response->add_tokens() = Public(std::move(t));
  }
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* TokenServiceImpl::RevokeToken(grpc::CallbackServerContext* ctx,
                                                        const v1::RevokeTokenRequest* request,
                                                        v1::RevokeTokenResponse* response) {
  auto caller = Authorize(ctx, QSWEEP_METHOD(RevokeToken), auth_);
  if (!caller.ok()) return Done(ctx, caller.status());
  const std::string& id = request->token_id();
  auto token = store_.GetToken(id);
  if (!token.ok() ||
      (!caller->is_admin() && (token->owner() != caller->owner || token->role() != v1::ROLE_USER)))
    return Done(ctx, absl::NotFoundError(absl::StrCat("no token '", id, "'")));
  auto revoked = store_.RevokeToken(id, clock_.NowMs());
  auth_.Forget(id);
  if (revoked.ok()) response->set_revoked(*revoked);
  return Done(ctx, revoked.status());
}

}  // namespace qsweep
