// Packed training: K trials of one model and one dataset trained together,
// behind a torch-free header (callers such as the worker's job runner compile
// without <torch/torch.h>).
//
// The trials' parameters are stacked ([K, out, in] per Linear, [K·C] per
// BatchNorm), so one batched matrix product (bmm/baddbmm) runs all K Linear
// layers and one BatchNorm call over an [N, K·C] view normalises every trial
// with its own statistics. The forward and backward passes are written out by
// hand (no autograd graph), into buffers allocated once; the optimizer state
// lives in flat buffers with a per-trial learning rate. Losses stay on the
// device and are read at log steps and at the end of an epoch only (no host
// synchronisation per step).
//
// Results do not depend on packing: a trial in a pack gets the same initial
// weights (its own generator seeded with its seed, then the PyTorch
// initialisation), the same batch order (that generator, continuing after the
// initialisation as TrainModel's does) and, to float tolerance, the same
// metrics, checkpoints and result as TrainModel gives it alone. A single trial is a pack of one:
// TrainModel runs through this engine for every model it supports.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/core/config/train_config.h"
#include "worker/core/data/dataset.h"
#include "worker/core/model/model_spec.h"
#include "worker/core/torch/trainer.h"

namespace qsweep {

// One trial of a pack: its config and its own options (checkpoint folder,
// callback for metrics, progress, cancel and the final result, provenance).
struct PackedTrial {
  TrainConfig config;
  TrainOptions options;
};

// OK when `spec` can be trained by the packed engine: Linear, BatchNorm1d and
// ReLU layers, and Dropout with p = 0 (a no-op). Otherwise UNIMPLEMENTED naming
// the layer (TrainModel then uses its autograd loop).
absl::Status CheckPackableModel(const ModelSpec& spec);

// OK when `a` and `b` may share a pack. Per trial: seed, learning_rate,
// weight_decay, max_epochs, load_name and everything that is only provenance
// (project, log_level, ...). Must be equal: batch_size, training_optimizer,
// accumulate_grad_batches, max_steps, debug, log_every_n_steps,
// trainer_precision, device, accelerator, threads (and model / dataset, which
// the caller passes once). INVALID_ARGUMENT naming the first key that differs.
absl::Status CheckPackable(const TrainConfig& a, const TrainConfig& b);

// Trains the trials together on `data` (one model `spec`, one dataset, as
// loaded by the caller). Each trial leaves the pack when it ends: after its
// last epoch (evaluated and checkpointed), when it diverges or when its
// callback's ShouldStop() returns true; its callback's OnFinished gets its
// result at that moment, while the others go on. Returns the results in the
// order of `trials`. Errors: an empty pack, trials that cannot share a pack
// (CheckPackable, naming the trial index), a model the engine does not support
// (CheckPackableModel), bad config values or data (as TrainModel); a failure
// while training (I/O, LibTorch) ends the whole pack with INTERNAL and the
// context. Sets the calling thread's intra-op threads to config.threads (see
// SetThreadIntraOpThreads).
absl::StatusOr<std::vector<TrainResult>> TrainPacked(const std::vector<PackedTrial>& trials,
                                                     const ModelSpec& spec, const Dataset& data);

// Sets the number of intra-op threads used by LibTorch operations started from
// the calling thread, without changing other threads (LibTorch's OpenMP backend
// keeps the count per thread; torch::set_num_threads would also change the
// process-wide default that threads without their own setting inherit). Returns
// the value now in effect on this thread.
int SetThreadIntraOpThreads(int threads);
// The intra-op thread count in effect on the calling thread.
int ThreadIntraOpThreads();

}  // namespace qsweep
