// INTERNAL, torch-ful header (torch layer, passes runner and their tests only).
//
// Quantized modules for the quantize pass, as MASE's LinearInteger /
// ReLUInteger family: weights and biases stay full precision under the same
// parameter names as the float modules ("weight", "bias"), are quantized on
// every forward, gradients pass straight through (identity, as
// x + (q(x) - x).detach(), computed so that the value is exactly q(x)),
// and the output is not quantized. ReLU's input quantizer is unsigned.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"
#include "worker/core/passes/quantize_config.h"
#include "worker/core/torch/network.h"

namespace qsweep {

// Fake quantization of `x` in `format` with the straight-through gradient.
// integer runs as tensor ops on x's device (torch::round = half to even);
// the other arithmetics use the reference quantizer of quantizers.h on CPU.
torch::Tensor FakeQuantize(const torch::Tensor& x, const OperandFormat& format, bool is_signed);

// Linear with quantized input, weight and bias. Class name (module name) as
// MASE's: "LinearInteger", "LinearLog", ...
class QuantLinearImpl : public torch::nn::Module {
 public:
  QuantLinearImpl(int64_t in, int64_t out, NodeQuantConfig config);
  torch::Tensor forward(const torch::Tensor& x);
  // The weight / bias the forward pass computes with.
  torch::Tensor EffectiveParameter(const std::string& name);
  const NodeQuantConfig& config() const { return config_; }

  torch::Tensor weight, bias;

 private:
  NodeQuantConfig config_;
};

// ReLU of the (unsigned, for integer) quantized input: "ReLUInteger", ...
class QuantReLUImpl : public torch::nn::Module {
 public:
  explicit QuantReLUImpl(NodeQuantConfig config);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  NodeQuantConfig config_;
};

// Replaces the planned layers of `net`, copying weights and biases. The
// state dict keeps its keys and values. INVALID_ARGUMENT if a planned node is
// not a linear/relu layer of `net`.
absl::Status ApplyQuantizationToNetwork(Network& net, const QuantizePlan& plan);

// The checkpoint metadata that lets a loader re-apply the quantization:
// {"format": "qsweep-quantization", "version": 1, "model": ..., "pass_args":
// <[passes.quantize] as given>, "plan": QuantizePlanToJson(plan)}.
nlohmann::json QuantizationMeta(const QuantizePlan& plan, const nlohmann::ordered_json& pass_args,
                                const ModelSpec& spec);

// Re-applies QuantizationMeta to a freshly loaded float network (no-op for
// null meta). INVALID_ARGUMENT / DATA_LOSS naming the problem otherwise.
absl::Status ApplyQuantizationMeta(Network& net, const nlohmann::json& meta);

}  // namespace qsweep
