#include "worker/dataset_cache.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;

bool IsSha256Hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// True if `path` exists and its content hashes to `sha256`.
bool CachedFileMatches(const std::string& path, const std::string& sha256) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return Sha256Hex(bytes.str()) == sha256;
}

absl::Status WriteAtomically(const std::string& path, const std::string& bytes) {
  static std::atomic<int> counter{0};
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create the folder of ", path, ": ",
                                                  ec.message()));
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid(), ".", counter++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      fs::remove(tmp, ec);
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path, ": ",
                                            ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string CachedDatasetPath(const std::string& data_dir, const std::string& sha256) {
  return (fs::path(data_dir) / "by-sha256" / (sha256 + ".qsds")).string();
}

absl::StatusOr<std::string> EnsureCachedDataset(const std::string& data_dir,
                                                const std::string& sha256,
                                                const FetchBySha256& fetch) {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset_sha256 '", sha256, "' is not a SHA-256 (64 lowercase hex digits)"));
  }
  const std::string path = CachedDatasetPath(data_dir, sha256);
  if (CachedFileMatches(path, sha256)) return path;
  auto bytes = fetch(sha256);
  if (!bytes.ok()) {
    return absl::Status(bytes.status().code(),
                        absl::StrCat("fetching dataset ", sha256, ": ", bytes.status().message()));
  }
  const std::string actual = Sha256Hex(*bytes);
  if (actual != sha256) {
    return absl::DataLossError(absl::StrCat("dataset ", sha256,
                                            ": the fetched content hashes to ", actual));
  }
  if (auto s = WriteAtomically(path, *bytes); !s.ok()) return s;
  return path;
}

}  // namespace qsweep
