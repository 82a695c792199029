// Helpers shared by the service command files (service_cli.cc,
// service_plot.cc). Internal to the client module.
#pragma once

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/table.h"
#include "qsweep/v1/experiments.grpc.pb.h"

namespace qsweep::service_cli_internal {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// Command-line state shared by every command.
struct Common {
  std::string server;
  std::string format = "table";
  std::ostream* out;
  std::ostream* err;
  // How to reach the server (flags --token-file, --tls-ca, --tls-cert,
  // --tls-key, --insecure and their environment variables).
  std::string token_file;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  bool insecure = false;
  // Made by Connect() before a command runs.
  std::shared_ptr<grpc::Channel> channel;
};

// Reads the caller's token and makes c.channel. On failure prints one line
// naming the file or flag to fix and returns false.
bool Connect(Common& c);
// Where `qsweep up` keeps its database and its admin token.
fs::path EmbeddedStateDir();

// Prints a failed RPC as one line; returns 1.
int RpcError(const Common& c, const grpc::Status& s);
std::unique_ptr<v1::Experiments::Stub> Stub(const Common& c);
// A deadline for unary calls.
void Deadline(grpc::ClientContext& ctx, int seconds = 30);
std::string RequestId();
const char* StateName(v1::JobState s);
std::string Num(double v);
std::string ValueText(const json& v);
std::string TimeText(int64_t unix_ms);
// Prints a table in the chosen format (table or csv).
void PrintTable(const Common& c, const Table& t);
// Jobs of a sweep; on an RPC error returns an error and fills `status`.
absl::StatusOr<std::vector<v1::Job>> FetchJobs(Common& c, const std::string& sweep_id,
                                               const std::string& sort, bool asc,
                                               v1::JobState state, grpc::Status& status);
// `qsweep token create|list|revoke`.
struct TokenArgs {
  std::string action;  // create, list, revoke
  std::string role = "user";
  std::string owner;
  std::string name;
  std::string expires = "never";
  std::string output;
  std::string id;
  bool all = false;
};
int Token(Common& c, const TokenArgs& args);
// `qsweep plot`.
int Plot(Common& c, const std::string& sweep_id, const std::string& metric, const std::string& x,
         const std::string& out_path);

}  // namespace qsweep::service_cli_internal
