// Prepared dataset files (.qsds) as a worker might find them in its cache or
// receive from the server. The stored SHA-256 covers every byte after the
// header, so random bytes would stop at the digest check: the harness writes
// the right digest into the header first (except when the low bit of the
// reserved header field, which the reader ignores, is set: that keeps the
// digest check itself covered), so the metadata and
// array parsing behind it is reached. The reader may refuse (DATA_LOSS); it
// may not crash, allocate without bound, or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "common/sha256.h"
#include "fuzz/fuzz_util.h"
#include "worker/core/data/prepared_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return -1;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  constexpr size_t kReservedAt = 12, kDigestAt = 16, kHashedFrom = 80;
  if (bytes.size() >= kHashedFrom && (bytes[kReservedAt] & 1) == 0) {
    const std::string digest = qsweep::Sha256Hex(std::string_view(bytes).substr(kHashedFrom));
    std::memcpy(bytes.data() + kDigestAt, digest.data(), 64);
  }
  qsweep::fuzz::WriteScratch(bytes.data(), bytes.size());
  auto d = qsweep::ReadPreparedFile(qsweep::fuzz::ScratchPath());
  if (!d.ok() && d.status().code() != absl::StatusCode::kDataLoss) std::abort();
  if (d.ok()) {
    // What a caller relies on: shapes agree with the arrays.
    if (d->train_val.x.size() != static_cast<size_t>(d->train_val.rows * d->n_features) ||
        d->test.y.size() != static_cast<size_t>(d->test.rows)) {
      std::abort();
    }
  }
  return 0;
}
