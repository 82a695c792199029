#include "worker/core/data/prepared_file.h"

#include <unistd.h>

#include <atomic>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace qsweep {
namespace {

static_assert(std::endian::native == std::endian::little,
              "prepared dataset files are little-endian; big-endian hosts need byte swaps");

constexpr char kMagic[8] = {'Q', 'S', 'W', 'P', 'D', 'S', 'E', 'T'};
constexpr size_t kFixedHeader = 88;  // magic, version, reserved, digest, meta length
constexpr uint64_t kMaxMeta = 64ull << 20;

// ---- metadata encoding ----
class MetaWriter {
 public:
  void U64(uint64_t v) { Raw(&v, sizeof v); }
  void F32(float v) { Raw(&v, sizeof v); }
  void Str(const std::string& s) {
    U64(s.size());
    Raw(s.data(), s.size());
  }
  void Strs(const std::vector<std::string>& v) {
    U64(v.size());
    for (auto& s : v) Str(s);
  }
  void F32s(const std::vector<float>& v) {
    U64(v.size());
    for (float f : v) F32(f);
  }
  const std::string& bytes() const { return buf_; }

 private:
  void Raw(const void* p, size_t n) { buf_.append(static_cast<const char*>(p), n); }
  std::string buf_;
};

class MetaReader {
 public:
  explicit MetaReader(std::string_view b) : b_(b) {}
  bool U64(uint64_t& v) { return Raw(&v, sizeof v); }
  bool I64(int64_t& v) { return Raw(&v, sizeof v); }
  bool Str(std::string& s) {
    uint64_t n;
    if (!U64(n) || n > b_.size() - pos_) return false;
    s.assign(b_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool Strs(std::vector<std::string>& v) {
    uint64_t n;
    if (!U64(n) || n > (b_.size() - pos_) / 8) return false;
    v.resize(n);
    for (auto& s : v)
      if (!Str(s)) return false;
    return true;
  }
  bool F32s(std::vector<float>& v) {
    uint64_t n;
    if (!U64(n) || n > (b_.size() - pos_) / 4) return false;
    v.resize(n);
    return n == 0 || Raw(v.data(), n * 4);
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  bool Raw(void* p, size_t n) {
    if (n > b_.size() - pos_) return false;
    std::memcpy(p, b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  std::string_view b_;
  size_t pos_ = 0;
};

std::string EncodeMeta(const Dataset& d) {
  MetaWriter w;
  w.Str(d.name);
  w.U64(d.synthetic ? 1 : 0);
  w.U64(static_cast<uint64_t>(d.n_features));
  w.U64(static_cast<uint64_t>(d.n_classes));
  w.U64(static_cast<uint64_t>(d.train_val.rows));
  w.U64(static_cast<uint64_t>(d.test.rows));
  w.Strs(d.feature_names);
  w.Strs(d.class_names);
  w.Str(d.description);
  w.Str(d.source);
  w.U64(static_cast<uint64_t>(d.synthetic_rows));
  w.U64(d.synthetic_seed);
  w.F32s(d.scaler_mean);
  w.F32s(d.scaler_std);
  return w.bytes();
}

bool DecodeMeta(std::string_view bytes, Dataset& d) {
  MetaReader r(bytes);
  uint64_t synth;
  return r.Str(d.name) && r.U64(synth) && r.I64(d.n_features) && r.I64(d.n_classes) &&
         r.I64(d.train_val.rows) && r.I64(d.test.rows) && r.Strs(d.feature_names) &&
         r.Strs(d.class_names) && r.Str(d.description) && r.Str(d.source) &&
         r.I64(d.synthetic_rows) && r.U64(d.synthetic_seed) && r.F32s(d.scaler_mean) &&
         r.F32s(d.scaler_std) && r.done() && (d.synthetic = synth != 0, synth <= 1);
}

size_t PaddingAfterMeta(uint64_t meta_len) { return (8 - (kFixedHeader + meta_len) % 8) % 8; }

bool ShapesOk(const Dataset& d) {
  auto ok = [&](const DataSplit& s) {
    return s.rows >= 0 && s.x.size() == static_cast<size_t>(s.rows * d.n_features) &&
           s.y.size() == static_cast<size_t>(s.rows);
  };
  return d.n_features > 0 && d.n_classes > 0 && ok(d.train_val) && ok(d.test) &&
         d.feature_names.size() == static_cast<size_t>(d.n_features) &&
         d.class_names.size() == static_cast<size_t>(d.n_classes);
}

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<FILE, FileCloser>;

// The parts of the file after the digest, in order.
std::vector<std::pair<const void*, size_t>> Payload(const Dataset& d, const uint64_t& meta_len,
                                                    const std::string& meta) {
  static const char kZeros[8] = {};
  return {{&meta_len, 8},
          {meta.data(), meta.size()},
          {kZeros, PaddingAfterMeta(meta_len)},
          {d.train_val.x.data(), d.train_val.x.size() * 4},
          {d.train_val.y.data(), d.train_val.y.size() * 8},
          {d.test.x.data(), d.test.x.size() * 4},
          {d.test.y.data(), d.test.y.size() * 8}};
}

absl::Status DataLoss(const std::string& path, absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat("prepared dataset file ", path, " is corrupt: ", why, "; delete it to rebuild"));
}

}  // namespace

absl::Status WritePreparedFile(const std::string& path, Dataset& dataset) {
  if (!ShapesOk(dataset)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", path, ": dataset shapes are inconsistent"));
  }
  const std::string meta = EncodeMeta(dataset);
  const uint64_t meta_len = meta.size();
  const auto parts = Payload(dataset, meta_len, meta);
  Sha256 hasher;
  for (const auto& [p, n] : parts) hasher.Update(p, n);
  const std::string digest = hasher.HexDigest();

  std::error_code ec;
  const std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path(), ec);
  static std::atomic<int> counter{0};
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid(), ".", counter++);
  {
    File f(std::fopen(tmp.c_str(), "wb"));
    if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot create ", tmp));
    const uint32_t head[2] = {kPreparedFormatVersion, 0};
    bool ok = std::fwrite(kMagic, 1, 8, f.get()) == 8 && std::fwrite(head, 4, 2, f.get()) == 2 &&
              std::fwrite(digest.data(), 1, 64, f.get()) == 64;
    for (const auto& [p, n] : parts) ok = ok && std::fwrite(p, 1, n, f.get()) == n;
    ok = ok && std::fflush(f.get()) == 0 && fsync(fileno(f.get())) == 0;
    if (!ok) {
      f.reset();
      std::filesystem::remove(tmp, ec);
      return absl::InternalError(absl::StrCat("failed writing ", tmp, " (disk full?)"));
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  dataset.sha256 = digest;
  return absl::OkStatus();
}

absl::StatusOr<Dataset> ReadPreparedFile(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) return absl::NotFoundError(absl::StrCat("prepared dataset file ", path, " not found"));
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  if (ec) return DataLoss(path, "cannot stat");
  char head[kFixedHeader];
  if (std::fread(head, 1, kFixedHeader, f.get()) != kFixedHeader) {
    return DataLoss(path, "truncated header");
  }
  if (std::memcmp(head, kMagic, 8) != 0) return DataLoss(path, "bad magic (not a qsweep dataset)");
  uint32_t version;
  std::memcpy(&version, head + 8, 4);
  if (version != kPreparedFormatVersion) {
    return DataLoss(path, absl::StrCat("unsupported format version ", version, " (expected ",
                                       kPreparedFormatVersion, ")"));
  }
  const std::string stored_digest(head + 16, 64);
  uint64_t meta_len;
  std::memcpy(&meta_len, head + 80, 8);
  if (meta_len > kMaxMeta || meta_len > file_size) return DataLoss(path, "bad metadata length");
  std::string meta(meta_len, '\0');
  if (std::fread(meta.data(), 1, meta_len, f.get()) != meta_len)
    return DataLoss(path, "truncated metadata");
  Dataset d;
  if (!DecodeMeta(meta, d) || !(d.n_features > 0 && d.n_features < (1 << 20)) || d.n_classes <= 0 ||
      d.train_val.rows < 0 || d.test.rows < 0 ||
      d.feature_names.size() != static_cast<size_t>(d.n_features) ||
      d.class_names.size() != static_cast<size_t>(d.n_classes)) {
    return DataLoss(path, "inconsistent metadata");
  }
  const size_t pad = PaddingAfterMeta(meta_len);
  // Both counts are >= 0 here; their sum is taken unsigned (no int64 overflow).
  const uint64_t rows =
      static_cast<uint64_t>(d.train_val.rows) + static_cast<uint64_t>(d.test.rows);
  const uint64_t expect = kFixedHeader + meta_len + pad + rows * (d.n_features * 4 + 8);
  if (rows > file_size || expect != file_size) {
    return DataLoss(
        path, absl::StrCat("size is ", file_size, " bytes, expected ", expect, " (truncated?)"));
  }
  d.train_val.x.resize(d.train_val.rows * d.n_features);
  d.train_val.y.resize(d.train_val.rows);
  d.test.x.resize(d.test.rows * d.n_features);
  d.test.y.resize(d.test.rows);
  char zeros[8];
  if (std::fread(zeros, 1, pad, f.get()) != pad) return DataLoss(path, "truncated");
  Sha256 hasher;
  const auto parts = Payload(d, meta_len, meta);
  for (size_t i = 0; i < parts.size(); ++i) {
    auto [p, n] = parts[i];
    if (i >= 3 && std::fread(const_cast<void*>(p), 1, n, f.get()) != n) {
      return DataLoss(path, "truncated arrays");
    }
    hasher.Update(i == 2 ? zeros : p, n);
  }
  d.sha256 = hasher.HexDigest();
  if (d.sha256 != stored_digest) {
    return DataLoss(path, absl::StrCat("SHA-256 mismatch (stored ", stored_digest.substr(0, 16),
                                       "..., computed ", d.sha256.substr(0, 16), "...)"));
  }
  for (int64_t v : d.train_val.y)
    if (v < 0 || v >= d.n_classes) return DataLoss(path, "label out of range");
  for (int64_t v : d.test.y)
    if (v < 0 || v >= d.n_classes) return DataLoss(path, "label out of range");
  return d;
}

}  // namespace qsweep
