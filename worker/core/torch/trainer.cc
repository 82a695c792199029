// The training loop (MASE semantics, see trainer.h) and FlatOptimizer.
#include "worker/core/torch/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/core/torch/adam.h"
#include "worker/core/torch/checkpoint_io.h"
#include "worker/core/torch/cross_entropy.h"
#include "worker/core/torch/network.h"
#include "worker/core/torch/optimizer.h"
#include "worker/core/torch/packed_trainer.h"
#include "worker/core/torch/quantized_modules.h"
#include "worker/core/torch/resume_state.h"
#include "worker/core/torch/trainer_internal.h"

namespace qsweep {

// ---------------------------------------------------------------- optimizer

absl::StatusOr<std::unique_ptr<FlatOptimizer>> FlatOptimizer::Create(
    const std::vector<torch::Tensor>& params, const FlatOptimizerOptions& options) {
  if (options.kind != "adam" && options.kind != "adamw" && options.kind != "sgd") {
    return absl::InvalidArgumentError(absl::StrCat(
        "training_optimizer '", options.kind, "' is not supported (allowed: adam, adamw, sgd)"));
  }
  if (!std::isfinite(options.lr) || options.lr < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("learning_rate must be a finite number >= 0, got ", options.lr));
  }
  if (!std::isfinite(options.weight_decay) || options.weight_decay < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight_decay must be a finite number >= 0, got ", options.weight_decay));
  }
  if (params.empty()) return absl::InvalidArgumentError("the model has no parameters");
  int64_t total = 0;
  for (const auto& p : params) {
    if (p.scalar_type() != params[0].scalar_type() || p.device() != params[0].device()) {
      return absl::InvalidArgumentError("parameters must share one dtype and device");
    }
    total += p.numel();
  }
  std::unique_ptr<FlatOptimizer> opt(new FlatOptimizer());
  opt->options_ = options;
  torch::NoGradGuard no_grad;
  auto flat_options =
      torch::TensorOptions().dtype(params[0].scalar_type()).device(params[0].device());
  opt->param_ = torch::empty({total}, flat_options);
  opt->grad_ = torch::zeros({total}, flat_options);
  int64_t offset = 0;
  for (const auto& p : params) {
    const int64_t n = p.numel();
    torch::Tensor view = opt->param_.narrow(0, offset, n).view(p.sizes());
    view.copy_(p.detach());
    p.set_data(view);  // p now lives inside param_
    p.mutable_grad() = opt->grad_.narrow(0, offset, n).view(p.sizes());
    offset += n;
  }
  if (options.kind == "sgd") {
    opt->momentum_ = torch::zeros({total}, flat_options);
  } else {
    opt->exp_avg_ = torch::zeros({total}, flat_options);
    opt->exp_avg_sq_ = torch::zeros({total}, flat_options);
    opt->denom_ = torch::empty({total}, flat_options);
  }
  return opt;
}

void FlatOptimizer::ZeroGrad() { grad_.zero_(); }

void FlatOptimizer::SetState(int64_t step, double lr, const torch::Tensor& first,
                             const torch::Tensor& second) {
  torch::NoGradGuard no_grad;
  step_ = step;
  options_.lr = lr;
  if (options_.kind == "sgd") {
    momentum_.copy_(first.view_as(momentum_));
  } else {
    exp_avg_.copy_(first.view_as(exp_avg_));
    exp_avg_sq_.copy_(second.view_as(exp_avg_sq_));
  }
}

void FlatOptimizer::Step() {
  torch::NoGradGuard no_grad;
  ++step_;
  if (options_.kind == "sgd") {
    SgdStep();
  } else {
    AdamStep();
  }
}

// torch.optim.Adam / AdamW, single-tensor algorithm, amsgrad off.
void FlatOptimizer::AdamStep() {
  if (param_.is_cpu() && param_.scalar_type() == torch::kFloat) {
    // The packed engine's loop (adam.h): each of its trial rows gets these bits.
    AdamStepOptions o;
    o.lr = options_.lr;
    o.weight_decay = options_.weight_decay;
    o.decoupled = options_.kind == "adamw";
    o.step = step_;
    o.beta1 = kBeta1;
    o.beta2 = kBeta2;
    o.eps = kEps;
    qsweep::AdamStep(param_.data_ptr<float>(), grad_.data_ptr<float>(), exp_avg_.data_ptr<float>(),
                     exp_avg_sq_.data_ptr<float>(), param_.numel(), o);
    return;
  }
  const double lr = options_.lr;
  const double wd = options_.weight_decay;
  torch::Tensor g = grad_;
  if (options_.kind == "adamw") {
    if (wd != 0) param_.mul_(1 - lr * wd);
  } else if (wd != 0) {
    g = grad_.add(param_, wd);
  }
  exp_avg_.mul_(kBeta1).add_(g, 1 - kBeta1);
  exp_avg_sq_.mul_(kBeta2).addcmul_(g, g, 1 - kBeta2);
  const double bias_correction1 = 1 - std::pow(kBeta1, static_cast<double>(step_));
  const double bias_correction2 = 1 - std::pow(kBeta2, static_cast<double>(step_));
  torch::sqrt_out(denom_, exp_avg_sq_);
  denom_.div_(std::sqrt(bias_correction2)).add_(kEps);
  param_.addcdiv_(exp_avg_, denom_, -lr / bias_correction1);
}

