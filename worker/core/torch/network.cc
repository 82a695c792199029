#include "worker/core/torch/network.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/core/torch/batch_norm.h"

namespace qsweep {
namespace {

// A container module named like the PyTorch class it stands for, so that
// pretty printing reads "Sequential" / "ModuleList".
std::shared_ptr<torch::nn::Module> MakeHolder(const std::string& container) {
  return std::make_shared<torch::nn::Module>(container == "module_list" ? "ModuleList"
                                                                        : "Sequential");
}

// Builds one layer. Construction order matters for the RNG: each Linear draws
// its weight (kaiming_uniform, a = sqrt(5)) and then its bias, as PyTorch does.
std::pair<torch::nn::AnyModule, std::shared_ptr<torch::nn::Module>> MakeLayer(const LayerSpec& l) {
  switch (l.kind) {
    case LayerKind::kBatchNorm1d: {
      torch::nn::BatchNorm1d m(torch::nn::BatchNorm1dOptions(l.out).eps(1e-5).momentum(0.1));
      return {torch::nn::AnyModule(m), m.ptr()};
    }
    case LayerKind::kLinear: {
      torch::nn::Linear m(torch::nn::LinearOptions(l.in, l.out).bias(true));
      return {torch::nn::AnyModule(m), m.ptr()};
    }
    case LayerKind::kDropout: {
      torch::nn::Dropout m(torch::nn::DropoutOptions(l.p));
      return {torch::nn::AnyModule(m), m.ptr()};
    }
    case LayerKind::kReLU:
      break;
  }
  torch::nn::ReLU m;
  return {torch::nn::AnyModule(m), m.ptr()};
}

// PyTorch's nn.Linear reset_parameters() with draws from `gen`, in layer order
// (the same arithmetic as LibTorch's init::kaiming_uniform_ and
// LinearImpl::reset_parameters, so the values equal those of
// torch.manual_seed(seed) and a freshly built nn.Sequential).
void InitLinearLayers(const Network& net, at::Generator& gen) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < net.num_layers(); ++i) {
    auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(net.LayerModule(i));
    if (!linear) continue;
    const double fan_in = static_cast<double>(linear->weight.size(1));
    const double a = std::sqrt(5.0);  // kaiming_uniform_(weight, a = sqrt(5)), leaky_relu gain
    const double gain = std::sqrt(2.0 / (1 + std::pow(a, 2)));
    const double std_dev = gain / std::sqrt(fan_in);
    const double w_bound = std::sqrt(3.0) * std_dev;
    linear->weight.uniform_(-w_bound, w_bound, gen);
    const double b_bound = 1 / std::sqrt(fan_in);
    linear->bias.uniform_(-b_bound, b_bound, gen);
  }
}

// ATen's CPU dropout in training (input * bernoulli(1 - p) / (1 - p)) with
// the mask drawn from `gen` on the CPU.
torch::Tensor DropoutWith(const torch::Tensor& x, double p, at::Generator& gen) {
  if (p >= 1) return x * torch::zeros_like(x);
  torch::Tensor noise = torch::empty(x.sizes(), x.options().device(torch::kCPU));
  noise.bernoulli_(1 - p, gen);
  noise.div_(1 - p);
  if (!x.device().is_cpu()) noise = noise.to(x.device());
  return x * noise;
}

