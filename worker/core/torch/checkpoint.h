// qsweep checkpoint files (torch-free view). A checkpoint holds the model spec,
// parameters, buffers, optimizer state and provenance (dataset hash, seed,
// config, library versions, epoch, step, metrics).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "worker/core/model/model_spec.h"

namespace qsweep {

struct CheckpointInfo {
  ModelSpec spec;
  nlohmann::json meta;  // provenance: dataset, dataset_sha256, seed, config, versions, epoch, ...
};

// Reads the spec and metadata of a checkpoint. NOT_FOUND / DATA_LOSS naming the
// file when it is missing or not a qsweep checkpoint.
absl::StatusOr<CheckpointInfo> ReadCheckpointInfo(const std::string& path);

// Parses a checkpoint's "qsweep_checkpoint" record (JSON text; see
// checkpoint_io.h) into its spec and metadata. Torch-free, so it can be
// fuzzed on its own. DATA_LOSS naming `path` when the text is not a record
// this build reads (not JSON, unknown format or format_version, bad spec).
absl::StatusOr<CheckpointInfo> ParseCheckpointRecord(const std::string& path,
                                                     std::string_view record);

// Writes the parameters and buffers as a plain dict of tensors
// (torch::pickle_save), keys as in the PyTorch model ("seq_blocks.0.weight"),
// loadable with torch.load + load_state_dict(strict=True).
absl::Status ExportStateDict(const std::string& checkpoint_path, const std::string& out_path);

// ModelSpec <-> JSON, for checkpoints and the API.
nlohmann::json ModelSpecToJson(const ModelSpec& spec);
absl::StatusOr<ModelSpec> ModelSpecFromJson(const nlohmann::json& j);

}  // namespace qsweep