// torch.optim.SGD(momentum 0.9, dampening 0, nesterov, weight_decay 5e-4).
void FlatOptimizer::SgdStep() {
  torch::Tensor g = grad_.add(param_, kSgdWeightDecay);
  if (step_ == 1) {
    momentum_.copy_(g);
  } else {
    momentum_.mul_(kSgdMomentum).add_(g);
  }
  g.add_(momentum_, kSgdMomentum);
  param_.add_(g, -options_.lr);
}

nlohmann::json FlatOptimizer::Describe() const {
  nlohmann::json j = {{"kind", options_.kind}, {"lr", options_.lr}, {"step", step_}};
  if (options_.kind == "sgd") {
    j["momentum"] = kSgdMomentum;
    j["nesterov"] = true;
    j["weight_decay"] = kSgdWeightDecay;
  } else {
    j["betas"] = {kBeta1, kBeta2};
    j["eps"] = kEps;
    j["weight_decay"] = options_.weight_decay;
  }
  return j;
}

void FlatOptimizer::Save(torch::serialize::OutputArchive& archive) const {
  archive.write("kind", c10::IValue(options_.kind));
  archive.write("step", c10::IValue(step_));
  archive.write("lr", c10::IValue(options_.lr));
  if (options_.kind == "sgd") {
    archive.write("momentum_buffer", momentum_.cpu(), /*is_buffer=*/true);
  } else {
    archive.write("exp_avg", exp_avg_.cpu(), /*is_buffer=*/true);
    archive.write("exp_avg_sq", exp_avg_sq_.cpu(), /*is_buffer=*/true);
  }
}

absl::Status FlatOptimizer::Load(torch::serialize::InputArchive& archive) {
  c10::IValue kind, step, lr;
  archive.read("kind", kind);
  archive.read("step", step);
  archive.read("lr", lr);
  if (!kind.isString() || kind.toStringRef() != options_.kind || !step.isInt() || !lr.isDouble()) {
    return absl::DataLossError(
        absl::StrCat("optimizer state does not match a '", options_.kind, "' optimizer"));
  }
  auto load = [&](const char* key, torch::Tensor& into) -> absl::Status {
    torch::Tensor t;
    if (!archive.try_read(key, t, /*is_buffer=*/true) || t.numel() != into.numel()) {
      return absl::DataLossError(
          absl::StrCat("optimizer state '", key, "' is missing or has the wrong size"));
    }
    torch::NoGradGuard no_grad;
    into.copy_(t.view_as(into));
    return absl::OkStatus();
  };
  if (options_.kind == "sgd") {
    QSWEEP_RETURN_IF_ERROR(load("momentum_buffer", momentum_));
  } else {
    QSWEEP_RETURN_IF_ERROR(load("exp_avg", exp_avg_));
    QSWEEP_RETURN_IF_ERROR(load("exp_avg_sq", exp_avg_sq_));
  }
  step_ = step.toInt();
  options_.lr = lr.toDouble();
  return absl::OkStatus();
}

double CosineAnnealingLr(double lr0, int64_t epoch, int64_t max_epochs, double eta_min) {
  if (max_epochs <= 0) return lr0;
  const double pi = 3.14159265358979323846;
  return eta_min +
         (lr0 - eta_min) *
             (1 + std::cos(pi * static_cast<double>(epoch) / static_cast<double>(max_epochs))) / 2;
}

// ------------------------------------------------------------------ trainer

// Shared with the packed engine (trainer_internal.h).
std::string TorchMessage(const std::exception& e) {
  if (const auto* c10e = dynamic_cast<const c10::Error*>(&e)) return c10e->what_without_backtrace();
  return e.what();
}

