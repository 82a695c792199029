// The torch-free part of reading a checkpoint: its "qsweep_checkpoint" record
// (JSON with the model spec and provenance). The zip container around it is
// LibTorch's reader and is not built here. The parser may refuse (DATA_LOSS);
// it may not crash or trip a sanitizer, and a spec it accepts round-trips.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "absl/status/status.h"
#include "worker/core/torch/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1u << 20)) return -1;
  auto info = qsweep::ParseCheckpointRecord(
      "fuzz.ckpt", std::string_view(reinterpret_cast<const char*>(data), size));
  if (!info.ok()) {
    if (info.status().code() != absl::StatusCode::kDataLoss) std::abort();
    return 0;
  }
  auto again = qsweep::ModelSpecFromJson(qsweep::ModelSpecToJson(info->spec));
  if (!again.ok() || qsweep::ModelSpecToJson(*again) != qsweep::ModelSpecToJson(info->spec)) {
    std::abort();
  }
  return 0;
}
