// INTERNAL, torch-ful header (torch layer, passes, and their tests only):
// writing checkpoints and loading them into a Network.
//
// File format (one file per checkpoint, a LibTorch serialize archive, i.e. a
// zip file written by torch::serialize::OutputArchive):
//   "qsweep_checkpoint"  string IValue: JSON {"format": "qsweep-checkpoint",
//                        "format_version": 1, "spec": ModelSpecToJson(spec),
//                        "meta": {...provenance...}}
//   "state_dict"         Dict[str, Tensor] IValue: parameters and buffers under
//                        PyTorch's state-dict names, in state-dict order
//   "optimizer"          sub-archive (FlatOptimizer::Save), absent when no
//                        optimizer was given (e.g. transformed checkpoints)
// meta holds: dataset, dataset_sha256, synthetic, seed, config (full
// TrainConfig JSON), epoch, global_step, metrics, kind ("best"/"last"),
// libtorch_version, qsweep_version, device, optimizer (hyperparameters),
// quantization (opaque JSON, null unless a transform pass filled it) and
// provenance (TrainOptions::provenance).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/torch/checkpoint.h"
#include "worker/core/torch/network.h"
#include "worker/core/torch/optimizer.h"

namespace qsweep {

// Writes `net` (spec, state dict) plus `meta` and the optimizer state (may be
// null) to `path`, atomically (temporary file + rename). Adds
// libtorch_version and qsweep_version to meta; keeps meta["quantization"] as
// given (null when absent). INTERNAL naming the path on I/O errors.
absl::Status WriteCheckpoint(const std::string& path, const Network& net,
                             const FlatOptimizer* optimizer, nlohmann::json meta);

// Writes a LibTorch archive to `path` atomically: creates missing parent
// folders, lets `fill` write the entries, saves to "<path>.tmp" and renames it
// over `path` (the temporary file is removed on failure). `fill`'s own error is
// returned as is; I/O and LibTorch errors are INTERNAL "writing <what> '<path>'
// failed: ...".
absl::Status WriteArchiveAtomically(
    const std::string& path, const std::string& what,
    const std::function<absl::Status(torch::serialize::OutputArchive&)>& fill);

// Writes `net`'s parameters and buffers (detached, on CPU) under `key` as a
// Dict[str, Tensor] IValue in state-dict order.
void WriteStateDict(torch::serialize::OutputArchive& archive, const char* key, const Network& net);

// A checkpoint read back: info plus the tensors (on CPU).
struct CheckpointContents {
  CheckpointInfo info;
  std::vector<std::pair<std::string, torch::Tensor>> state;
};

// NOT_FOUND if `path` does not exist; DATA_LOSS naming the file if it is not a
// readable qsweep checkpoint.
absl::StatusOr<CheckpointContents> ReadCheckpoint(const std::string& path);

// Reads model weights from `path`: a qsweep checkpoint, or a pickled dict of
// tensors (ExportStateDict's output, or Python's
// torch.save(dict(model.state_dict()))). A leading "model." on every key
// (Lightning's prefix) is stripped. NOT_FOUND if missing; DATA_LOSS naming the
// file if it is neither.
absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> ReadWeights(
    const std::string& path);

// Builds a Network from the checkpoint's spec, loads its parameters and
// buffers, moves it to `device` and puts it in eval mode. `info` (optional)
// receives the spec and meta.
absl::StatusOr<std::shared_ptr<Network>> LoadCheckpointNetwork(const std::string& path,
                                                               const torch::Device& device,
                                                               CheckpointInfo* info = nullptr);

// Restores the optimizer state saved in a checkpoint (for resuming).
// NOT_FOUND if the checkpoint holds no optimizer state.
absl::Status LoadOptimizerState(const std::string& path, FlatOptimizer& optimizer);

}  // namespace qsweep