static absl::Status CheckSplit(const DataSplit& s, const char* name, int64_t n_features,
                               int64_t n_classes) {
  if (s.rows < 0 || static_cast<int64_t>(s.x.size()) != s.rows * n_features ||
      static_cast<int64_t>(s.y.size()) != s.rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset split '", name, "' is inconsistent: ", s.rows, " rows, ", s.x.size(),
        " feature values (expected rows x ", n_features, "), ", s.y.size(), " labels"));
  }
  for (int64_t i = 0; i < s.rows; ++i) {
    if (s.y[i] < 0 || s.y[i] >= n_classes) {
      return absl::InvalidArgumentError(absl::StrCat("dataset split '", name, "' row ", i,
                                                     ": label ", s.y[i], " is outside [0, ",
                                                     n_classes, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDataFitsModel(const Dataset& data, const ModelSpec& spec) {
  if (data.n_features != spec.in_features || data.n_classes != spec.num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset '", data.name, "' has ", data.n_features, " features and ",
                     data.n_classes, " classes but model '", spec.name, "' expects ",
                     spec.in_features, " and ", spec.num_classes));
  }
  QSWEEP_RETURN_IF_ERROR(CheckSplit(data.train_val, "train_val", data.n_features, data.n_classes));
  return CheckSplit(data.test, "test", data.n_features, data.n_classes);
}

absl::Status CheckConfig(const TrainConfig& c) {
  auto positive = [](int64_t v, const char* key) -> absl::Status {
    if (v >= 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(key, " must be >= 1, got ", v));
  };
  QSWEEP_RETURN_IF_ERROR(positive(c.batch_size, "batch_size"));
  QSWEEP_RETURN_IF_ERROR(positive(c.max_epochs, "max_epochs"));
  QSWEEP_RETURN_IF_ERROR(positive(c.accumulate_grad_batches, "accumulate_grad_batches"));
  QSWEEP_RETURN_IF_ERROR(positive(c.threads, "threads"));
  if (c.trainer_precision != "32") {
    return absl::UnimplementedError(
        absl::StrCat("trainer_precision '", c.trainer_precision,
                     "' is not supported by this trainer (allowed: 32)"));
  }
  return absl::OkStatus();
}

// Tensors viewing a split's rows (no copy on CPU; the Dataset outlives them).
std::pair<torch::Tensor, torch::Tensor> SplitTensors(const DataSplit& s, int64_t n_features,
                                                     const torch::Device& device) {
  auto x = torch::from_blob(const_cast<float*>(s.x.data()), {s.rows, n_features}, torch::kFloat);
  auto y = torch::from_blob(const_cast<int64_t*>(s.y.data()), {s.rows}, torch::kLong);
  if (!device.is_cpu()) return {x.to(device), y.to(device)};
  return {x, y};
}

namespace {

using Clock = std::chrono::steady_clock;
namespace F = torch::nn::functional;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Softmax cross-entropy, the mean over rows, for TrainModel's autograd loop.
// On the host its forward and backward are CrossEntropyStep's arithmetic, the
// packed engine's, so the two engines differ only in how they run the layers
// (what PackedTrainerTest.SingleTrialMatchesAutograd checks: with a bias
// before a BatchNorm, Adam turns any rounding difference into a different
// path). On a device: torch's cross_entropy.
class CrossEntropyFunction : public torch::autograd::Function<CrossEntropyFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& labels) {
    const torch::Tensor x = logits.contiguous();
    const torch::Tensor y = labels.contiguous();
    float picked = 0;
    TORCH_CHECK(CrossEntropyStep(x.data_ptr<float>(), y.data_ptr<int64_t>(), x.size(0), 1,
                                 x.size(1), 0.0f, nullptr, &picked),
                "a training label is outside [0, ", x.size(1), ")");
    ctx->save_for_backward({x, y});
    return torch::full({}, -picked / static_cast<float>(x.size(0)), x.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& y = saved[1];
    const float scale = grads[0].item<float>() / static_cast<float>(x.size(0));
    torch::Tensor g = torch::empty_like(x);
    CrossEntropyStep(x.data_ptr<float>(), y.data_ptr<int64_t>(), x.size(0), 1, x.size(1), scale,
                     g.data_ptr<float>(), nullptr);
    return {g, torch::Tensor()};
  }
};

torch::Tensor CrossEntropyLoss(const torch::Tensor& logits, const torch::Tensor& labels) {
  if (logits.is_cpu() && logits.scalar_type() == torch::kFloat && logits.dim() == 2 &&
      labels.scalar_type() == torch::kLong) {
    return CrossEntropyFunction::apply(logits, labels);
  }
  return F::cross_entropy(logits, labels);
}

// Rows per forward pass in Evaluate (rounded to whole batches).
constexpr int64_t kEvalChunkRows = 16384;

// MASE's evaluation: loss = mean of batch-mean losses over consecutive
// batches of `batch_size` rows, accuracy = micro. In eval mode every module
// maps rows independently (BatchNorm uses its running statistics, Dropout is
// the identity), so rows go through in chunks of whole batches (a few large
// ops instead of many tiny ones); CrossEntropyMetrics turns each chunk's
// logits into the metrics, as the packed engine's evaluation does.
// `max_batches` < 0: all batches.
EvalResult Evaluate(Network& net, const torch::Tensor& x, const torch::Tensor& y,
                    int64_t batch_size, int64_t max_batches) {
  torch::NoGradGuard no_grad;
  int64_t n = x.size(0);
  if (max_batches >= 0) n = std::min(n, max_batches * batch_size);
  const int64_t chunk = std::max<int64_t>(1, kEvalChunkRows / batch_size) * batch_size;
  const torch::Tensor labels = y.to(torch::kCPU).contiguous();
  const int64_t classes = net.spec().num_classes;
  CrossEntropyMetrics metrics(1, classes, batch_size);
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t len = std::min(chunk, n - start);
    const torch::Tensor out =
        net.Forward(x.narrow(0, start, len)).to(torch::kCPU, torch::kFloat).contiguous();
    TORCH_CHECK(out.dim() == 2 && out.size(1) == classes, "the model's output is ", out.sizes(),
                ", not [rows, ", classes, "]");
    TORCH_CHECK(metrics.Add(out.data_ptr<float>(), labels.data_ptr<int64_t>() + start, len),
                "an evaluation label is outside [0, ", classes, ")");
  }
  return metrics.Result(0);
}

class Trainer {
 public:
  Trainer(const TrainConfig& config, const ModelSpec& spec, const Dataset& data,
          const TrainOptions& options)
      : config_(config), spec_(spec), data_(data), options_(options) {}
  // Trains `given` (TrainNetwork) instead of a freshly initialised network.
  Trainer(std::shared_ptr<Network> given, const TrainConfig& config, const Dataset& data,
          const TrainOptions& options, const NetworkTraining& how)
      : config_(config),
        spec_(given->spec()),
        data_(data),
        options_(options),
        how_(how),
        net_(std::move(given)),
        given_net_(true) {}

  // Errors are Statuses; torch failures throw (caught by TrainModel).
  absl::StatusOr<TrainResult> Run();
  int64_t epoch() const { return epoch_; }

 private:
  absl::Status Setup();
  // Trains one epoch; false when training must end (diverged, cancelled,
  // max_steps reached).
  bool TrainEpoch();
  // Per-step bookkeeping after an optimizer step: metrics every
  // log_every_n_steps steps.
  void LogStep(const torch::Tensor& out, const torch::Tensor& yb, double loss);
  // Val/test evaluation, epoch metrics, best/last checkpoints, and the resume
  // state unless this is the trial's `last` epoch.
  absl::Status EndEpoch(Clock::time_point epoch_start, double train_seconds, bool last);
  // Continues from options_.resume_from.
  absl::Status Restore();
  absl::Status SaveCheckpoint(const std::string& file, const std::string& kind);
  void Emit(const std::string& name, double value);
  void Diverged(double loss);

  const TrainConfig& config_;
  const ModelSpec& spec_;
  const Dataset& data_;
  const TrainOptions& options_;
  const NetworkTraining how_;
  TrainCallback* cb_ = nullptr;

  torch::Device device_ = torch::kCPU;
  std::shared_ptr<Network> net_;
  const bool given_net_ = false;
  std::unique_ptr<FlatOptimizer> opt_;
  torch::Tensor train_x_, train_y_, test_x_, test_y_;
  bool has_batch_norm_ = false;
  nlohmann::json base_meta_;

  int64_t epoch_ = 0;
  int64_t global_step_ = 0;
  bool max_steps_reached_ = false;
  int64_t epoch_samples_ = 0;  // training rows seen in the current epoch
  TrainResult result_;
  TrainProgress progress_;
  std::map<std::string, double> epoch_metrics_;
  double best_val_loss_ = std::numeric_limits<double>::infinity();
  double train_seconds_total_ = 0;
  int64_t samples_total_ = 0;
  int64_t start_epoch_ = 0;
  at::Generator gen_;        // shuffles (and, for networks built here, init and dropout)
  nlohmann::json identity_;  // ResumeIdentity, when resuming or writing resume states
  Clock::time_point start_;
};

absl::Status Trainer::Setup() {
  cb_ = options_.callback;
  QSWEEP_RETURN_IF_ERROR(CheckConfig(config_));
  QSWEEP_RETURN_IF_ERROR(CheckDataFitsModel(data_, spec_));
  if (data_.train_val.rows < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset '", data_.name, "' has fewer than 2 training rows"));
  }
  QSWEEP_ASSIGN_OR_RETURN(device_, ResolveDevice(config_.device, config_.accelerator));
  SetThreadIntraOpThreads(static_cast<int>(config_.threads));
  // MASE: seed_everything(seed), then the model is built; the same generator
  // later draws the shuffles (and dropout masks). Here it is the job's own
  // (Network::generator()), never the process-wide one. A network built by
  // the caller (a transform's fine-tuning) shuffles from a generator seeded
  // here, as a freshly seeded default generator would.
  if (given_net_) {
    gen_ = at::detail::createCPUGenerator(static_cast<uint64_t>(config_.seed));
  } else {
    QSWEEP_ASSIGN_OR_RETURN(net_, Network::Create(spec_, static_cast<uint64_t>(config_.seed)));
    gen_ = net_->generator();
  }
  if (!given_net_ && !config_.load_name.empty() && options_.resume_from.empty()) {
    // MASE's `train --load`: start from saved weights instead of the seeded init.
    QSWEEP_ASSIGN_OR_RETURN(auto weights, ReadWeights(config_.load_name));
    QSWEEP_RETURN_IF_ERROR(
        net_->LoadStateDict(weights, absl::StrCat("load_name '", config_.load_name, "'")));
  }
  net_->ToDevice(device_);
  QSWEEP_ASSIGN_OR_RETURN(
      opt_,
      FlatOptimizer::Create(net_->parameters(), {config_.training_optimizer, config_.learning_rate,
                                                 config_.weight_decay}));
  for (const auto& l : spec_.layers) has_batch_norm_ |= l.kind == LayerKind::kBatchNorm1d;
  std::tie(train_x_, train_y_) = SplitTensors(data_.train_val, data_.n_features, device_);
  std::tie(test_x_, test_y_) = SplitTensors(data_.test, data_.n_features, device_);
  if (!options_.checkpoint_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.checkpoint_dir, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot create checkpoint folder '",
                                              options_.checkpoint_dir, "': ", ec.message()));
    }
  }
  base_meta_ = {{"dataset", data_.name},
                {"dataset_sha256", data_.sha256},
                {"synthetic", data_.synthetic},
                {"dataset_description", data_.description},
                {"seed", config_.seed},
                {"config", TrainConfigToJson(config_)},
                {"device", device_.str()},
                {"precision", config_.trainer_precision},
                {"provenance", options_.provenance},
                {"loaded_from", config_.load_name}};
  if (!options_.resume_from.empty() || !options_.resume_state_out.empty())
    identity_ = ResumeIdentity(config_, spec_, data_);
  if (!options_.resume_from.empty()) QSWEEP_RETURN_IF_ERROR(Restore());
  return absl::OkStatus();
}