// BatchNorm1d in training mode on the host, for autograd: the arithmetic of
// BatchNormTrainForward / Backward (batch_norm.h), the packed engine's, so
// the autograd loop and the packed engine differ only in how they run the
// other layers (PackedTrainerTest.SingleTrialMatchesAutograd). Updates the
// running statistics in place as LibTorch's kernel does.
class BatchNormTrainFunction : public torch::autograd::Function<BatchNormTrainFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               torch::Tensor running_mean, torch::Tensor running_var,
                               double momentum, double eps) {
    const torch::Tensor x = input.contiguous();
    const int64_t channels = x.size(1);
    torch::Tensor y = torch::empty_like(x);
    auto stats = x.options().dtype(torch::kDouble);
    torch::Tensor mean = torch::empty({channels}, stats), invstd = torch::empty({channels}, stats);
    const BatchNormShape shape{x.size(0), 1, channels, channels};
    BatchNormTrainForward(shape, x.data_ptr<float>(), weight.data_ptr<float>(),
                          bias.data_ptr<float>(), momentum, eps, running_mean.data_ptr<float>(),
                          running_var.data_ptr<float>(), y.data_ptr<float>(),
                          mean.data_ptr<double>(), invstd.data_ptr<double>());
    ctx->save_for_backward({x, weight, mean, invstd});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor g = grads[0].contiguous();
    torch::Tensor gx = torch::empty_like(x);
    torch::Tensor gw = torch::empty_like(weight), gb = torch::empty_like(weight);
    const BatchNormShape shape{x.size(0), 1, x.size(1), x.size(1)};
    BatchNormTrainBackward(shape, g.data_ptr<float>(), x.data_ptr<float>(),
                           weight.data_ptr<float>(), saved[2].data_ptr<double>(),
                           saved[3].data_ptr<double>(), gx.data_ptr<float>(), gw.data_ptr<float>(),
                           gb.data_ptr<float>());
    return {gx, gw, gb, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// True when a BatchNorm1d module's training forward can run as
// BatchNormTrainFunction: float on the host, [rows >= 2, C], affine, tracking
// running statistics with a momentum (LibTorch's kernel handles the rest).
bool HostBatchNorm(const torch::nn::BatchNorm1dImpl& bn, const torch::Tensor& x) {
  const auto& o = bn.options;
  return x.is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 2 && x.size(0) >= 2 &&
         o.affine() && o.track_running_stats() && o.momentum().has_value() && bn.weight.is_cpu() &&
         bn.weight.scalar_type() == torch::kFloat && bn.weight.is_contiguous() &&
         bn.bias.is_contiguous() && bn.running_mean.is_contiguous() &&
         bn.running_var.is_contiguous();
}

// "torch::nn::LinearImpl" -> "Linear"; custom names are kept.
std::string ClassName(const torch::nn::Module& m) {
  std::string n = m.name();
  const std::string prefix = "torch::nn::";
  if (n.rfind(prefix, 0) == 0) n = n.substr(prefix.size());
  if (n.size() > 4 && n.compare(n.size() - 4, 4, "Impl") == 0) n.resize(n.size() - 4);
  return n;
}

// PyTorch's dtype spelling: "torch.float32".
std::string DtypeName(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat:
      return "torch.float32";
    case torch::kDouble:
      return "torch.float64";
    case torch::kHalf:
      return "torch.float16";
    case torch::kBFloat16:
      return "torch.bfloat16";
    case torch::kLong:
      return "torch.int64";
    default:
      return std::string("torch.") + c10::toString(t.scalar_type());
  }
}

std::vector<int64_t> Shape(const torch::Tensor& t) {
  return std::vector<int64_t>(t.sizes().begin(), t.sizes().end());
}

}  // namespace

Network::Network(ModelSpec spec) : torch::nn::Module("Network"), spec_(std::move(spec)) {}

absl::StatusOr<std::shared_ptr<Network>> Network::Create(const ModelSpec& spec,
                                                         std::optional<uint64_t> seed) {
  QSWEEP_RETURN_IF_ERROR(ValidateModel(spec));
  if (spec.container != "seq_blocks" && spec.container != "module_list") {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", spec.name, "': container '", spec.container,
                     "' is not supported (allowed: seq_blocks, module_list)"));
  }
  std::shared_ptr<Network> net(new Network(spec));
  net->holder_ = net->register_module(spec.container, MakeHolder(spec.container));
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    auto [any, module] = MakeLayer(spec.layers[i]);
    net->holder_->register_module(std::to_string(i), module);
    net->layers_.push_back(std::move(any));
  }
  if (seed) {
    net->generator_ = at::detail::createCPUGenerator(*seed);
    InitLinearLayers(*net, net->generator_);
  }
  return net;
}

torch::Tensor Network::ForwardLayer(size_t i, const torch::Tensor& x) {
  return layers_.at(i).forward(x);
}

torch::Tensor Network::Forward(const torch::Tensor& x) {
  torch::Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& l = spec_.layers[i];
    if (l.kind == LayerKind::kDropout && l.p > 0 && is_training() && generator_.defined()) {
      h = DropoutWith(h, l.p, generator_);
    } else if (auto* bn =
                   is_training() && layers_[i].type_info() == typeid(torch::nn::BatchNorm1dImpl)
                       ? dynamic_cast<torch::nn::BatchNorm1dImpl*>(layers_[i].ptr().get())
                       : nullptr;
               bn != nullptr && HostBatchNorm(*bn, h)) {
      {
        torch::NoGradGuard no_grad;
        bn->num_batches_tracked.add_(1);  // as the module's forward
      }
      h = BatchNormTrainFunction::apply(h, bn->weight, bn->bias, bn->running_mean, bn->running_var,
                                        *bn->options.momentum(), bn->options.eps());
    } else {
      h = layers_[i].forward(h);
    }
  }
  return h;
}

absl::Status Network::ReplaceLayer(size_t i, torch::nn::AnyModule layer,
                                   std::shared_ptr<torch::nn::Module> holder_child) {
  if (i >= layers_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ReplaceLayer: layer index ", i, " out of range (model has ", layers_.size(), " layers)"));
  }
  if (!holder_child || layer.is_empty()) {
    return absl::InvalidArgumentError("ReplaceLayer: the new module is null");
  }
  holder_->replace_module(std::to_string(i), holder_child);
  layers_[i] = std::move(layer);
  return absl::OkStatus();
}

