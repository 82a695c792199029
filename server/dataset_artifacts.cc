#include "server/dataset_artifacts.h"

#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "worker/core/config/train_config.h"
#include "worker/core/data/dataset.h"

namespace qsweep {
namespace {

absl::StatusOr<DatasetRequest> RequestOf(const nlohmann::json& config) {
  auto train = TrainConfigFromJson(config);
  if (!train.ok()) return absl::InvalidArgumentError(train.status().message());
  DatasetRequest r;
  r.name = train->dataset;
  r.cache_dir = train->data_dir;
  r.synthetic_rows = train->synthetic_rows;
  r.synthetic_seed = static_cast<uint64_t>(train->synthetic_seed);
  return r;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat("cannot open prepared dataset ", path));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (!in.good() && !in.eof())
    return absl::InternalError(absl::StrCat("cannot read prepared dataset ", path));
  return bytes.str();
}

// Prepares one dataset and stores its file. Returns the artifact hash.
absl::StatusOr<std::string> ServeOne(DatasetRequest request, Store& store,
                                     const DatasetServeOptions& options, int& stored) {
  if (request.cache_dir.empty()) request.cache_dir = options.data_dir;
  // Serialized: two submissions preparing the same file would race on it.
  static std::mutex prepare_mu;
  std::lock_guard<std::mutex> lock(prepare_mu);
  auto dataset = LoadDataset(request);
  if (!dataset.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("dataset '", request.name, "' cannot be prepared on the server: ",
                     dataset.status().message()));
  }
  const std::string path = PreparedPath(request);
  QSWEEP_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  const std::string sha = Sha256Hex(bytes);
  if (auto have = store.GetArtifactBytes(sha); have.ok()) return sha;
  else if (!absl::IsNotFound(have.status())) return have.status();
  v1::ArtifactInfo info;
  info.set_sha256(sha);
  info.set_kind("dataset");
  info.set_size_bytes(static_cast<int64_t>(bytes.size()));
  info.set_name(path.substr(path.find_last_of('/') + 1));
  QSWEEP_RETURN_IF_ERROR(store.PutArtifact(info, bytes));
  ++stored;
  return sha;
}

}  // namespace

absl::StatusOr<std::string> DatasetKeyOf(const nlohmann::json& config) {
  QSWEEP_ASSIGN_OR_RETURN(DatasetRequest r, RequestOf(config));
  return absl::StrCat(r.name, "|", r.synthetic_rows, "|", r.synthetic_seed, "|", r.cache_dir);
}

absl::StatusOr<ServedDatasets> ServeDatasets(const std::vector<nlohmann::json>& configs,
                                             Store& store, const DatasetServeOptions& options) {
  ServedDatasets served;
  std::map<std::string, std::string> by_key;
  for (const auto& config : configs) {
    QSWEEP_ASSIGN_OR_RETURN(std::string key, DatasetKeyOf(config));
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      QSWEEP_ASSIGN_OR_RETURN(DatasetRequest request, RequestOf(config));
      QSWEEP_ASSIGN_OR_RETURN(std::string sha, ServeOne(request, store, options, served.stored));
      it = by_key.emplace(key, sha).first;
      ++served.distinct;
    }
    served.sha256.push_back(it->second);
  }
  return served;
}

}  // namespace qsweep