absl::Status Trainer::Restore() {
  const std::string best_out =
      options_.checkpoint_dir.empty()
          ? ""
          : (std::filesystem::path(options_.checkpoint_dir) / "best.ckpt").string();
  bool has_best = false;
  at::Generator gen = gen_;
  QSWEEP_ASSIGN_OR_RETURN(
      ResumeCounters c, ReadResumeState(options_.resume_from, identity_, config_.max_epochs, *net_,
                                        *opt_, gen, best_out, &has_best));
  start_epoch_ = c.epochs_done;
  global_step_ = c.global_step;
  best_val_loss_ = c.best_val_loss;
  result_.epochs_completed = c.epochs_completed;
  result_.final_metrics = c.final_metrics;
  result_.resumed_from_epoch = start_epoch_;
  if (has_best) result_.best_checkpoint = best_out;
  epoch_metrics_ = c.epoch_metrics;
  train_seconds_total_ = c.train_seconds_total;
  samples_total_ = c.samples_total;
  progress_.val_loss =
      c.epoch_metrics.count("val_loss_epoch") ? c.epoch_metrics["val_loss_epoch"] : -1.0;
  progress_.val_acc =
      c.epoch_metrics.count("val_acc_epoch") ? c.epoch_metrics["val_acc_epoch"] : -1.0;
  return absl::OkStatus();
}

