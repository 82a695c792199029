// The on-disk form of a prepared dataset: one immutable little-endian file.
//
//   offset 0   8 bytes   magic "QSWPDSET"
//          8   u32       format version (kPreparedFormatVersion)
//         12   u32       reserved, 0
//         16   64 bytes  SHA-256 (lowercase hex) of every byte from offset 80
//         80   u64       metadata length M
//         88   M bytes   metadata: name, synthetic flag, shapes, feature and
//                        class names, description, source, scaler
//              padding   zero bytes up to a multiple of 8
//              arrays    train_val x float32[rows*F], y int64[rows],
//                        test x float32[rows*F], y int64[rows]
//
// The SHA-256 is the dataset's identity (Dataset::sha256); it is verified on
// every load. Files are written to a temporary name and renamed, so a crash
// never leaves a partial file under the final name.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/core/data/dataset.h"

namespace qsweep {

inline constexpr uint32_t kPreparedFormatVersion = 1;
inline constexpr char kPreparedExtension[] = ".qsds";

// Writes `dataset` atomically to `path` and sets dataset.sha256. Creates the
// parent directory. INTERNAL/PERMISSION_DENIED naming the path on I/O errors;
// INVALID_ARGUMENT if the dataset's shapes are inconsistent.
absl::Status WritePreparedFile(const std::string& path, Dataset& dataset);

// Reads and verifies a prepared file. NOT_FOUND if it does not exist;
// DATA_LOSS naming the file if it is truncated, has a bad magic/version,
// inconsistent metadata, or its SHA-256 does not match.
absl::StatusOr<Dataset> ReadPreparedFile(const std::string& path);

}  // namespace qsweep
