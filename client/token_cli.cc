// `qsweep token create|list|revoke`: bearer tokens, through the Tokens service.
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "client/service_cli_internal.h"
#include "common/secrets.h"

namespace qsweep::service_cli_internal {
namespace {

// "30d", "12h", "90m", "3600s" or "never" (0) as seconds; -1 if malformed.
int64_t ParseDuration(const std::string& text) {
  if (text == "never" || text == "0") return 0;
  if (text.size() < 2) return -1;
  int64_t n = 0;
  if (!absl::SimpleAtoi(text.substr(0, text.size() - 1), &n) || n <= 0) return -1;
  switch (text.back()) {
    case 's':
      return n;
    case 'm':
      return n * 60;
    case 'h':
      return n * 3600;
    case 'd':
      return n * 86400;
    default:
      return -1;
  }
}

// admin, user, worker: the proto's own names without the prefix.
std::string RoleText(v1::Role r) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::Role_Name(r), "ROLE_"));
}

json TokenJson(const v1::Token& t) {
  return {{"id", t.id()},
          {"role", RoleText(t.role())},
          {"owner", t.owner()},
          {"name", t.name()},
          {"created", TimeText(t.created_unix_ms())},
          {"expires", t.expires_unix_ms() ? TimeText(t.expires_unix_ms()) : "never"},
          {"revoked", t.revoked_unix_ms() ? TimeText(t.revoked_unix_ms()) : ""}};
}

int Create(Common& c, const TokenArgs& a) {
  v1::CreateTokenRequest req;
  req.set_request_id(RequestId());
  req.set_role(a.role == "admin"    ? v1::ROLE_ADMIN
               : a.role == "worker" ? v1::ROLE_WORKER
                                    : v1::ROLE_USER);
  req.set_owner(a.owner);
  req.set_name(a.name);
  const int64_t ttl = ParseDuration(a.expires);
  if (ttl < 0) {
    *c.err << "qsweep token create: --expires '" << a.expires
           << "' must be a count with s, m, h or d (e.g. 30d), or never\n";
    return 2;
  }
  req.set_ttl_seconds(ttl);
  v1::CreateTokenResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s = v1::Tokens::NewStub(c.channel)->CreateToken(&ctx, req, &resp);
  if (!s.ok()) return RpcError(c, s);
  if (!a.output.empty()) {
    if (auto w = WriteSecretFile(a.output, resp.secret() + "\n"); !w.ok()) {
      *c.err << "qsweep: " << w.message() << "\n";
      return 1;
    }
    *c.out << "created " << RoleText(resp.token().role()) << " token " << resp.token().id()
           << " for " << resp.token().owner() << "; wrote it to " << a.output << " (mode 0600)\n";
    return 0;
  }
  // The secret goes to stdout alone, so `> file` captures just the token.
  *c.err << "created " << RoleText(resp.token().role()) << " token " << resp.token().id() << " for "
         << resp.token().owner()
         << "; it is shown once: store it in a file with mode 0600 (or use -o "
            "FILE)\n";
  *c.out << resp.secret() << "\n";
  return 0;
}

int List(Common& c, const TokenArgs& a) {
  v1::ListTokensRequest req;
  req.set_include_revoked(a.all);
  v1::ListTokensResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s = v1::Tokens::NewStub(c.channel)->ListTokens(&ctx, req, &resp);
  if (!s.ok()) return RpcError(c, s);
  if (c.format == "json") {
    json arr = json::array();
    for (const auto& t : resp.tokens()) arr.push_back(TokenJson(t));
    *c.out << arr.dump(2) << "\n";
    return 0;
  }
  Table t;
  t.headers = {"id", "role", "owner", "name", "created", "expires", "revoked"};
  for (const auto& tok : resp.tokens()) {
    json j = TokenJson(tok);
    std::vector<std::string> row;
    for (const auto& col : t.headers) row.push_back(j[col].get<std::string>());
    t.rows.push_back(std::move(row));
  }
  PrintTable(c, t);
  return 0;
}

int Revoke(Common& c, const TokenArgs& a) {
  v1::RevokeTokenRequest req;
  req.set_request_id(RequestId());
  req.set_token_id(a.id);
  v1::RevokeTokenResponse resp;
  grpc::ClientContext ctx;
  Deadline(ctx);
  grpc::Status s = v1::Tokens::NewStub(c.channel)->RevokeToken(&ctx, req, &resp);
  if (!s.ok()) return RpcError(c, s);
  *c.out << (resp.revoked() ? "revoked token " : "token was already revoked: ") << a.id << "\n";
  return 0;
}

}  // namespace

int Token(Common& c, const TokenArgs& args) {
  if (args.action == "create") return Create(c, args);
  if (args.action == "list") return List(c, args);
  return Revoke(c, args);
}

}  // namespace qsweep::service_cli_internal