void Trainer::Emit(const std::string& name, double value) {
  if (cb_) cb_->OnMetric({name, global_step_, epoch_, value});
}

void Trainer::Diverged(double loss) {
  result_.status = "diverged";
  result_.message = absl::StrCat("diverged: loss is ", std::isnan(loss) ? "NaN" : "inf",
                                 " at step ", global_step_ + 1);
}

void Trainer::LogStep(const torch::Tensor& out, const torch::Tensor& yb, double loss) {
  progress_.train_loss = loss;
  if (config_.log_every_n_steps <= 0 || global_step_ % config_.log_every_n_steps != 0) return;
  {
    torch::NoGradGuard no_grad;
    progress_.train_acc = static_cast<double>(out.argmax(1).eq(yb).sum().item<int64_t>()) /
                          static_cast<double>(yb.size(0));
  }
  Emit("train_loss_step", loss);
  Emit("train_acc_step", progress_.train_acc);
}

bool Trainer::TrainEpoch() {
  const int64_t n = train_x_.size(0);
  const int64_t bs = config_.batch_size;
  const int64_t accumulate = config_.accumulate_grad_batches;
  int64_t num_batches = (n + bs - 1) / bs;
  // BatchNorm1d cannot normalise a single row in train mode (LibTorch throws,
  // as PyTorch does). MASE's loader has no drop_last, so a final batch of one
  // row would crash it; we skip that one row instead (n >= 2 is checked).
  if (has_batch_norm_ && n % bs == 1) --num_batches;
  if (config_.debug) num_batches = std::min<int64_t>(num_batches, 5);
  // One shuffle per epoch from the job's own generator (CPU, as MASE's loader;
  // it continues after the model's initialisation as the default generator
  // does after seed_everything), gathered once; batches are then cheap
  // narrow() views.
  torch::Tensor perm = torch::randperm(n, gen_, torch::TensorOptions().dtype(torch::kLong));
  if (!device_.is_cpu()) perm = perm.to(device_);
  const torch::Tensor xs = train_x_.index_select(0, perm);
  const torch::Tensor ys = train_y_.index_select(0, perm);
  net_->train();
  progress_.batches_per_epoch = num_batches;
  for (int64_t b = 0; b < num_batches; ++b) {
    if (cb_ && cb_->ShouldStop()) {
      result_.status = "cancelled";
      result_.message = absl::StrCat("cancelled at step ", global_step_, " (epoch ", epoch_, ")");
      return false;
    }
    const int64_t start = b * bs;
    const int64_t len = std::min(bs, n - start);
    const torch::Tensor yb = ys.narrow(0, start, len);
    const torch::Tensor out = net_->Forward(xs.narrow(0, start, len));
    torch::Tensor loss = CrossEntropyLoss(out, yb);
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value)) {
      Diverged(loss_value);
      return false;
    }
    if (accumulate > 1) loss = loss / static_cast<double>(accumulate);
    loss.backward();
    epoch_samples_ += len;
    // Lightning steps after `accumulate` batches and at the epoch's end.
    if ((b + 1) % accumulate == 0 || b + 1 == num_batches) {
      opt_->Step();
      opt_->ZeroGrad();
      ++global_step_;
      LogStep(out, yb, loss_value);
      if (config_.max_steps > 0 && global_step_ >= config_.max_steps) max_steps_reached_ = true;
    }
    if (cb_) {
      progress_.batch_in_epoch = b + 1;
      progress_.global_step = global_step_;
      progress_.elapsed_seconds = SecondsSince(start_);
      cb_->OnProgress(progress_);
    }
    if (max_steps_reached_) return false;
  }
  return true;
}

