#include "server/auth.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/secrets.h"
#include "server/grpc_status_util.h"

namespace qsweep {
namespace {

constexpr int64_t kCacheMs = 5000;
constexpr char kTokenIdProperty[] = "qsweep.token_id";
constexpr char kRoleProperty[] = "qsweep.role";
constexpr char kOwnerProperty[] = "qsweep.owner";

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status Unauthenticated(std::string_view method, absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat(Sv(method), ": ", why));
}

std::string_view Value(const grpc::AuthContext& ctx, const char* name) {
  auto values = ctx.FindPropertyValues(name);
  if (values.empty()) return {};
  return std::string_view(values[0].data(), values[0].size());
}

}  // namespace

Authenticator::Authenticator(Store& store, Clock& clock) : store_(store), clock_(clock) {}

absl::StatusOr<Caller> Authenticator::Authenticate(std::string_view header) {
  if (header.empty())
    return absl::UnauthenticatedError(
        "no bearer token: pass --token-file FILE or set QSWEEP_TOKEN_FILE "
        "(an admin creates tokens with `qsweep token create`)");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.substr(0, kBearer.size()) != kBearer)
    return absl::UnauthenticatedError("authorization metadata must be 'Bearer qsw_...'");
  const std::string_view token = header.substr(kBearer.size());
  auto id = TokenIdOf(token);
  if (!id.ok()) return absl::UnauthenticatedError(id.status().message());
  const int64_t now = clock_.NowMs();
  v1::Token record;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(*id);
    if (it != cache_.end() && now - it->second.fetched_ms < kCacheMs) {
      record = it->second.token;
    } else {
      auto stored = store_.GetToken(*id);
      if (absl::IsNotFound(stored.status()))
        return absl::UnauthenticatedError(absl::StrCat("unknown token qsw_", *id, "_..."));
      if (!stored.ok()) return stored.status();
      record = *stored;
      if (cache_.size() > 4096) cache_.clear();
      cache_[*id] = {record, now};
    }
  }
  if (!ConstantTimeEquals(TokenSha256(token), record.sha256()))
    return absl::UnauthenticatedError(absl::StrCat("wrong secret for token qsw_", *id, "_..."));
  if (record.revoked_unix_ms() != 0)
    return absl::UnauthenticatedError(absl::StrCat("token qsw_", *id, "_... was revoked"));
  if (record.expires_unix_ms() != 0 && record.expires_unix_ms() <= now)
    return absl::UnauthenticatedError(absl::StrCat("token qsw_", *id, "_... has expired"));
  Caller caller;
  caller.token_id = record.id();
  caller.role = record.role();
  caller.owner = record.owner();
  return caller;
}

void Authenticator::Forget(const std::string& token_id) {
  std::lock_guard<std::mutex> lock(mu_);
  cache_.erase(token_id);
}

Service ServiceOf(std::string_view path) {
  auto starts = [&](std::string_view prefix) { return path.substr(0, prefix.size()) == prefix; };
  if (starts("/qsweep.v1.Experiments/")) return Service::kExperiments;
  if (starts("/qsweep.v1.Tokens/")) return Service::kTokens;
  if (starts("/qsweep.v1.Workers/")) return Service::kWorkers;
  if (starts("/grpc.health.v1.Health/")) return Service::kHealth;
  return Service::kUnknown;
}

absl::Status CheckRole(const Caller& caller, Service service, std::string_view method) {
  const char* allowed = "";
  bool ok = false;
  switch (service) {
    case Service::kExperiments:
    case Service::kTokens:
      ok = caller.role == v1::ROLE_USER || caller.role == v1::ROLE_ADMIN;
      allowed = "user or admin tokens";
      break;
    case Service::kWorkers:
      ok = caller.role == v1::ROLE_WORKER;
      allowed = "worker tokens";
      break;
    case Service::kHealth:
      return absl::OkStatus();
    case Service::kUnknown:
      allowed = "no token";
      break;
  }
  if (ok) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(Sv(method), " is not allowed for a ",
                                                  RoleText(caller.role),
                                                  " token (allowed: ", allowed, ")"));
}

TokenAuthProcessor::TokenAuthProcessor(Authenticator& auth, bool require_worker_cert)
    : auth_(auth), require_worker_cert_(require_worker_cert) {}

grpc::Status TokenAuthProcessor::Process(const InputMetadata& md, grpc::AuthContext* context,
                                         OutputMetadata* consumed, OutputMetadata*) {
  std::string method = "(unknown method)";
  if (auto p = md.find(":path"); p != md.end()) method.assign(p->second.data(), p->second.size());
  const Service service = ServiceOf(method);
  if (service == Service::kHealth) return grpc::Status::OK;
  std::string header;
  if (auto a = md.find("authorization"); a != md.end())
    header.assign(a->second.data(), a->second.size());
  auto caller = auth_.Authenticate(header);
  if (!caller.ok()) return ToGrpcStatus(Unauthenticated(method, caller.status().message()));
  if (auto s = CheckRole(*caller, service, method); !s.ok()) return ToGrpcStatus(s);
  if (require_worker_cert_ && caller->role == v1::ROLE_WORKER && context->GetPeerIdentity().empty())
    return ToGrpcStatus(
        absl::PermissionDeniedError(absl::StrCat(method,
                                                 ": worker tokens must come with a client "
                                                 "certificate signed by the server's "
                                                 "--tls-client-ca (mutual TLS)")));
  // One identity per connection: the first token seen on it is the only one
  // it may use (the context may be the connection's, shared by its calls).
  const std::string_view bound = Value(*context, kTokenIdProperty);
  if (!bound.empty()) {
    if (bound != caller->token_id)
      return ToGrpcStatus(
          absl::PermissionDeniedError(absl::StrCat(method,
                                                   ": this connection is bound to another token; "
                                                   "open a new connection to use "
                                                   "a different token")));
  } else {
    context->AddProperty(kTokenIdProperty, caller->token_id);
    context->AddProperty(kRoleProperty, std::to_string(static_cast<int>(caller->role)));
    context->AddProperty(kOwnerProperty, caller->owner);
  }
  consumed->insert({"authorization", header});
  return grpc::Status::OK;
}

absl::StatusOr<Caller> Authorize(grpc::CallbackServerContext* ctx, std::string_view method,
                                 Authenticator& auth) {
  Caller caller;
  auto context = ctx->auth_context();
  if (context && !Value(*context, kTokenIdProperty).empty()) {
    caller.token_id = std::string(Value(*context, kTokenIdProperty));
    int role = 0;
    const std::string_view text = Value(*context, kRoleProperty);
    if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &role))
      return absl::InternalError(absl::StrCat(Sv(method), ": the call's identity is incomplete"));
    caller.role = static_cast<v1::Role>(role);
    caller.owner = std::string(Value(*context, kOwnerProperty));
  } else {
    // No processor ran for this call: check its metadata here.
    std::string header;
    const auto& md = ctx->client_metadata();
    if (auto a = md.find("authorization"); a != md.end())
      header.assign(a->second.data(), a->second.size());
    auto authenticated = auth.Authenticate(header);
    if (!authenticated.ok()) return Unauthenticated(method, authenticated.status().message());
    caller = *authenticated;
  }
  if (auto s = CheckRole(caller, ServiceOf(method), method); !s.ok()) return s;
  return caller;
}

}  // namespace qsweep
