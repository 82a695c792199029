// The worker's cache of datasets served by the coordinator: prepared files
// (worker/core/data/prepared_file.h) named by the SHA-256 of their whole
// content, under <data dir>/by-sha256/<sha256>.qsds. Torch-free.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"

namespace qsweep {

// Fetches content by hash (e.g. JobContext::FetchArtifact).
using FetchBySha256 = std::function<absl::StatusOr<std::string>(const std::string& sha256)>;

// Where the dataset with this hash is cached under `data_dir`.
std::string CachedDatasetPath(const std::string& data_dir, const std::string& sha256);

// Returns the path of the cached file whose content hashes to `sha256`. A
// cached file is used when its content still matches; otherwise the content
// is fetched, verified, written to a temporary file and renamed into place
// (so a crash never leaves a partial file under the final name).
// INVALID_ARGUMENT if `sha256` is not 64 lowercase hex digits; DATA_LOSS
// naming both hashes if the fetched content does not match; the fetch's error
// if it fails; INTERNAL naming the path on I/O errors.
absl::StatusOr<std::string> EnsureCachedDataset(const std::string& data_dir,
                                                const std::string& sha256,
                                                const FetchBySha256& fetch);

}  // namespace qsweep