absl::Status Trainer::SaveCheckpoint(const std::string& file, const std::string& kind) {
  nlohmann::json meta = base_meta_;
  meta["kind"] = kind;
  meta["epoch"] = epoch_;
  meta["global_step"] = global_step_;
  meta["metrics"] = epoch_metrics_;
  const std::string path = (std::filesystem::path(options_.checkpoint_dir) / file).string();
  QSWEEP_RETURN_IF_ERROR(WriteCheckpoint(path, *net_, opt_.get(), std::move(meta)));
  (kind == "best" ? result_.best_checkpoint : result_.last_checkpoint) = path;
  return absl::OkStatus();
}

absl::Status Trainer::EndEpoch(Clock::time_point epoch_start, double train_seconds, bool last) {
  const int64_t limit = config_.debug ? 5 : -1;
  net_->eval();
  const EvalResult val = Evaluate(*net_, train_x_, train_y_, config_.batch_size, limit);
  const EvalResult test = Evaluate(*net_, test_x_, test_y_, config_.batch_size, limit);
  epoch_metrics_ = {
      {"val_loss_epoch", val.loss}, {"val_acc_epoch", val.accuracy}, {"lr", opt_->lr()}};
  if (test.rows > 0) {
    epoch_metrics_["test_loss_epoch"] = test.loss;
    epoch_metrics_["test_acc_epoch"] = test.accuracy;
  }
  epoch_metrics_["epoch_seconds"] = SecondsSince(epoch_start);  // training + evaluation
  epoch_metrics_["samples_per_second"] =                        // training only
      train_seconds > 0 ? static_cast<double>(epoch_samples_) / train_seconds : 0.0;
  for (const auto& [name, value] : epoch_metrics_) Emit(name, value);
  progress_.val_loss = val.loss;
  progress_.val_acc = val.accuracy;
  for (const auto& [name, value] : epoch_metrics_) result_.final_metrics[name] = value;
  if (!std::isfinite(val.loss)) {
    Diverged(val.loss);
    return absl::OkStatus();
  }
  ++result_.epochs_completed;
  const bool best = val.loss < best_val_loss_;
  if (best) {
    best_val_loss_ = val.loss;
    result_.final_metrics["best_epoch"] = static_cast<double>(epoch_);
  }
  if (!options_.checkpoint_dir.empty()) {
    if (best) QSWEEP_RETURN_IF_ERROR(SaveCheckpoint("best.ckpt", "best"));
    QSWEEP_RETURN_IF_ERROR(SaveCheckpoint("last.ckpt", "last"));
  }
  if (last || options_.resume_state_out.empty()) return absl::OkStatus();
  ResumeCounters c;
  c.epochs_done = epoch_ + 1;
  c.global_step = global_step_;
  c.best_val_loss = best_val_loss_;
  c.epochs_completed = result_.epochs_completed;
  c.final_metrics = result_.final_metrics;
  c.epoch_metrics = epoch_metrics_;
  c.train_seconds_total = train_seconds_total_;
  c.samples_total = samples_total_;
  QSWEEP_RETURN_IF_ERROR(WriteResumeState(options_.resume_state_out, identity_, *net_, *opt_, gen_,
                                          c, result_.best_checkpoint));
  if (cb_) cb_->OnResumeState(options_.resume_state_out, c.epochs_done);
  return absl::OkStatus();
}

