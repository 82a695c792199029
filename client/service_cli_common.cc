#include <ctime>
#include <fstream>
#include <random>

#include "absl/strings/str_format.h"
#include "client/service_cli_internal.h"
#include "common/channel.h"
#include "common/secrets.h"

namespace qsweep::service_cli_internal {

// A failed RPC as one line.
int RpcError(const Common& c, const grpc::Status& s) {
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE)
    *c.err << "qsweep: cannot reach qsweep-server at " << c.server << " (" << s.error_message()
           << "); start one with `qsweep up` or pass --server HOST:PORT\n";
  else
    *c.err << "qsweep: " << s.error_message() << "\n";
  return 1;
}

std::unique_ptr<v1::Experiments::Stub> Stub(const Common& c) {
  return v1::Experiments::NewStub(c.channel);
}

fs::path EmbeddedStateDir() {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  const char* home = std::getenv("HOME");
  return xdg && *xdg ? fs::path(xdg) / "qsweep"
                     : fs::path(home ? home : ".") / ".local" / "share" / "qsweep";
}

namespace {

// "localhost:P" and "127.0.0.1:P" name the same server.
std::string NormalAddress(std::string a) {
  while (!a.empty() && (a.back() == '\n' || a.back() == ' ')) a.pop_back();
  if (a.rfind("localhost:", 0) == 0) a = "127.0.0.1:" + a.substr(10);
  return a;
}

// True when the server `qsweep up` started is the one at `address` (it writes
// its address next to its admin token while it serves).
bool IsEmbeddedServer(const std::string& address) {
  std::ifstream f(EmbeddedStateDir() / "listen.address");
  std::string line;
  return f && std::getline(f, line) && NormalAddress(line) == NormalAddress(address);
}

}  // namespace

bool Connect(Common& c) {
  const bool chosen = !c.token_file.empty() || std::getenv("QSWEEP_TOKEN_FILE");
  std::string path = ResolveTokenPath(c.token_file);
  auto token = ReadTokenFile(path);
  // With no token chosen, a local server started by `qsweep up` is reached
  // with the admin token it wrote at its first start: when the user has no
  // token at all, or when that server is the one at this address (the user's
  // token may belong to a remote server).
  const bool embedded_here = !chosen && IsLocalAddress(c.server) && IsEmbeddedServer(c.server);
  if ((absl::IsNotFound(token.status()) || embedded_here) && !chosen && IsLocalAddress(c.server)) {
    const std::string embedded = (EmbeddedStateDir() / "admin.token").string();
    auto fallback = ReadTokenFile(embedded);
    if (!absl::IsNotFound(fallback.status())) {
      path = embedded;
      token = std::move(fallback);
    }
  }
  if (!token.ok()) {
    *c.err << "qsweep: " << token.status().message();
    if (absl::IsNotFound(token.status()))
      *c.err << "; pass --token-file FILE or set QSWEEP_TOKEN_FILE (an admin "
                "creates tokens "
                "with `qsweep token create`; `qsweep up` writes its admin "
                "token to "
             << (EmbeddedStateDir() / "admin.token").string() << ")";
    *c.err << "\n";
    return false;
  }
  ChannelOptions o;
  o.address = c.server;
  o.token = *token;
  o.tls_ca_file = c.tls_ca;
  o.tls_cert_file = c.tls_cert;
  o.tls_key_file = c.tls_key;
  o.insecure = c.insecure;
  auto channel = MakeChannel(o);
  if (!channel.ok()) {
    *c.err << "qsweep: " << channel.status().message() << "\n";
    return false;
  }
  c.channel = std::move(*channel);
  return true;
}

// A deadline for unary calls.
void Deadline(grpc::ClientContext& ctx, int seconds) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

std::string RequestId() {
  static std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x%016x", rng(), rng());
}

const char* StateName(v1::JobState s) {
  // The proto's own names (PENDING, ..., CANCELLED); "?" for values it lacks.
  const std::string& name = v1::JobState_Name(s);
  return name.empty() ? "?" : name.c_str();
}

std::string Num(double v) { return absl::StrFormat("%.4f", v); }

std::string ValueText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return absl::StrFormat("%g", v.get<double>());
  return v.dump();
}

std::string TimeText(int64_t unix_ms) {
  if (unix_ms <= 0) return "";
  time_t t = static_cast<time_t>(unix_ms / 1000);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", std::gmtime(&t));
  return buf;
}

// Prints a table in the chosen format (table or csv).
void PrintTable(const Common& c, const Table& t) {
  if (c.format == "csv")
    *c.out << RenderCsv(t);
  else
    *c.out << RenderTable(t, TableStyle::kSimple) << "\n";
}

absl::StatusOr<std::vector<v1::Job>> FetchJobs(Common& c, const std::string& sweep_id,
                                               const std::string& sort, bool asc,
                                               v1::JobState state, grpc::Status& status) {
  v1::ListJobsRequest req;
  req.set_sweep_id(sweep_id);
  req.set_sort_by(sort);
  req.set_descending(!asc && sort != "index" && sort != "state");
  req.set_state(state);
  auto stub = Stub(c);
  std::vector<v1::Job> jobs;
  do {  // the server answers in pages: follow them
    v1::ListJobsResponse resp;
    grpc::ClientContext ctx;
    Deadline(ctx);
    status = stub->ListJobs(&ctx, req, &resp);
    if (!status.ok()) return absl::UnknownError("rpc");
    for (auto& j : *resp.mutable_jobs()) jobs.push_back(std::move(j));
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return jobs;
}

}  // namespace qsweep::service_cli_internal
