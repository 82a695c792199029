// SHA-256 digests as lowercase hex, for content-addressed datasets and artifacts.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace qsweep {

// Incremental hasher. Not thread-safe; one instance per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Returns the hex digest. The hasher must not be used afterwards.
  std::string HexDigest();

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so OpenSSL stays out of this header.
};

std::string Sha256Hex(std::string_view data);

// Hashes a whole file. NOT_FOUND if it cannot be opened.
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace qsweep