absl::StatusOr<TrainResult> Trainer::Run() {
  start_ = Clock::now();
  QSWEEP_RETURN_IF_ERROR(Setup());
  result_.status = "succeeded";
  progress_.max_epochs = config_.max_epochs;
  for (epoch_ = start_epoch_; epoch_ < config_.max_epochs; ++epoch_) {
    opt_->set_lr(how_.constant_lr
                     ? config_.learning_rate
                     : CosineAnnealingLr(config_.learning_rate, epoch_, config_.max_epochs));
    progress_.epoch = epoch_;
    epoch_samples_ = 0;
    const auto t0 = Clock::now();
    const bool go_on = TrainEpoch();
    const double train_seconds = SecondsSince(t0);
    if (result_.status != "succeeded") break;  // diverged or cancelled: no eval
    train_seconds_total_ += train_seconds;
    samples_total_ += epoch_samples_;
    // Lightning validates at the end of each epoch (also a partial last one
    // cut by max_steps).
    if (how_.evaluate_epochs) {
      QSWEEP_RETURN_IF_ERROR(
          EndEpoch(t0, train_seconds, !go_on || epoch_ + 1 >= config_.max_epochs));
    } else {
      ++result_.epochs_completed;
    }
    if (!go_on || result_.status != "succeeded") break;
  }
  result_.global_steps = global_step_;
  if (std::isfinite(best_val_loss_)) result_.final_metrics["best_val_loss_epoch"] = best_val_loss_;
  result_.wall_seconds = SecondsSince(start_);
  result_.samples_per_second =
      train_seconds_total_ > 0 ? static_cast<double>(samples_total_) / train_seconds_total_ : 0.0;
  return result_;
}

}  // namespace

