#include "worker/core/torch/quantized_modules.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace qsweep {
namespace {

torch::Tensor QuantizeValues(const torch::Tensor& x, const OperandFormat& f, bool is_signed) {
  if (f.arithmetic == Arithmetic::kInteger) {
    const int frac = f.FracWidth();
    const double scale = std::ldexp(1.0, frac);
    const double qmin = is_signed ? -std::ldexp(1.0, f.width - 1) : 0.0;
    const double qmax =
        is_signed ? std::ldexp(1.0, f.width - 1) - 1.0 : std::ldexp(1.0, f.width) - 1.0;
    return torch::clamp(torch::round(x * scale), qmin, qmax) / scale;
  }
  torch::Tensor cpu = x.detach().to(torch::kCPU, torch::kFloat).contiguous();
  std::vector<float> values(cpu.data_ptr<float>(), cpu.data_ptr<float>() + cpu.numel());
  std::vector<int64_t> shape(cpu.sizes().begin(), cpu.sizes().end());
  auto q = QuantizeArray(values, shape, f, is_signed);
  if (!q.ok()) throw std::runtime_error(std::string(q.status().message()));
  return torch::from_blob(q->data(), cpu.sizes(), torch::kFloat).clone().to(x.device(), x.dtype());
}

const QuantOperand* OperandOrNull(const NodeQuantConfig& c, const char* name) {
  return c.bypass ? nullptr : c.Operand(name);
}

torch::Tensor MaybeQuantize(const torch::Tensor& x, const QuantOperand* op) {
  return op == nullptr ? x : FakeQuantize(x, op->format, op->is_signed);
}

}  // namespace

torch::Tensor FakeQuantize(const torch::Tensor& x, const OperandFormat& format, bool is_signed) {
  torch::Tensor q = QuantizeValues(x.detach(), format, is_signed);
  // Straight-through estimator. Written as q + (x - x.detach()) rather than
  // x + (q - x).detach(): the gradient is the same identity, but the value is
  // exactly q (x - x.detach() is exactly 0), whereas x + (q - x) can be off
  // by one ulp when q is not close to x.
  return q + (x - x.detach());
}

QuantLinearImpl::QuantLinearImpl(int64_t in, int64_t out, NodeQuantConfig config)
    : torch::nn::Module(QuantizedTypeName("linear", config.arithmetic)),
      config_(std::move(config)) {
  weight = register_parameter("weight", torch::empty({out, in}));
  bias = register_parameter("bias", torch::empty({out}));
}

torch::Tensor QuantLinearImpl::forward(const torch::Tensor& x) {
  return torch::nn::functional::linear(MaybeQuantize(x, OperandOrNull(config_, "data_in")),
                                       EffectiveParameter("weight"), EffectiveParameter("bias"));
}

torch::Tensor QuantLinearImpl::EffectiveParameter(const std::string& name) {
  return name == "weight" ? MaybeQuantize(weight, OperandOrNull(config_, "weight"))
                          : MaybeQuantize(bias, OperandOrNull(config_, "bias"));
}

QuantReLUImpl::QuantReLUImpl(NodeQuantConfig config)
    : torch::nn::Module(QuantizedTypeName("relu", config.arithmetic)), config_(std::move(config)) {}

torch::Tensor QuantReLUImpl::forward(const torch::Tensor& x) {
  return torch::relu(MaybeQuantize(x, OperandOrNull(config_, "data_in")));
}

absl::Status ApplyQuantizationToNetwork(Network& net, const QuantizePlan& plan) {
  const ModelSpec& spec = net.spec();
  for (const auto& q : plan.nodes) {
    size_t i = 0;
    while (i < spec.layers.size() && spec.NodeName(i) != q.node) ++i;
    if (i == spec.layers.size())
      return absl::InvalidArgumentError(
          absl::StrCat("quantize: node '", q.node, "' is not a layer of model '", spec.name, "'"));
    const LayerSpec& l = spec.layers[i];
    if (l.kind == LayerKind::kLinear && q.mase_op == "linear") {
      // The stored weights come from the float Linear, or from an earlier
      // quantized replacement when a checkpoint is transformed again.
      torch::Tensor w, b;
      if (auto old = std::dynamic_pointer_cast<torch::nn::LinearImpl>(net.LayerModule(i))) {
        w = old->weight;
        b = old->bias;
      } else if (auto prev = std::dynamic_pointer_cast<QuantLinearImpl>(net.LayerModule(i))) {
        w = prev->weight;
        b = prev->bias;
      } else {
        return absl::InternalError(absl::StrCat("quantize: layer ", q.node, " is not a Linear"));
      }
      auto m = std::make_shared<QuantLinearImpl>(l.in, l.out, q);
      m->to(w.device());  // before copying, so the new parameters live where the old ones did
      torch::NoGradGuard no_grad;
      m->weight.copy_(w);
      m->bias.copy_(b);
      QSWEEP_RETURN_IF_ERROR(net.ReplaceLayer(i, torch::nn::AnyModule(m), m));
    } else if (l.kind == LayerKind::kReLU && q.mase_op == "relu") {
      auto m = std::make_shared<QuantReLUImpl>(q);
      QSWEEP_RETURN_IF_ERROR(net.ReplaceLayer(i, torch::nn::AnyModule(m), m));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "quantize: node '", q.node, "' (", l.TypeName(), ") cannot be quantized as ", q.mase_op));
    }
  }
  return absl::OkStatus();
}

nlohmann::json QuantizationMeta(const QuantizePlan& plan, const nlohmann::ordered_json& args,
                                const ModelSpec& spec) {
  nlohmann::json j;
  j["format"] = "qsweep-quantization";
  j["version"] = 1;
  j["model"] = spec.name;
  j["pass_args"] = nlohmann::json::parse(args.dump());
  j["plan"] = nlohmann::json::parse(QuantizePlanToJson(plan).dump());
  return j;
}

absl::Status ApplyQuantizationMeta(Network& net, const nlohmann::json& meta) {
  if (meta.is_null()) return absl::OkStatus();
  if (!meta.is_object() || meta.value("format", "") != "qsweep-quantization" ||
      !meta.contains("pass_args"))
    return absl::DataLossError(
        "checkpoint metadata 'quantization' is not a qsweep quantization "
        "record (expected format \"qsweep-quantization\" with pass_args)");
  // Re-resolve the stored [passes.quantize] table against the model.
  nlohmann::ordered_json args = nlohmann::ordered_json::parse(meta["pass_args"].dump());
  Graph g = BuildGraph(net.spec(), 1);
  QSWEEP_ASSIGN_OR_RETURN(auto quantized, QuantizeGraph(g, args));
  QuantizePlan& plan = quantized.second;
  // Thresholds filled from statistics at transform time are restored from the
  // plan.
  if (meta.contains("plan") && meta["plan"].contains("nodes")) {
    for (auto& n : plan.nodes) {
      if (n.arithmetic != Arithmetic::kTernary || !meta["plan"]["nodes"].contains(n.node)) continue;
      const auto& ops = meta["plan"]["nodes"][n.node].value("thresholds", nlohmann::json::object());
      for (auto& o : n.operands) {
        if (!ops.contains(o.name)) continue;
        const auto& t = ops[o.name];
        if (t.contains("mean") && t["mean"].is_number()) o.format.mean = t["mean"].get<double>();
        if (t.contains("max") && t["max"].is_number()) o.format.max = t["max"].get<double>();
        if (t.contains("median") && t["median"].is_number())
          o.format.median = t["median"].get<double>();
      }
    }
  }
  return ApplyQuantizationToNetwork(net, plan);
}

}  // namespace qsweep
