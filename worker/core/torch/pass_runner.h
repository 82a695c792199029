// `qsweep transform`: runs MASE's `[passes.*]` tables in file order on a
// trained checkpoint, with optional evaluation before/after and
// quantization-aware fine-tuning, and writes everything under
// <project_dir>/<project>/software/transform/. Torch-free header.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/torch/trainer.h"

namespace qsweep {

struct TransformOptions {
  // The MASE-style TOML config ([passes.*], [transform], top-level keys such
  // as batch_size, project, project_dir, load_name). Required.
  std::string config_path;
  // Checkpoint to transform. Default: "" = the config's load_name.
  std::string load;
  // Overrides of the config's top-level keys (e.g. {"batch_size": 8,
  // "project_dir": "/tmp/out", "device": "cpu"}), as explicitly given flags.
  // The device is never taken from the checkpoint (where it was trained): it
  // is this override, else the config file's, else cpu. Default: none.
  nlohmann::json overrides = nlohmann::json::object();
  // Evaluate on the test split before and after the passes. Default: true.
  bool evaluate = true;
  // Quantization-aware fine-tuning epochs after the passes (Adam at the
  // config's learning_rate, straight-through gradients). Default: 0 = none.
  int64_t fine_tune_epochs = 0;
  // Folder for reports and the transformed checkpoint. Default: "" =
  // <project_dir>/<project>/software/transform, or transform-vN when an
  // earlier transform already wrote there.
  std::string output_dir;
  // Report file names (report_graph.file_name, report_node_meta_param.save_path)
  // must be plain names, as the service requires; otherwise relative paths
  // inside the output folder are allowed. Never outside it. Default: false.
  bool plain_report_names = false;
  // Receives each evaluation as a MetricPoint (test_loss_before,
  // test_acc_before, test_loss_after_passes, ..., test_acc_after_finetune) as
  // it is computed. Not owned; may be null.
  TrainCallback* callback = nullptr;
};

struct TransformResult {
  std::string output_dir;           // <project_dir>/<project>/software/transform
  std::string checkpoint;           // transformed_ckpt/transformed.ckpt (qsweep format)
  std::string state_dict;           // transformed_ckpt/state_dict.pt (plain dict for torch.load)
  std::vector<std::string> passes;  // in run order, implicit ones included
  std::string device;               // where it ran ("cpu", "cuda:0")
  std::string text;                 // everything the CLI prints, in order
  nlohmann::ordered_json report;    // transform_report.json contents
  // test_{loss,acc}_{before,after_passes,after_finetune}, and
  // accuracy_recovered_by_finetune (after_finetune - after_passes).
  std::map<std::string, double> metrics;
  std::vector<std::string> files;  // files written (absolute paths)
};

// Runs the transform. Errors (bad config naming the field, missing
// checkpoint, unknown dataset, torch failures) come back as a Status.
absl::StatusOr<TransformResult> RunTransform(const TransformOptions& options);

// Runs a checkpoint (re-applying its stored quantization) on `rows` rows of
// `x` (row-major, the model's input width) in eval mode on CPU; returns the
// outputs row-major. For tools and the cross-check tests.
absl::StatusOr<std::vector<float>> RunCheckpointForward(const std::string& checkpoint,
                                                        const std::vector<float>& x, int64_t rows);

}  // namespace qsweep