absl::StatusOr<TrainResult> TrainModel(const TrainConfig& config, const ModelSpec& spec,
                                       const Dataset& data, const TrainOptions& options) {
  if (!options.use_autograd && CheckPackableModel(spec).ok()) {
    // A single trial is a pack of one.
    QSWEEP_ASSIGN_OR_RETURN(std::vector<TrainResult> results,
                            TrainPacked({PackedTrial{config, options}}, spec, data));
    return std::move(results.front());
  }
  Trainer trainer(config, spec, data, options);
  absl::StatusOr<TrainResult> result;
  try {
    result = trainer.Run();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("training model '", spec.name, "' failed at epoch ",
                                            trainer.epoch(), ": ", TorchMessage(e)));
  }
  if (!result.ok()) {
    return absl::Status(result.status().code(), absl::StrCat("training model '", spec.name,
                                                             "': ", result.status().message()));
  }
  if (options.callback) options.callback->OnFinished(*result);
  return result;
}

absl::StatusOr<TrainResult> TrainNetwork(const std::shared_ptr<Network>& net,
                                         const TrainConfig& config, const Dataset& data,
                                         const TrainOptions& options, const NetworkTraining& how) {
  Trainer trainer(net, config, data, options, how);
  absl::StatusOr<TrainResult> result;
  try {
    result = trainer.Run();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("training model '", net->spec().name,
                                            "' failed at epoch ", trainer.epoch(), ": ",
                                            TorchMessage(e)));
  }
  if (!result.ok()) {
    return absl::Status(result.status().code(), absl::StrCat("training model '", net->spec().name,
                                                             "': ", result.status().message()));
  }
  if (options.callback) options.callback->OnFinished(*result);
  return result;
}

EvalResult EvaluateNetwork(Network& net, const torch::Tensor& x, const torch::Tensor& y,
                           int64_t batch_size, int64_t max_batches) {
  const bool was_training = net.is_training();
  net.eval();
  EvalResult r = Evaluate(net, x, y, batch_size, max_batches);
  net.train(was_training);
  return r;
}

absl::StatusOr<EvalResult> EvaluateCheckpoint(const std::string& checkpoint_path,
                                              const Dataset& data, const std::string& split,
                                              int64_t batch_size, const std::string& device) {
  const DataSplit* s = nullptr;
  if (split == "test") {
    s = &data.test;
  } else if (split == "train_val" || split == "train" || split == "val" || split == "validation") {
    s = &data.train_val;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("split '", split, "' is not valid (allowed: test, train_val)"));
  }
  if (batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size must be >= 1, got ", batch_size));
  }
  try {
    QSWEEP_ASSIGN_OR_RETURN(torch::Device dev, ResolveDevice(device, "auto"));
    CheckpointInfo info;
    QSWEEP_ASSIGN_OR_RETURN(std::shared_ptr<Network> net,
                            LoadCheckpointNetwork(checkpoint_path, dev, &info));
    // A transformed checkpoint is evaluated as it was transformed: its
    // stored quantization is re-applied (a no-op for a plain checkpoint).
    QSWEEP_RETURN_IF_ERROR(
        ApplyQuantizationMeta(*net, info.meta.value("quantization", nlohmann::json())));
    QSWEEP_RETURN_IF_ERROR(CheckDataFitsModel(data, info.spec));
    if (s->rows == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset '", data.name, "' split '", split, "' is empty"));
    }
    auto [x, y] = SplitTensors(*s, data.n_features, dev);
    return Evaluate(*net, x, y, batch_size, -1);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("evaluating checkpoint '", checkpoint_path, "' failed: ", TorchMessage(e)));
  }
}

absl::StatusOr<EvalResult> EvaluateStateDict(const ModelSpec& spec, const std::string& weights_path,
                                             const Dataset& data, int64_t batch_size,
                                             const std::string& device) {
  if (batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size must be >= 1, got ", batch_size));
  }
  if (data.test.rows == 0) {
    return absl::InvalidArgumentError(absl::StrCat("dataset '", data.name, "' has no test rows"));
  }
  try {
    QSWEEP_ASSIGN_OR_RETURN(torch::Device dev, ResolveDevice(device, "auto"));
    QSWEEP_ASSIGN_OR_RETURN(std::shared_ptr<Network> net, Network::Create(spec, 0));
    QSWEEP_ASSIGN_OR_RETURN(auto weights, ReadWeights(weights_path));
    QSWEEP_RETURN_IF_ERROR(
        net->LoadStateDict(weights, absl::StrCat("state dict '", weights_path, "'")));
    net->ToDevice(dev);
    net->eval();
    QSWEEP_RETURN_IF_ERROR(CheckDataFitsModel(data, spec));
    auto [x, y] = SplitTensors(data.test, data.n_features, dev);
    return Evaluate(*net, x, y, batch_size, -1);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("evaluating state dict '", weights_path, "' failed: ", TorchMessage(e)));
  }
}

bool CudaAvailable() { return torch::cuda::is_available(); }

}  // namespace qsweep
