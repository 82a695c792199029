// Model specifications: the JSC model zoo (MASE's exact layer lists) and custom
// layer lists from TOML. Torch-free: the server and the client link this to
// validate model names and count parameters without loading LibTorch.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qsweep {

enum class LayerKind { kBatchNorm1d, kReLU, kLinear, kDropout };

// One layer of a sequential container.
struct LayerSpec {
  LayerKind kind = LayerKind::kReLU;
  int64_t in = 0;   // Linear: in_features; BatchNorm1d: num_features
  int64_t out = 0;  // Linear: out_features; BatchNorm1d: num_features
  double p = 0.0;   // Dropout probability

  // "BatchNorm1d", "ReLU", "Linear", "Dropout": the PyTorch class name.
  std::string TypeName() const;
  // MASE's mase_op: "batch_norm1d", "relu", "linear", "dropout".
  std::string MaseOp() const;
  // PyTorch's repr, e.g. "Linear(in_features=16, out_features=5, bias=True)".
  std::string Repr() const;
  int64_t TrainableParams() const;
};

struct ModelSpec {
  std::string name;                      // "jsc-toy", or the custom model's name
  std::string container = "seq_blocks";  // "module_list" for jsc-s
  std::vector<LayerSpec> layers;
  int64_t in_features = 16;
  int64_t num_classes = 5;

  int64_t TrainableParams() const;
  // Buffer entries (BN running_mean, running_var, num_batches_tracked).
  int64_t BufferEntries() const;
  // The torch.fx node name of layer i: "seq_blocks_3".
  std::string NodeName(size_t i) const;
  // The module path of layer i: "seq_blocks.3".
  std::string ModulePath(size_t i) const;
};

// Names of the built-in models, in display order.
std::vector<std::string> ZooModelNames();

// A zoo model for the given input and output widths (16 and 5 for JSC).
// NOT_FOUND naming the known models if `name` is unknown.
absl::StatusOr<ModelSpec> ZooModel(const std::string& name, int64_t in_features = 16,
                                   int64_t num_classes = 5);

// Parses a custom model from TOML text. Format:
//   name = "jsc-10x"                 # optional; defaults to `default_name`
//   container = "seq_blocks"         # optional: "seq_blocks" | "module_list"
//   layers = [ {type = "batch_norm"}, {type = "relu"}, {type = "linear", width = 64}, ... ]
// or the shorthand
//   hidden = [64, 40, 10]            # BN(in), ReLU, then Linear(width)+BN+ReLU per entry,
//   batch_norm = true                # and a final Linear(classes)+BN+ReLU, as jsc-toy does
//   dropout = 0.0                    # optional Dropout after each hidden ReLU
// A linear layer's width may be omitted (or "classes") on the last linear layer.
// INVALID_ARGUMENT naming the offending field on any error.
absl::StatusOr<ModelSpec> ModelFromToml(const std::string& toml_text,
                                        const std::string& default_name, int64_t in_features = 16,
                                        int64_t num_classes = 5);

// A zoo name, or a path to a custom model TOML file. For local commands only:
// what comes from the service goes through ServiceModel, which opens no file.
absl::StatusOr<ModelSpec> ResolveModel(const std::string& name_or_path, int64_t in_features = 16,
                                       int64_t num_classes = 5);

// A custom model given inline (the JSON of a config's [model] table, with the
// keys of ModelFromToml). INVALID_ARGUMENT naming the field on any error.
absl::StatusOr<ModelSpec> ModelFromJson(const nlohmann::json& definition,
                                        const std::string& default_name, int64_t in_features = 16,
                                        int64_t num_classes = 5);

// The `model` value of a config sent to (or received from) the service: a zoo
// name (a string) or an inline definition (an object, whose optional `name`
// must be 1-64 of [A-Za-z0-9._+-], default "custom"). Never opens a file: any
// other string gets the same INVALID_ARGUMENT, listing the zoo names and
// saying that custom models are sent inline.
absl::StatusOr<ModelSpec> ServiceModel(const nlohmann::json& model, int64_t in_features = 16,
                                       int64_t num_classes = 5);

// The display name of a config's `model` value: the string, the inline
// definition's name ("custom" when it has none), or "" for anything else.
std::string ModelValueName(const nlohmann::json& model);

// Checks shapes: each layer's input width matches the previous output width,
// the first layer takes `in_features`, the last produces `num_classes`.
absl::Status ValidateModel(const ModelSpec& spec);

}  // namespace qsweep