std::shared_ptr<torch::nn::Module> Network::LayerModule(size_t i) const {
  if (i >= layers_.size()) return nullptr;
  return holder_->named_children()[std::to_string(i)];
}

void Network::ToDevice(const torch::Device& device) { this->to(device); }

std::vector<std::pair<std::string, torch::Tensor>> Network::StateDict() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  // named_modules is a pre-order walk, as PyTorch's state_dict.
  for (const auto& item : named_modules("", /*include_self=*/true)) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      out.emplace_back(prefix + p.key(), p.value());
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false))
      out.emplace_back(prefix + b.key(), b.value());
  }
  return out;
}

absl::Status Network::LoadStateDict(const std::vector<std::pair<std::string, torch::Tensor>>& state,
                                    const std::string& source) {
  std::map<std::string, torch::Tensor> given(state.begin(), state.end());
  torch::NoGradGuard no_grad;
  for (auto& [key, target] : StateDict()) {
    auto it = given.find(key);
    if (it == given.end()) {
      return absl::DataLossError(absl::StrCat(source, ": missing tensor '", key, "'"));
    }
    if (!it->second.defined() || it->second.sizes() != target.sizes()) {
      return absl::DataLossError(absl::StrCat(
          source, ": tensor '", key, "' has shape ",
          it->second.defined() ? c10::str(it->second.sizes()) : std::string("(undefined)"),
          ", expected ", c10::str(target.sizes())));
    }
    target.copy_(it->second.to(target.device(), target.scalar_type()));
    given.erase(it);
  }
  if (!given.empty()) {
    return absl::DataLossError(absl::StrCat(source, ": unexpected tensor '", given.begin()->first,
                                            "' for model '", spec_.name, "'"));
  }
  return absl::OkStatus();
}

int64_t Network::NumTrainableParams() const {
  int64_t n = 0;
  for (const auto& p : parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

absl::Status FillGraphShapes(Graph& graph, Network& net, int64_t batch) {
  if (batch <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch must be > 0, got ", batch));
  }
  if (graph.nodes.size() != net.num_layers() + 2) {
    return absl::InvalidArgumentError(absl::StrCat("graph has ", graph.nodes.size(),
                                                   " nodes but the network has ", net.num_layers(),
                                                   " layers (+x, output)"));
  }
  const bool was_training = net.is_training();
  torch::NoGradGuard no_grad;
  net.eval();
  torch::Device device = torch::kCPU;
  for (const auto& p : net.parameters()) device = p.device();
  auto options = torch::TensorOptions().dtype(torch::kFloat).device(device);
  torch::Tensor h = torch::linspace(-1.0, 1.0, batch * net.spec().in_features, options)
                        .view({batch, net.spec().in_features});
  graph.nodes.front().results["data_out_0"].shape = Shape(h);
  for (size_t i = 0; i < net.num_layers(); ++i) {
    Node& node = graph.LayerNode(i);
    node.args["data_in_0"].shape = Shape(h);
    auto module = net.LayerModule(i);
    for (const auto& p : module->named_parameters(false))
      node.args[p.key()].shape = Shape(p.value());
    for (const auto& b : module->named_buffers(false)) {
      if (b.key() != "num_batches_tracked") node.args[b.key()].shape = Shape(b.value());
    }
    node.type_name = ClassName(*module);
    h = net.ForwardLayer(i, h);
    node.results["data_out_0"].shape = Shape(h);
    node.results["data_out_0"].torch_dtype = DtypeName(h);
  }
  graph.nodes.back().args["data_in_0"].shape = Shape(h);
  net.train(was_training);
  return absl::OkStatus();
}

absl::StatusOr<torch::Device> ResolveDevice(const std::string& device,
                                            const std::string& accelerator) {
  if (device.empty() || device == "auto") {
    const bool want_gpu = accelerator == "gpu" || accelerator == "cuda";
    if (want_gpu && torch::cuda::is_available()) return torch::Device(torch::kCUDA, 0);
    return torch::Device(torch::kCPU);
  }
  if (device == "cpu") return torch::Device(torch::kCPU);
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    std::optional<torch::Device> d;
    try {
      d.emplace(device);
    } catch (const std::exception&) {
      return absl::InvalidArgumentError(
          absl::StrCat("device '", device, "' is not valid (allowed: \"\", cpu, cuda, cuda:N)"));
    }
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device '", device,
          "' requested but CUDA is not available (LibTorch without CUDA or no GPU); use "
          "device 'cpu'"));
    }
    if (d->has_index() && d->index() >= static_cast<int>(torch::cuda::device_count())) {
      return absl::InvalidArgumentError(absl::StrCat("device '", device, "': only ",
                                                     torch::cuda::device_count(),
                                                     " CUDA device(s) available"));
    }
    return *d;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device '", device, "' is not valid (allowed: \"\", cpu, cuda, cuda:N)"));
}

}  // namespace qsweep
