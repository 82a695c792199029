// How the CLI, the worker and tests reach qsweep-server: the transport
// security that fits the address, and the caller's bearer token on every call.
//
//   TLS (tls_ca_file set)   -> SSL channel credentials, optional client cert
//   unix:PATH, 127.x, ::1,  -> gRPC local credentials (the server's default
//   localhost                  without TLS; only local peers can connect)
//   anything else           -> refused unless `insecure` (tokens would cross
//                              the network in clear)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace grpc {
class Channel;
class ChannelArguments;
namespace experimental {
class ClientInterceptorFactoryInterface;
}  // namespace experimental
}  // namespace grpc

namespace qsweep {

struct ChannelOptions {
  // host:port, [v6]:port or unix:PATH. Required.
  std::string address;
  // The whole bearer token ("qsw_..."), sent as "authorization: Bearer ..." on
  // every call. Default: "" = none (the server then answers UNAUTHENTICATED).
  std::string token;
  // PEM file of the CA that signed the server's certificate. Default: "" = no
  // TLS (then the address must be local, or `insecure` set).
  std::string tls_ca_file;
  // Client certificate and key (PEM) for servers that ask for mutual TLS.
  // Default: "" = none.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Allow a plaintext connection to a non-local address. Default: false.
  bool insecure = false;
};

// A channel to options.address. INVALID_ARGUMENT for a non-local address
// without TLS or `insecure`; NOT_FOUND/PERMISSION_DENIED for unreadable PEM
// files. Connecting happens lazily, at the first call.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& options);

// The text of a PEM file; `what` names it in errors ("--tls-cert", ...).
// NOT_FOUND if it cannot be opened, INVALID_ARGUMENT if it holds no PEM block.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& what);

// Interceptors that add "authorization: Bearer <token>" to every call; for
// channels made elsewhere (e.g. a server's in-process channel in tests).
std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
BearerTokenInterceptors(const std::string& token);

}  // namespace qsweep
