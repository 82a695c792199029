// INTERNAL, torch-ful header: only translation units of the torch layer (and
// torch test binaries) include it. Everything else uses the torch-free headers
// trainer.h and checkpoint.h.
//
// Network is the LibTorch module of a sequential ModelSpec, laid out exactly
// as MASE's PyTorch models so that parameter and buffer names match PyTorch's
// state dict: a holder submodule registered under spec.container
// ("seq_blocks" or "module_list") whose children are "0", "1", ...; e.g.
// "seq_blocks.0.weight", "seq_blocks.0.running_mean",
// "seq_blocks.0.num_batches_tracked", "seq_blocks.2.bias".
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/core/graph/graph.h"
#include "worker/core/model/model_spec.h"

namespace qsweep {

class Network : public torch::nn::Module {
 public:
  // Builds the layers of `spec` in layer order. When `seed` is set, the
  // network gets its own CPU generator seeded with *seed (generator()), and
  // the Linear layers are initialised from it exactly as PyTorch's default
  // initialisation of the same nn.Sequential after torch.manual_seed(seed)
  // (kaiming_uniform(a = sqrt(5)) weight, then uniform bias, layer by layer).
  // The process-wide default generator is never seeded and the values do not
  // depend on it (LibTorch's constructors still draw from it; those values
  // are overwritten), so networks built on several threads at once do not
  // disturb each other. Layers: BatchNorm1d (eps 1e-5, momentum 0.1), ReLU,
  // Linear (bias), Dropout(p).
  // INVALID_ARGUMENT if the spec fails ValidateModel.
  static absl::StatusOr<std::shared_ptr<Network>> Create(const ModelSpec& spec,
                                                         std::optional<uint64_t> seed);

  // Runs the layers in order (train/eval mode as set with train()/eval()).
  // In train mode a Dropout(p > 0) layer draws its mask from generator() when
  // the network has one (on the CPU, as ATen's CPU dropout: bernoulli(1 - p)
  // / (1 - p)), else from the default generator.
  torch::Tensor Forward(const torch::Tensor& x);

  // The network's own generator (seeded by Create), continuing after the
  // initialisation draws: the trainer draws its shuffles and dropout masks
  // from it. Undefined when Create had no seed.
  at::Generator generator() const { return generator_; }
  // Runs layer i alone (std::out_of_range for a bad index).
  torch::Tensor ForwardLayer(size_t i, const torch::Tensor& x);

  // Swaps layer i for another module, as MASE's transform passes replace
  // modules (e.g. Linear -> a quantized LinearInteger):
  //  - `layer` is what Forward calls (an AnyModule wrapping the new module);
  //  - `holder_child` is the same module as a torch::nn::Module; it replaces
  //    the child "<i>" of the container, so it must own parameters/buffers
  //    with the same names and shapes as the old layer ("weight", "bias")
  //    for state dicts and checkpoints to stay interchangeable.
  // Typical use:
  //   auto q = std::make_shared<LinearIntegerImpl>(...);
  //   q->weight.data().copy_(old_weight); ...
  //   net.ReplaceLayer(i, torch::nn::AnyModule(q), q);
  // INVALID_ARGUMENT if i is out of range or holder_child is null.
  // Not thread-safe; do not call while training (optimizer state refers to
  // the old parameters).
  absl::Status ReplaceLayer(size_t i, torch::nn::AnyModule layer,
                            std::shared_ptr<torch::nn::Module> holder_child);

  // The module of layer i as registered in the container (e.g. to read a
  // Linear's weight: std::dynamic_pointer_cast<torch::nn::LinearImpl>(...)).
  std::shared_ptr<torch::nn::Module> LayerModule(size_t i) const;
  size_t num_layers() const { return layers_.size(); }
  const ModelSpec& spec() const { return spec_; }

  // Moves parameters and buffers to `device` (call before building an
  // optimizer).
  void ToDevice(const torch::Device& device);

  // Parameters then buffers per module, in PyTorch's state_dict order
  // ("seq_blocks.0.weight", "seq_blocks.0.bias", "seq_blocks.0.running_mean",
  // ...). Values share storage with the module.
  std::vector<std::pair<std::string, torch::Tensor>> StateDict() const;

  // Copies tensors into the module's parameters/buffers by state-dict name.
  // Every parameter and buffer must be present with the same shape
  // (DATA_LOSS naming the key otherwise; `source` names the origin in the
  // message); extra keys are an error too.
  absl::Status LoadStateDict(const std::vector<std::pair<std::string, torch::Tensor>>& state,
                             const std::string& source);

  int64_t NumTrainableParams() const;

 private:
  explicit Network(ModelSpec spec);

  ModelSpec spec_;
  std::shared_ptr<torch::nn::Module> holder_;
  std::vector<torch::nn::AnyModule> layers_;
  at::Generator generator_;
};

// Runs a dummy batch of `batch` rows (deterministic values, no RNG draws)
// through `net` in eval mode under no-grad, and records each node's real
// output shape (results.data_out_0 and the next node's args.data_in_0) and
// each parameter's shape into `graph` (which must be BuildGraph of the same
// spec). Restores the module's train/eval mode afterwards. Updates each
// call_module node's type_name from the module's class (e.g. "Linear").
absl::Status FillGraphShapes(Graph& graph, Network& net, int64_t batch);

// Resolves a device string: "" picks cuda only when `accelerator` is "gpu"
// or "cuda" and CUDA is available, else cpu; "cpu"; "cuda" / "cuda:N"
// (FAILED_PRECONDITION when CUDA is not available). INVALID_ARGUMENT for
// anything else.
absl::StatusOr<torch::Device> ResolveDevice(const std::string& device,
                                            const std::string& accelerator);

}  // namespace qsweep
