#include "common/channel.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/secrets.h"

namespace qsweep {
namespace {

class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA))
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    methods->Proceed();
  }

 private:
  const std::string* header_;
};

class BearerFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerFactory(const std::string& token) : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(&header_);
  }

 private:
  const std::string header_;
};

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(what, " '", path, "' cannot be opened"));
  std::stringstream s;
  s << f.rdbuf();
  if (s.str().find("-----BEGIN") == std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat(what, " '", path, "' is not a PEM file"));
  return s.str();
}

std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
BearerTokenInterceptors(const std::string& token) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> out;
  if (!token.empty()) out.push_back(std::make_unique<BearerFactory>(token));
  return out;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& o) {
  if (o.address.empty()) return absl::InvalidArgumentError("server address is empty");
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (!o.tls_ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    auto ca = ReadPemFile(o.tls_ca_file, "TLS CA file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    if (o.tls_cert_file.empty() != o.tls_key_file.empty())
      return absl::InvalidArgumentError("a client certificate needs both --tls-cert and --tls-key");
    if (!o.tls_cert_file.empty()) {
      auto cert = ReadPemFile(o.tls_cert_file, "TLS client certificate");
      if (!cert.ok()) return cert.status();
      auto key = ReadPemFile(o.tls_key_file, "TLS client key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
  } else if (IsLocalAddress(o.address)) {
    creds =
        grpc::experimental::LocalCredentials(o.address.rfind("unix:", 0) == 0 ? UDS : LOCAL_TCP);
  } else if (o.insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("server '", o.address,
                     "' is not on this machine: pass --tls-ca FILE (or set "
                     "QSWEEP_TLS_CA) to connect over "
                     "TLS, or --insecure to send your token unencrypted"));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::experimental::CreateCustomChannelWithInterceptors(o.address, creds, args,
                                                                 BearerTokenInterceptors(o.token));
}

}  // namespace qsweep
