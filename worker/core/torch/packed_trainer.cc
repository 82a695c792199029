// The packed engine (see packed_trainer.h): K trials of one
// Linear/BatchNorm1d/ReLU stack trained together with a hand-written forward
// and backward pass.
//
// Layout. Activations are [N, K, C] (row, trial, channel), so a BatchNorm over
// an [N, K·C] view keeps per-trial statistics and a Linear is a batched product
// over the [K, N, C] transpose. Parameters live in one [K, P] buffer: row k is
// trial k's parameters, flat, in Network::parameters() order (FlatOptimizer's
// layout), so a Linear weight is a [K, out, in] view. Gradients and optimizer
// state share the layout; an optimizer step is a handful of ops for the whole
// pack, with per-trial scalars as [K, 1] columns, and computes exactly what
// FlatOptimizer computes for each trial alone. A trial leaving the pack removes
// its row.
//
// Pack invariance. Every reduction runs per trial in the same order as for a
// trial alone (the batched products are one GEMM per trial, BatchNorm reduces
// per channel, bias gradients are summed per trial), so packing changes no bit
// of a trial's training: this matters because a bias followed by BatchNorm has
// a zero true gradient, and Adam turns its rounding noise into full-size steps,
// so any change in summation order would send it on another path.
#include "worker/core/torch/packed_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/core/torch/adam.h"
#include "worker/core/torch/batch_norm.h"
#include "worker/core/torch/checkpoint_io.h"
#include "worker/core/torch/cross_entropy.h"
#include "worker/core/torch/network.h"
#include "worker/core/torch/optimizer.h"
#include "worker/core/torch/resume_state.h"
#include "worker/core/torch/trainer_internal.h"

namespace qsweep {

int SetThreadIntraOpThreads(int threads) {
  // Run LibTorch's lazy per-thread initialisation first: it copies the
  // process-wide default into this thread and would otherwise overwrite our
  // setting at the first parallel op.
  at::internal::lazy_init_num_threads();
#ifdef _OPENMP
  omp_set_num_threads(threads);
#else
  at::set_num_threads(threads);
#endif
  return at::get_num_threads();
}

int ThreadIntraOpThreads() {
  at::internal::lazy_init_num_threads();
  return at::get_num_threads();
}

absl::Status CheckPackableModel(const ModelSpec& spec) {
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    if (l.kind == LayerKind::kDropout && l.p != 0.0) {
      return absl::UnimplementedError(
          absl::StrCat("model '", spec.name, "' layer ", i, " is Dropout(p=", l.p,
                       "): the packed engine supports Linear, BatchNorm1d, ReLU and "
                       "Dropout(p=0)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPackable(const TrainConfig& a, const TrainConfig& b) {
  auto differs = [](const char* key, const auto& x, const auto& y) -> absl::Status {
    if (x == y) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("trials differ in '", key, "', which must be equal within a pack"));
  };
  QSWEEP_RETURN_IF_ERROR(differs("batch_size", a.batch_size, b.batch_size));
  QSWEEP_RETURN_IF_ERROR(differs("training_optimizer", a.training_optimizer, b.training_optimizer));
  QSWEEP_RETURN_IF_ERROR(
      differs("accumulate_grad_batches", a.accumulate_grad_batches, b.accumulate_grad_batches));
  QSWEEP_RETURN_IF_ERROR(
      differs("max_steps", a.max_steps > 0 ? a.max_steps : -1, b.max_steps > 0 ? b.max_steps : -1));
  QSWEEP_RETURN_IF_ERROR(differs("debug", a.debug, b.debug));
  QSWEEP_RETURN_IF_ERROR(differs("log_every_n_steps",
                                 a.log_every_n_steps > 0 ? a.log_every_n_steps : 0,
                                 b.log_every_n_steps > 0 ? b.log_every_n_steps : 0));
  QSWEEP_RETURN_IF_ERROR(differs("trainer_precision", a.trainer_precision, b.trainer_precision));
  QSWEEP_RETURN_IF_ERROR(differs("device", a.device, b.device));
  QSWEEP_RETURN_IF_ERROR(differs("accelerator", a.accelerator, b.accelerator));
  QSWEEP_RETURN_IF_ERROR(differs("threads", a.threads, b.threads));
  QSWEEP_RETURN_IF_ERROR(differs("model", a.model, b.model));
  QSWEEP_RETURN_IF_ERROR(differs("dataset", a.dataset, b.dataset));
  return absl::OkStatus();
}

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

constexpr double kBnEps = 1e-5;
constexpr double kBnMomentum = 0.1;
constexpr int64_t kEvalBlockRows = 2048;   // rows per evaluation block on the host (cache-sized)
constexpr int64_t kEvalChunkRows = 16384;  // on a device (one copy of logits to the host each)
const int64_t kAxis0[1] = {0};

struct Layer {
  LayerKind kind = LayerKind::kReLU;
  int64_t in = 0, out = 0;
  int wblock = -1, bblock = -1;  // parameter blocks (Linear, BatchNorm1d)
  int bn = -1;                   // index among BatchNorm1d layers
  bool skip = false;             // Dropout(p=0)
  bool first = false;            // no computing layer before it: no input gradient
  bool in_place_relu = false;    // ReLU over a buffer of the previous layer
};

// One trial and its bookkeeping.
struct Trial {
  const PackedTrial* src = nullptr;
  TrainCallback* cb = nullptr;
  std::shared_ptr<Network> net;          // for checkpoints: the trial's state is copied here
  std::unique_ptr<FlatOptimizer> opt;    // ditto (optimizer state)
  at::Generator gen;                     // this trial's shuffles
  std::vector<int64_t> batches_tracked;  // per BatchNorm1d layer
  double lr = 0;
  TrainResult result;
  TrainProgress progress;
  std::map<std::string, double> epoch_metrics;
  double best_val_loss = std::numeric_limits<double>::infinity();
  double train_seconds_total = 0;
  int64_t samples_total = 0;
  nlohmann::json base_meta;
  bool leaving = false;
  nlohmann::json identity;  // ResumeIdentity, when resuming or writing resume states
  int64_t start_epoch = 0;  // > 0: resumed (TrainOptions::resume_from)
  int64_t start_step = 0;
};

// Host-side record of a training batch whose loss is still on the device.
struct PendingBatch {
  int64_t step_before = 0;  // global step before this batch's optimizer step
  int64_t rows = 0;
  bool log = false;  // a log step: emit train_loss_step / train_acc_step
};

class PackedEngine {
 public:
  PackedEngine(const std::vector<PackedTrial>& trials, const ModelSpec& spec, const Dataset& data)
      : src_(trials), spec_(spec), data_(data), cfg_(trials.front().config) {}

  absl::Status Run();
  std::vector<TrainResult> TakeResults() {
    std::vector<TrainResult> out;
    for (auto& t : trials_) out.push_back(std::move(t.result));
    return out;
  }
  int64_t epoch() const { return epoch_; }

 private:
  absl::Status Setup();
  absl::Status SetupTrial(Trial& t);
  void BuildPack();
  void BindViews();
  void AllocateWork();
  void SetLearningRates();
  void Shuffle();
  // Trains the epoch's batches; false when the pack must stop (max_steps).
  bool TrainEpoch();
  void Forward(int64_t n, const torch::Tensor& xb);
  // A BatchNorm's weight / bias as one [K·C] tensor: a view for one trial, a
  // copy otherwise.
  torch::Tensor BnWeight(size_t li) {
    const Layer& L = layers_[li];
    if (K == 1) return bn_weight_used_[L.bn] = W_[li].view({L.out});
    bn_w_[L.bn].view({K, L.out}).copy_(W_[li]);
    return bn_weight_used_[L.bn] = bn_w_[L.bn];
  }
  torch::Tensor BnBias(size_t li) {
    const Layer& L = layers_[li];
    if (K == 1) return B_[li].view({L.out});
    bn_b_[L.bn].view({K, L.out}).copy_(B_[li]);
    return bn_b_[L.bn];
  }
  // A BatchNorm layer's shape for the host kernels: K trials' channels side
  // by side, parameters (and their gradients) a row of the [K, P] buffers apart.
  BatchNormShape BnShape(size_t li, int64_t n) const {
    return {n, K, layers_[li].out, W_[li].stride(0)};
  }
  void LossAndGrad(int64_t n, const torch::Tensor& yb, int64_t row);
  void Backward(int64_t n);
  void OptimizerStep();
  // Reads the pending losses: divergence, progress, log-step metrics.
  void Flush(const torch::Tensor& log_correct);
  absl::Status EndEpoch(Clock::time_point epoch_start, double train_seconds, bool last_for_all);
  void EvaluatePacked(const torch::Tensor& x, const torch::Tensor& y, std::vector<EvalResult>& out);
  absl::Status SaveCheckpoint(Trial& t, const std::string& file, const std::string& kind);
  // Continues trial `t` from its options.resume_from.
  absl::Status RestoreTrial(Trial& t);
  // Writes the trial's resume state (its network and optimizer synced).
  absl::Status WriteTrialResume(Trial& t);
  void SyncTrialToNetwork(int col);
  // Ends the trials marked `leaving`, calls their OnFinished, and compacts the
  // pack.
  void Leave();
  void Finish(Trial& t);
  void Emit(Trial& t, const std::string& name, double value) {
    if (t.cb) t.cb->OnMetric({name, global_step_, epoch_, value});
  }

  const std::vector<PackedTrial>& src_;
  const ModelSpec& spec_;
  const Dataset& data_;
  const TrainConfig& cfg_;  // the pack-wide settings (trial 0's)

  torch::Device device_ = torch::kCPU;
  std::vector<Trial> trials_;
  std::vector<int> active_;  // indices into trials_, one per pack column
  int64_t K = 0;
  std::vector<Layer> layers_;
  std::vector<int64_t> block_sizes_;  // per-trial size of each parameter block
  std::vector<std::vector<int64_t>> block_shapes_;
  int64_t per_trial_ = 0;  // parameters per trial
  int n_bn_ = 0;
  bool has_batch_norm_ = false;
  bool sgd_ = false, adamw_ = false;

  // Pack state.
  torch::Tensor param_, grad_, step_grad_, exp_avg_, exp_avg_sq_, momentum_, denom_, upd_;
  // Per-trial columns [K, 1], defined only when the trials' values differ.
  torch::Tensor neg_lr_, wd_, decay_, step_scale_;
  torch::Tensor neg_lr_d_, step_scale_d_;  // not CPU: -lr_k in double, per-step scratch
  std::vector<double> lrs_, wds_;          // per pack column
  std::vector<torch::Tensor> bn_w_,
      bn_b_;                                   // K > 1: contiguous [K·C] copies per BatchNorm
  std::vector<torch::Tensor> bn_weight_used_;  // the weight of the latest forward, per BatchNorm
  bool uniform_lr_ = true, uniform_wd_ = true, any_wd_ = false;
  double lr_ = 0, wd_scalar_ = 0;
  std::vector<torch::Tensor> W_, B_, gW_,
      gB_;  // per layer views (undefined where unused)
  std::vector<torch::Tensor> run_mean_, run_var_, save_mean_,
      save_invstd_;  // per BatchNorm
  int64_t opt_step_ = 0;

  // Views made once per pack shape (the dispatcher cost of a view is not negligible at these
  // sizes): per Linear, the operands of its products; "full" ones assume n = batch_size.
  struct LinearViews {
    torch::Tensor w, wt, b, gw, gb;      // K = 1: 2-D / 1-D; K > 1: [K, ...]
    std::vector<torch::Tensor> gb_rows;  // K > 1: gB row k
    // K > 1: one sum over [n, K, out] gives each trial's bias gradient bit for
    // bit as a trial alone sums it (checked per pack shape: BatchedSumIsExact).
    bool batched_bias_sum = false;
    torch::Tensor out_full, gin_full;  // K = 1: [bs, C]; K > 1: [K, bs, C] transposes
  };
  std::vector<LinearViews> lv_;
  void CacheViews();
  // True when the column sums of a [n, K, out] tensor into an output strided
  // as `like` equal, bit for bit, each trial's sum of its own contiguous
  // [n, out] slice (the arithmetic of a trial alone), for every batch length
  // of an epoch. Checked on random values with a private generator.
  bool BatchedSumIsExact(int64_t out, const torch::Tensor& like) const;
  static torch::Tensor Rows(const torch::Tensor& t, int64_t n) {
    return n == t.size(0) ? t : t.narrow(0, 0, n);
  }

  // Work buffers for up to batch_size rows.
  std::vector<torch::Tensor> act_, gin_,
      in_;  // per layer: output, input gradient, input
  torch::Tensor logp_, picked_, neg_scale_, gout_, loss_buf_;
  float neg_scale_value_ = 0;
  torch::Tensor out_;  // logits of the latest training batch, [n, K, classes]
  std::vector<PendingBatch> pending_;
  int64_t loss_cap_ = 1;

  torch::Tensor train_x_, train_y_, test_x_, test_y_;
  // The epoch's order: row r of trial column k's shuffle is order_[r][k]
  // ([n, K], on the device); each batch is gathered into xb_ / yb_.
  torch::Tensor order_, xb_, yb_;
  void GatherBatch(int64_t start, int64_t len);
  int64_t epoch_ = 0, global_step_ = 0, epoch_samples_ = 0;
  Clock::time_point start_;
};

absl::Status PackedEngine::SetupTrial(Trial& t) {
  const TrainConfig& c = t.src->config;
  // The trial's own generator: seeded with its seed, the initialisation drawn
  // from it, then its shuffles (never the process-wide generator).
  QSWEEP_ASSIGN_OR_RETURN(t.net, Network::Create(spec_, static_cast<uint64_t>(c.seed)));
  t.gen = t.net->generator();
  if (!c.load_name.empty() && t.src->options.resume_from.empty()) {
    QSWEEP_ASSIGN_OR_RETURN(auto weights, ReadWeights(c.load_name));
    QSWEEP_RETURN_IF_ERROR(
        t.net->LoadStateDict(weights, absl::StrCat("load_name '", c.load_name, "'")));
  }
  t.net->ToDevice(device_);
  QSWEEP_ASSIGN_OR_RETURN(
      t.opt, FlatOptimizer::Create(t.net->parameters(),
                                   {c.training_optimizer, c.learning_rate, c.weight_decay}));
  if (!t.src->options.checkpoint_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(t.src->options.checkpoint_dir, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot create checkpoint folder '",
                                              t.src->options.checkpoint_dir, "': ", ec.message()));
    }
  }
  if (!t.src->options.resume_from.empty() || !t.src->options.resume_state_out.empty())
    t.identity = ResumeIdentity(c, spec_, data_);
  if (!t.src->options.resume_from.empty()) QSWEEP_RETURN_IF_ERROR(RestoreTrial(t));
  for (size_t i = 0; i < spec_.layers.size(); ++i) {
    if (spec_.layers[i].kind != LayerKind::kBatchNorm1d) continue;
    auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm1dImpl>(t.net->LayerModule(i));
    t.batches_tracked.push_back(bn->num_batches_tracked.item<int64_t>());
  }
  t.base_meta = {{"dataset", data_.name},
                 {"dataset_sha256", data_.sha256},
                 {"synthetic", data_.synthetic},
                 {"dataset_description", data_.description},
                 {"seed", c.seed},
                 {"config", TrainConfigToJson(c)},
                 {"device", device_.str()},
                 {"precision", c.trainer_precision},
                 {"provenance", t.src->options.provenance},
                 {"loaded_from", c.load_name}};
  t.result.status = "succeeded";
  t.progress.max_epochs = c.max_epochs;
  return absl::OkStatus();
}

absl::Status PackedEngine::RestoreTrial(Trial& t) {
  const std::string& dir = t.src->options.checkpoint_dir;
  const std::string best_out =
      dir.empty() ? "" : (std::filesystem::path(dir) / "best.ckpt").string();
  bool has_best = false;
  QSWEEP_ASSIGN_OR_RETURN(ResumeCounters rc, ReadResumeState(t.src->options.resume_from, t.identity,
                                                             t.src->config.max_epochs, *t.net,
                                                             *t.opt, t.gen, best_out, &has_best));
  t.start_epoch = rc.epochs_done;
  t.start_step = rc.global_step;
  t.best_val_loss = rc.best_val_loss;
  t.result.epochs_completed = rc.epochs_completed;
  t.result.final_metrics = rc.final_metrics;
  t.result.resumed_from_epoch = rc.epochs_done;
  if (has_best) t.result.best_checkpoint = best_out;
  t.epoch_metrics = rc.epoch_metrics;
  t.train_seconds_total = rc.train_seconds_total;
  t.samples_total = rc.samples_total;
  t.progress.val_loss =
      rc.epoch_metrics.count("val_loss_epoch") ? rc.epoch_metrics["val_loss_epoch"] : -1.0;
  t.progress.val_acc =
      rc.epoch_metrics.count("val_acc_epoch") ? rc.epoch_metrics["val_acc_epoch"] : -1.0;
  return absl::OkStatus();
}

absl::Status PackedEngine::WriteTrialResume(Trial& t) {
  ResumeCounters c;
  c.epochs_done = epoch_ + 1;
  c.global_step = global_step_;
  c.best_val_loss = t.best_val_loss;
  c.epochs_completed = t.result.epochs_completed;
  c.final_metrics = t.result.final_metrics;
  c.epoch_metrics = t.epoch_metrics;
  c.train_seconds_total = t.train_seconds_total;
  c.samples_total = t.samples_total;
  const std::string& out = t.src->options.resume_state_out;
  QSWEEP_RETURN_IF_ERROR(
      WriteResumeState(out, t.identity, *t.net, *t.opt, t.gen, c, t.result.best_checkpoint));
  if (t.cb) t.cb->OnResumeState(out, c.epochs_done);
  return absl::OkStatus();
}

absl::Status PackedEngine::Setup() {
  start_ = Clock::now();
  if (src_.empty()) return absl::InvalidArgumentError("a pack needs at least one trial");
  QSWEEP_RETURN_IF_ERROR(CheckPackableModel(spec_));
  for (size_t i = 0; i < src_.size(); ++i) {
    QSWEEP_RETURN_IF_ERROR(CheckConfig(src_[i].config));
    absl::Status s = CheckPackable(cfg_, src_[i].config);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("trial ", i, ": ", s.message()));
    }
  }
  QSWEEP_RETURN_IF_ERROR(CheckDataFitsModel(data_, spec_));
  if (data_.train_val.rows < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset '", data_.name, "' has fewer than 2 training rows"));
  }
  QSWEEP_ASSIGN_OR_RETURN(device_, ResolveDevice(cfg_.device, cfg_.accelerator));
  SetThreadIntraOpThreads(static_cast<int>(cfg_.threads));
  sgd_ = cfg_.training_optimizer == "sgd";
  adamw_ = cfg_.training_optimizer == "adamw";

  // Layers and parameter blocks, in Network::parameters() order.
  bool seen_compute = false;
  for (const LayerSpec& l : spec_.layers) {
    Layer L;
    L.kind = l.kind;
    L.in = l.in;
    L.out = l.out;
    if (l.kind == LayerKind::kDropout) {
      L.skip = true;
      layers_.push_back(L);
      continue;
    }
    L.first = !seen_compute;
    if (l.kind == LayerKind::kLinear) {
      L.wblock = static_cast<int>(block_sizes_.size());
      block_sizes_.push_back(l.out * l.in);
      block_shapes_.push_back({l.out, l.in});
      L.bblock = static_cast<int>(block_sizes_.size());
      block_sizes_.push_back(l.out);
      block_shapes_.push_back({l.out});
    } else if (l.kind == LayerKind::kBatchNorm1d) {
      L.in = L.out = l.out;
      L.wblock = static_cast<int>(block_sizes_.size());
      block_sizes_.push_back(l.out);
      block_shapes_.push_back({l.out});
      L.bblock = static_cast<int>(block_sizes_.size());
      block_sizes_.push_back(l.out);
      block_shapes_.push_back({l.out});
      L.bn = n_bn_++;
      has_batch_norm_ = true;
    } else {                           // ReLU
      L.in_place_relu = seen_compute;  // the previous computing layer's buffer is ours
    }
    seen_compute = true;
    layers_.push_back(L);
  }
  // Widths of layers whose in/out the spec leaves implicit (ReLU, Dropout).
  int64_t width = spec_.in_features;
  for (Layer& L : layers_) {
    if (L.kind == LayerKind::kLinear) {
      L.in = width;
      width = L.out;
    } else {
      L.in = L.out = width;
    }
  }
  for (int64_t s : block_sizes_) per_trial_ += s;

  trials_.resize(src_.size());
  for (size_t i = 0; i < src_.size(); ++i) {
    trials_[i].src = &src_[i];
    trials_[i].cb = src_[i].options.callback;
    QSWEEP_RETURN_IF_ERROR(SetupTrial(trials_[i]));
    active_.push_back(static_cast<int>(i));
  }
  // A pack trains in step: its trials start at the same epoch and step (all
  // fresh, or all resumed from states of the same epoch).
  for (size_t i = 1; i < trials_.size(); ++i) {
    const Trial& t = trials_[i];
    if (t.start_epoch != trials_[0].start_epoch || t.start_step != trials_[0].start_step ||
        t.opt->step_count() != trials_[0].opt->step_count()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "trial ", i, " starts at epoch ", t.start_epoch, " (step ", t.start_step,
          ") but trial 0 at epoch ", trials_[0].start_epoch, " (step ", trials_[0].start_step,
          "): the trials of a pack start at the same epoch (resumed trials train alone or with "
          "trials resumed at the same epoch)"));
    }
  }
  epoch_ = trials_[0].start_epoch;
  global_step_ = trials_[0].start_step;
  opt_step_ = trials_[0].opt->step_count();
  std::tie(train_x_, train_y_) = SplitTensors(data_.train_val, data_.n_features, device_);
  std::tie(test_x_, test_y_) = SplitTensors(data_.test, data_.n_features, device_);
  const int64_t log_every = cfg_.log_every_n_steps > 0 ? cfg_.log_every_n_steps : 0;
  loss_cap_ = std::max<int64_t>(64, log_every * cfg_.accumulate_grad_batches);
  BuildPack();
  return absl::OkStatus();
}

// Stacks the trials' parameters and BatchNorm statistics into the pack buffers.
void PackedEngine::BuildPack() {
  torch::NoGradGuard no_grad;
  K = static_cast<int64_t>(active_.size());
  std::vector<torch::Tensor> rows;
  for (int i : active_) {
    std::vector<torch::Tensor> flat;
    for (const auto& p : trials_[i].net->parameters()) flat.push_back(p.detach().reshape({-1}));
    rows.push_back(torch::cat(flat));
  }
  param_ = torch::stack(rows).contiguous();  // [K, P]
  const auto opts = param_.options();
  grad_ = torch::zeros_like(param_);
  if (cfg_.accumulate_grad_batches > 1) step_grad_ = torch::zeros_like(param_);
  if (sgd_) {
    momentum_ = torch::zeros_like(param_);
  } else {
    exp_avg_ = torch::zeros_like(param_);
    exp_avg_sq_ = torch::zeros_like(param_);
    denom_ = torch::empty_like(param_);
  }
  if (opt_step_ > 0) {  // resumed: the trials' restored optimizer state
    std::vector<torch::Tensor> first, second;
    for (int i : active_) {
      first.push_back(trials_[i].opt->first_state().reshape({-1}));
      if (!sgd_) second.push_back(trials_[i].opt->second_state().reshape({-1}));
    }
    (sgd_ ? momentum_ : exp_avg_).copy_(torch::stack(first));
    if (!sgd_) exp_avg_sq_.copy_(torch::stack(second));
  }
  upd_ = torch::empty_like(param_);
  run_mean_.assign(n_bn_, {});
  run_var_.assign(n_bn_, {});
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    if (L.bn < 0) continue;
    std::vector<torch::Tensor> means, vars;
    for (int i : active_) {
      auto bn =
          std::dynamic_pointer_cast<torch::nn::BatchNorm1dImpl>(trials_[i].net->LayerModule(li));
      means.push_back(bn->running_mean.detach());
      vars.push_back(bn->running_var.detach());
    }
    run_mean_[L.bn] = torch::stack(means).reshape({-1}).to(opts);
    run_var_[L.bn] = torch::stack(vars).reshape({-1}).to(opts);
  }
  (void)opts;
  BindViews();
  AllocateWork();
}

void PackedEngine::BindViews() {
  const size_t n = layers_.size();
  W_.assign(n, {});
  B_.assign(n, {});
  gW_.assign(n, {});
  gB_.assign(n, {});
  std::vector<int64_t> offsets(block_sizes_.size());
  int64_t off = 0;
  for (size_t j = 0; j < block_sizes_.size(); ++j) {
    offsets[j] = off;
    off += block_sizes_[j];
  }
  bn_w_.assign(n_bn_, {});
  bn_b_.assign(n_bn_, {});
  const torch::Tensor& g = cfg_.accumulate_grad_batches > 1 ? step_grad_ : grad_;
  for (size_t li = 0; li < n; ++li) {
    const Layer& L = layers_[li];
    if (L.wblock < 0) continue;
    auto block = [&](const torch::Tensor& flat, int j) {
      return flat.narrow(1, offsets[j],
                         block_sizes_[j]);  // [K, size], row stride P
    };
    if (L.kind == LayerKind::kLinear) {
      W_[li] = block(param_, L.wblock).view({K, L.out, L.in});
      B_[li] = block(param_, L.bblock).view({K, L.out});
      gW_[li] = block(g, L.wblock).view({K, L.out, L.in});
      gB_[li] = block(g, L.bblock).view({K, L.out});
    } else {  // BatchNorm1d: [K, C] views
      W_[li] = block(param_, L.wblock);
      B_[li] = block(param_, L.bblock);
      gW_[li] = block(g, L.wblock);
      gB_[li] = block(g, L.bblock);
      if (K > 1 && !device_.is_cpu()) {  // for LibTorch's kernels
        bn_w_[L.bn] = torch::empty({K * L.out}, param_.options());
        bn_b_[L.bn] = torch::empty({K * L.out}, param_.options());
      }
    }
  }
}

void PackedEngine::AllocateWork() {
  const auto opts = param_.options();
  const int64_t bs = cfg_.batch_size;
  const size_t n = layers_.size();
  act_.assign(n, {});
  gin_.assign(n, {});
  in_.assign(n, {});
  save_mean_.assign(n_bn_, {});
  bn_weight_used_.assign(n_bn_, {});
  save_invstd_.assign(n_bn_, {});
  for (size_t li = 0; li < n; ++li) {
    const Layer& L = layers_[li];
    if (L.skip) continue;
    // On the host BatchNorm writes into its own buffer too (BatchNormTrainForward).
    const bool own_output = L.kind == LayerKind::kLinear ||
                            (L.kind == LayerKind::kReLU && !L.in_place_relu) ||
                            (L.kind == LayerKind::kBatchNorm1d && device_.is_cpu());
    if (own_output) act_[li] = torch::empty({bs, K, L.out}, opts);
    if (L.kind == LayerKind::kBatchNorm1d && device_.is_cpu()) {
      save_mean_[L.bn] = torch::empty({K * L.out}, opts.dtype(torch::kDouble));
      save_invstd_[L.bn] = torch::empty({K * L.out}, opts.dtype(torch::kDouble));
    }
    if (L.kind != LayerKind::kReLU && !L.first) gin_[li] = torch::empty({bs, K, L.in}, opts);
  }
  const int64_t c = spec_.num_classes;
  xb_ = torch::empty({bs, K, train_x_.size(1)}, opts);
  yb_ = torch::empty({bs, K}, opts.dtype(torch::kLong));
  gout_ = torch::empty({bs, K, c}, opts);
  if (!device_.is_cpu()) {  // LossAndGrad's tensor ops
    logp_ = torch::empty({bs, K, c}, opts);
    picked_ = torch::empty({bs, K, 1}, opts);
    neg_scale_ = torch::zeros({bs, K, 1}, opts);
    neg_scale_value_ = 0;
  }
  loss_buf_ = torch::empty({loss_cap_, K}, opts);
  pending_.clear();
  pending_.reserve(static_cast<size_t>(loss_cap_));
  CacheViews();
}

bool PackedEngine::BatchedSumIsExact(int64_t out, const torch::Tensor& like) const {
  torch::NoGradGuard no_grad;
  const int64_t bs = cfg_.batch_size;
  const int64_t n_rows = train_x_.defined() ? train_x_.size(0) : bs;
  std::vector<int64_t> lengths = {std::min(bs, n_rows)};
  if (n_rows % bs != 0) lengths.push_back(n_rows % bs);  // the epoch's last batch
  at::Generator gen = at::detail::createCPUGenerator(0x5eed);
  const auto opts = like.options();
  for (int64_t n : lengths) {
    const torch::Tensor g = torch::randn({n, K, out}, gen, torch::kFloat).to(opts.device());
    torch::Tensor batched = torch::empty_strided({K, out}, like.strides(), opts);
    at::sum_out(batched, g, at::IntArrayRef(kAxis0));
    for (int64_t k = 0; k < K; ++k) {
      torch::Tensor alone = torch::empty({out}, opts);
      at::sum_out(alone, g.select(1, k).contiguous(), at::IntArrayRef(kAxis0));
      if (!torch::equal(batched.select(0, k), alone)) return false;
    }
  }
  return true;
}

void PackedEngine::CacheViews() {
  const int64_t bs = cfg_.batch_size;
  lv_.assign(layers_.size(), {});
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    if (L.kind != LayerKind::kLinear) continue;
    LinearViews& v = lv_[li];
    if (K == 1) {
      v.w = W_[li].view({L.out, L.in});
      v.wt = v.w.t();
      v.b = B_[li].view({L.out});
      v.gw = gW_[li].view({L.out, L.in});
      v.gb = gB_[li].view({L.out});
      v.out_full = act_[li].view({bs, L.out});
      if (gin_[li].defined()) v.gin_full = gin_[li].view({bs, L.in});
    } else {
      v.w = W_[li];
      v.wt = W_[li].transpose(1, 2);
      v.b = B_[li].unsqueeze(1);
      for (int64_t k = 0; k < K; ++k) v.gb_rows.push_back(gB_[li].select(0, k));
      v.batched_bias_sum = BatchedSumIsExact(L.out, gB_[li]);
      v.out_full = act_[li].transpose(0, 1);
      if (gin_[li].defined()) v.gin_full = gin_[li].transpose(0, 1);
    }
  }
}

void PackedEngine::SetLearningRates() {
  torch::NoGradGuard no_grad;
  std::vector<double> lrs, wds;
  for (int i : active_) {
    Trial& t = trials_[i];
    t.lr = CosineAnnealingLr(t.src->config.learning_rate, epoch_, t.src->config.max_epochs);
    t.opt->set_lr(t.lr);
    lrs.push_back(t.lr);
    wds.push_back(t.src->config.weight_decay);
  }
  uniform_lr_ = std::all_of(lrs.begin(), lrs.end(), [&](double v) { return v == lrs[0]; });
  uniform_wd_ = std::all_of(wds.begin(), wds.end(), [&](double v) { return v == wds[0]; });
  any_wd_ = std::any_of(wds.begin(), wds.end(), [](double v) { return v != 0; });
  if (sgd_) {  // MASE's SGD has a fixed weight decay
    uniform_wd_ = true;
    any_wd_ = false;
  }
  lr_ = lrs[0];
  wd_scalar_ = wds[0];
  lrs_ = lrs;
  wds_ = wds;
  auto column = [&](const std::vector<double>& v) {
    std::vector<float> host(v.begin(), v.end());
    return torch::from_blob(host.data(), {K, 1}, torch::kFloat)
        .to(param_.options(), /*non_blocking=*/false, /*copy=*/true);
  };
  std::vector<double> neg(lrs.size()), decay(lrs.size());
  for (size_t k = 0; k < lrs.size(); ++k) {
    neg[k] = -lrs[k];
    decay[k] = 1 - lrs[k] * wds[k];
  }
  // Adam on the host reads lrs_ / wds_ (adam.h); the columns below serve SGD
  // (neg_lr_) and Adam's tensor ops off the host.
  const bool device_adam = !sgd_ && !param_.is_cpu();
  neg_lr_ = uniform_lr_ ? torch::Tensor() : column(neg);
  wd_ = uniform_wd_ || !device_adam ? torch::Tensor() : column(wds);
  decay_ = (uniform_lr_ && uniform_wd_) || !device_adam ? torch::Tensor() : column(decay);
  step_scale_ =
      uniform_lr_ || !device_adam ? torch::Tensor() : torch::empty({K, 1}, param_.options());
  if (!uniform_lr_ && device_adam) {
    neg_lr_d_ = torch::from_blob(neg.data(), {K, 1}, torch::kDouble)
                    .to(param_.device(), torch::kDouble, /*non_blocking=*/false, /*copy=*/true);
    step_scale_d_ = torch::empty_like(neg_lr_d_);
  }
}

void PackedEngine::Shuffle() {
  torch::NoGradGuard no_grad;
  const int64_t n = train_x_.size(0);
  std::vector<torch::Tensor> perms;
  for (int i : active_) {
    perms.push_back(torch::randperm(n, trials_[i].gen, torch::TensorOptions().dtype(torch::kLong)));
  }
  order_ = K == 1 ? perms[0].view({n, 1}) : torch::stack(perms, 1);
  if (!device_.is_cpu()) order_ = order_.to(device_);
}

// Gathers batch rows [start, start + len) of every trial's order into xb_ /
// yb_ ([len, K, features] / [len, K]): a batch's rows stay in the cache,
// where gathering the whole epoch at once wrote K copies of the data set.
void PackedEngine::GatherBatch(int64_t start, int64_t len) {
  const int64_t f = train_x_.size(1);
  torch::Tensor xb = Rows(xb_, len);
  torch::Tensor yb = Rows(yb_, len);
  const torch::Tensor idx = order_.narrow(0, start, len).contiguous();
  if (!train_x_.is_cpu()) {
    const torch::Tensor flat = idx.view({len * K});
    torch::Tensor xo = xb.view({len * K, f}), yo = yb.view({len * K});
    at::index_select_out(xo, train_x_, 0, flat);
    at::index_select_out(yo, train_y_, 0, flat);
    return;
  }
  const float* x = train_x_.data_ptr<float>();  // contiguous [rows, f] (SplitTensors)
  const int64_t* y = train_y_.data_ptr<int64_t>();
  const int64_t* ix = idx.data_ptr<int64_t>();
  float* xo = xb.data_ptr<float>();
  int64_t* yo = yb.data_ptr<int64_t>();
  for (int64_t i = 0; i < len * K; ++i) {
    std::memcpy(xo + i * f, x + ix[i] * f, static_cast<size_t>(f) * sizeof(float));
    yo[i] = y[ix[i]];
  }
}

void PackedEngine::Forward(int64_t n, const torch::Tensor& xb) {
  torch::Tensor h = xb;
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    if (L.skip) continue;
    in_[li] = h;
    switch (L.kind) {
      case LayerKind::kLinear: {
        const LinearViews& v = lv_[li];
        const bool full = n == cfg_.batch_size;
        if (K == 1) {
          torch::Tensor o2 = full ? v.out_full : act_[li].narrow(0, 0, n).view({n, L.out});
          at::addmm_out(o2, v.b, h.view({n, L.in}), v.wt);
        } else {
          torch::Tensor ot = full ? v.out_full : act_[li].narrow(0, 0, n).transpose(0, 1);
          at::baddbmm_out(ot, v.b, h.transpose(0, 1), v.wt);
        }
        h = Rows(act_[li], n);
        break;
      }
      case LayerKind::kBatchNorm1d: {
        if (device_.is_cpu()) {  // into the layer's buffer, parameters read in place
          const torch::Tensor x = h.contiguous();
          torch::Tensor y = Rows(act_[li], n);
          BatchNormTrainForward(BnShape(li, n), x.data_ptr<float>(), W_[li].data_ptr<float>(),
                                B_[li].data_ptr<float>(), kBnMomentum, kBnEps,
                                run_mean_[L.bn].data_ptr<float>(), run_var_[L.bn].data_ptr<float>(),
                                y.data_ptr<float>(), save_mean_[L.bn].data_ptr<double>(),
                                save_invstd_[L.bn].data_ptr<double>());
          in_[li] = x;
          h = y;
          break;
        }
        // LibTorch 1.13 has no CPU kernel for native_batch_norm.out: the output
        // and the saved statistics are allocated here (three small allocations
        // per BatchNorm and step).
        auto r =
            at::native_batch_norm(h.view({n, K * L.out}), BnWeight(li), BnBias(li), run_mean_[L.bn],
                                  run_var_[L.bn], /*training=*/true, kBnMomentum, kBnEps);
        save_mean_[L.bn] = std::get<1>(r);
        save_invstd_[L.bn] = std::get<2>(r);
        h = std::get<0>(r).view({n, K, L.out});
        break;
      }
      case LayerKind::kReLU: {
        if (L.in_place_relu) {
          at::relu_(h);
        } else {
          torch::Tensor o = act_[li].narrow(0, 0, n);
          at::clamp_min_out(o, h, 0);
          h = o;
        }
        break;
      }
      case LayerKind::kDropout:
        break;
    }
  }
  out_ = h;
}

void PackedEngine::LossAndGrad(int64_t n, const torch::Tensor& yb, int64_t row) {
  // d loss / d logits = softmax * s - s at the target, s = (1 / accumulate) / n
  // in float: the arithmetic of autograd's nll_loss and log_softmax backward.
  const float scale = static_cast<float>(1.0 / static_cast<double>(cfg_.accumulate_grad_batches)) /
                      static_cast<float>(n);
  torch::Tensor loss_row = loss_buf_.select(0, row);
  torch::Tensor g = Rows(gout_, n);
  if (out_.is_cpu()) {  // one pass over the logits (the ops below cost ~10x as much)
    const torch::Tensor logits = out_.contiguous();
    const torch::Tensor labels = yb.contiguous();
    TORCH_CHECK(
        CrossEntropyStep(logits.data_ptr<float>(), labels.data_ptr<int64_t>(), n, K, logits.size(2),
                         scale, g.data_ptr<float>(), loss_row.data_ptr<float>()),
        "a training label is outside [0, ", logits.size(2), ")");
    return;
  }
  torch::Tensor logp = Rows(logp_, n);
  at::_log_softmax_out(logp, out_, 2, false);
  const torch::Tensor y3 = yb.unsqueeze(2);
  torch::Tensor picked = Rows(picked_, n);
  at::gather_out(picked, logp, 2, y3);
  at::sum_out(loss_row, picked.view({n, K}), at::IntArrayRef(kAxis0));
  if (scale != neg_scale_value_) {
    neg_scale_.fill_(-scale);
    neg_scale_value_ = scale;
  }
  at::exp_out(g, logp);
  g.mul_(scale);
  g.scatter_add_(2, y3, Rows(neg_scale_, n));
}

void PackedEngine::Backward(int64_t n) {
  torch::Tensor g = Rows(gout_, n);
  for (size_t li = layers_.size(); li-- > 0;) {
    const Layer& L = layers_[li];
    if (L.skip) continue;
    const torch::Tensor& h = in_[li];
    switch (L.kind) {
      case LayerKind::kReLU:
        // g was produced by this pass (loss gradient or a layer's input
        // gradient): in place.
        at::threshold_backward_out(g, g, L.in_place_relu ? h : act_[li].narrow(0, 0, n), 0);
        break;
      case LayerKind::kLinear: {
        LinearViews& v = lv_[li];
        const bool full = n == cfg_.batch_size;
        if (K == 1) {
          const torch::Tensor g2 = g.view({n, L.out});
          at::mm_out(v.gw, g2.t(), h.view({n, L.in}));
          at::sum_out(v.gb, g2, at::IntArrayRef(kAxis0));
          if (!L.first) {
            torch::Tensor gi2 = full ? v.gin_full : gin_[li].narrow(0, 0, n).view({n, L.in});
            at::mm_out(gi2, g2, v.w);
            g = Rows(gin_[li], n);
          }
        } else {
          const torch::Tensor gt = g.transpose(0, 1);  // [K, n, out]
          at::bmm_out(gW_[li], gt.transpose(1, 2), h.transpose(0, 1));
          // Per trial, so the reduction order is that of a trial trained alone: a
          // bias followed by BatchNorm has a zero true gradient, and Adam turns
          // its rounding noise into full steps, so a different summation order
          // would change the trajectory.
          if (v.batched_bias_sum) {
            at::sum_out(gB_[li], g, at::IntArrayRef(kAxis0));
          } else {
            for (int64_t k = 0; k < K; ++k) {
              at::sum_out(v.gb_rows[k], g.select(1, k), at::IntArrayRef(kAxis0));
            }
          }
          if (!L.first) {
            torch::Tensor git = full ? v.gin_full : gin_[li].narrow(0, 0, n).transpose(0, 1);
            at::bmm_out(git, gt, v.w);
            g = Rows(gin_[li], n);
          }
        }
        break;
      }
      case LayerKind::kBatchNorm1d: {
        if (device_.is_cpu()) {  // gradients written straight into the pack's buffer
          torch::Tensor gx = L.first ? torch::Tensor() : Rows(gin_[li], n);
          BatchNormTrainBackward(
              BnShape(li, n), g.contiguous().data_ptr<float>(), h.data_ptr<float>(),
              W_[li].data_ptr<float>(), save_mean_[L.bn].data_ptr<double>(),
              save_invstd_[L.bn].data_ptr<double>(), L.first ? nullptr : gx.data_ptr<float>(),
              gW_[li].data_ptr<float>(), gB_[li].data_ptr<float>());
          if (!L.first) g = gx;
          break;
        }
        const int64_t kc = K * L.out;
        auto r = at::native_batch_norm_backward(
            g.view({n, kc}), h.view({n, kc}), bn_weight_used_[L.bn], run_mean_[L.bn],
            run_var_[L.bn], save_mean_[L.bn], save_invstd_[L.bn],
            /*train=*/true, kBnEps, {!L.first, true, true});
        gW_[li].copy_(std::get<1>(r).view({K, L.out}));
        gB_[li].copy_(std::get<2>(r).view({K, L.out}));
        if (!L.first) g = std::get<0>(r).view({n, K, L.out});
        break;
      }
      case LayerKind::kDropout:
        break;
    }
  }
}

// torch.optim.Adam / AdamW (single-tensor, amsgrad off) and SGD (momentum 0.9,
// nesterov, weight decay 5e-4), elementwise on the whole pack, the per-trial
// learning rate and weight decay as per-element vectors when the trials' values
// differ (scalars otherwise, the same arithmetic as FlatOptimizer).
void PackedEngine::OptimizerStep() {
  ++opt_step_;
  if (sgd_) {
    torch::Tensor g = at::add_out(upd_, grad_, param_, FlatOptimizer::kSgdWeightDecay);
    if (opt_step_ == 1) {
      momentum_.copy_(g);
    } else {
      momentum_.mul_(FlatOptimizer::kSgdMomentum).add_(g);
    }
    g.add_(momentum_, FlatOptimizer::kSgdMomentum);
    if (uniform_lr_) {
      param_.add_(g, -lr_);
    } else {
      param_.addcmul_(g, neg_lr_);  // p + g * (-lr_k): FlatOptimizer's p + (-lr) * g
    }
    return;
  }
  constexpr double b1 = FlatOptimizer::kBeta1, b2 = FlatOptimizer::kBeta2;
  if (param_.is_cpu()) {  // per trial row, FlatOptimizer's loop (adam.h)
    float* p = param_.data_ptr<float>();
    const float* g = grad_.data_ptr<float>();
    float* m = exp_avg_.data_ptr<float>();
    float* v = exp_avg_sq_.data_ptr<float>();
    AdamStepOptions o;
    o.decoupled = adamw_;
    o.step = opt_step_;
    o.beta1 = b1;
    o.beta2 = b2;
    o.eps = FlatOptimizer::kEps;
    for (int64_t k = 0; k < K; ++k) {
      o.lr = lrs_[k];
      o.weight_decay = wds_[k];
      const int64_t at = k * per_trial_;
      AdamStep(p + at, g + at, m + at, v + at, per_trial_, o);
    }
    return;
  }
  // Off the host: tensor ops over the whole pack.
  torch::Tensor g = grad_;
  if (any_wd_) {
    if (adamw_) {
      if (uniform_lr_ && uniform_wd_) {
        param_.mul_(1 - lr_ * wd_scalar_);
      } else {
        param_.mul_(decay_);  // per trial 1 - lr_k * wd_k
      }
    } else {
      g = uniform_wd_ ? at::add_out(upd_, grad_, param_, wd_scalar_)
                      : at::addcmul_out(upd_, grad_, param_, wd_);
    }
  }
  exp_avg_.mul_(b1).add_(g, 1 - b1);
  exp_avg_sq_.mul_(b2).addcmul_(g, g, 1 - b2);
  const double bc1 = 1 - std::pow(b1, static_cast<double>(opt_step_));
  const double bc2 = 1 - std::pow(b2, static_cast<double>(opt_step_));
  at::sqrt_out(denom_, exp_avg_sq_);
  denom_.div_(std::sqrt(bc2)).add_(FlatOptimizer::kEps);
  if (uniform_lr_) {
    param_.addcdiv_(exp_avg_, denom_, -lr_ / bc1);
  } else {
    // Per trial FlatOptimizer's addcdiv_ arithmetic: p + (float(-lr_k / bc1) *
    // exp_avg) / denom, the scales computed on the device (no host
    // synchronisation) by the same double division.
    at::div_out(step_scale_d_, neg_lr_d_, bc1);
    step_scale_.copy_(step_scale_d_);
    at::mul_out(upd_, exp_avg_, step_scale_);
    param_.addcdiv_(upd_, denom_, 1.0);
  }
}

void PackedEngine::Flush(const torch::Tensor& log_correct) {
  if (pending_.empty()) return;
  const int64_t rows = static_cast<int64_t>(pending_.size());
  const torch::Tensor losses = loss_buf_.narrow(0, 0, rows).to(torch::kCPU).contiguous();
  const float* lp = losses.data_ptr<float>();
  torch::Tensor correct;
  if (log_correct.defined()) correct = log_correct.to(torch::kCPU).contiguous();
  for (int64_t c = 0; c < K; ++c) {
    Trial& t = trials_[active_[c]];
    if (t.leaving) continue;
    double last = 0;
    bool bad = false;
    for (int64_t r = 0; r < rows; ++r) {
      const PendingBatch& p = pending_[r];
      const double loss = -static_cast<double>(lp[r * K + c]) / static_cast<double>(p.rows);
      if (!std::isfinite(loss)) {
        t.result.status = "diverged";
        t.result.message = absl::StrCat("diverged: loss is ", std::isnan(loss) ? "NaN" : "inf",
                                        " at step ", p.step_before + 1);
        t.result.global_steps = p.step_before;
        t.leaving = true;
        bad = true;
        break;
      }
      last = loss;
      if (p.log) {
        t.progress.train_acc =
            correct.defined()
                ? static_cast<double>(correct.data_ptr<int64_t>()[c]) / static_cast<double>(p.rows)
                : 0.0;
        if (t.cb) {
          t.cb->OnMetric({"train_loss_step", p.step_before + 1, epoch_, loss});
          t.cb->OnMetric({"train_acc_step", p.step_before + 1, epoch_, t.progress.train_acc});
        }
      }
    }
    if (!bad) t.progress.train_loss = last;
  }
  pending_.clear();
}

bool PackedEngine::TrainEpoch() {
  torch::NoGradGuard no_grad;
  const int64_t n = train_x_.size(0);
  const int64_t bs = cfg_.batch_size;
  const int64_t accumulate = cfg_.accumulate_grad_batches;
  const int64_t log_every = cfg_.log_every_n_steps;
  int64_t num_batches = (n + bs - 1) / bs;
  if (has_batch_norm_ && n % bs == 1) --num_batches;  // as TrainModel: skip a 1-row batch
  if (cfg_.debug) num_batches = std::min<int64_t>(num_batches, 5);
  Shuffle();
  for (int i : active_) trials_[i].progress.batches_per_epoch = num_batches;
  for (int64_t b = 0; b < num_batches; ++b) {
    bool stop = false;
    for (int i : active_) {
      Trial& t = trials_[i];
      if (t.cb && t.cb->ShouldStop()) {
        t.leaving = true;
        t.result.status = "cancelled";
        t.result.message =
            absl::StrCat("cancelled at step ", global_step_, " (epoch ", epoch_, ")");
        t.result.global_steps = global_step_;
        stop = true;
      }
    }
    if (stop) {
      Flush({});
      Leave();
      if (active_.empty()) return false;
    }
    const int64_t start = b * bs;
    const int64_t len = std::min(bs, n - start);
    GatherBatch(start, len);
    const torch::Tensor yb = Rows(yb_, len);
    Forward(len, Rows(xb_, len));
    const int64_t row = static_cast<int64_t>(pending_.size());
    LossAndGrad(len, yb, row);
    Backward(len);
    pending_.push_back({global_step_, len, false});
    for (int i : active_) {
      for (int64_t& nbt : trials_[i].batches_tracked) ++nbt;
    }
    epoch_samples_ += len;
    const bool first_in_window = b % accumulate == 0;
    bool flushed = false;
    if (accumulate > 1) {
      if (first_in_window) {
        grad_.copy_(step_grad_);
      } else {
        grad_.add_(step_grad_);
      }
    }
    if ((b + 1) % accumulate == 0 || b + 1 == num_batches) {
      OptimizerStep();
      ++global_step_;
      if (log_every > 0 && global_step_ % log_every == 0) {
        pending_.back().log = true;
        const torch::Tensor correct = out_.argmax(2).eq(yb).sum(at::IntArrayRef(kAxis0));
        Flush(correct);
        flushed = true;
      }
    }
    if (!flushed && static_cast<int64_t>(pending_.size()) == loss_cap_) Flush({});
    bool any_leaving = false;
    for (int i : active_) {
      Trial& t = trials_[i];
      any_leaving |= t.leaving;
      if (t.cb) {
        t.progress.epoch = epoch_;
        t.progress.batch_in_epoch = b + 1;
        t.progress.global_step = global_step_;
        t.progress.elapsed_seconds = SecondsSince(start_);
        t.cb->OnProgress(t.progress);
      }
    }
    if (any_leaving) {
      Leave();
      if (active_.empty()) return false;
    }
    if (cfg_.max_steps > 0 && global_step_ >= cfg_.max_steps) return false;
  }
  return true;
}

// Eval-mode forward of all rows, in the [rows, K, C] layout, one block of
// whole batches at a time so that a block's activations stay in the cache
// (on a device: a chunk of rows, whose logits are copied to the host at
// once); the metrics come from one pass over each block's logits
// (CrossEntropyMetrics: MASE's mean of batch-mean losses, micro accuracy).
// For one trial these are the values EvaluateNetwork computes, in the same
// order, so a checkpoint evaluates to exactly the metrics logged for it, and a
// trial's metrics do not depend on the pack.
void PackedEngine::EvaluatePacked(const torch::Tensor& x, const torch::Tensor& y,
                                  std::vector<EvalResult>& out) {
  torch::NoGradGuard no_grad;
  const int64_t bs = cfg_.batch_size;
  int64_t n = x.size(0);
  if (cfg_.debug) n = std::min(n, 5 * bs);
  const bool on_host = param_.is_cpu();
  const int64_t block = std::max<int64_t>(1, (on_host ? kEvalBlockRows : kEvalChunkRows) / bs) * bs;
  const int64_t f = x.size(1);
  const auto opts = param_.options();
  const torch::Tensor labels = y.to(torch::kCPU).contiguous();
  const int64_t* label = labels.data_ptr<int64_t>();
  // Work buffers for one block, allocated once per call.
  torch::Tensor xin = torch::empty({block, K, f}, opts);
  std::vector<torch::Tensor> lin_out(layers_.size());
  for (size_t li = 0; li < layers_.size(); ++li)
    if (!layers_[li].skip && layers_[li].kind == LayerKind::kLinear)
      lin_out[li] = torch::empty({block, K, layers_[li].out}, opts);
  std::vector<torch::Tensor> bn_w(layers_.size()), bn_b(layers_.size());
  for (size_t li = 0; li < layers_.size(); ++li) {
    if (layers_[li].skip || layers_[li].kind != LayerKind::kBatchNorm1d) continue;
    bn_w[li] = W_[li].reshape({-1});
    bn_b[li] = B_[li].reshape({-1});
  }
  CrossEntropyMetrics metrics(K, spec_.num_classes, bs);
  const bool cudnn = false;
  for (int64_t s = 0; s < n; s += block) {
    const int64_t m = std::min(block, n - s);
    torch::Tensor h = xin.narrow(0, 0, m);
    h.copy_(x.narrow(0, s, m).unsqueeze(1).expand({m, K, f}));
    for (size_t li = 0; li < layers_.size(); ++li) {
      const Layer& L = layers_[li];
      if (L.skip) continue;
      if (L.kind == LayerKind::kLinear) {
        torch::Tensor o = lin_out[li].narrow(0, 0, m);
        if (K == 1) {
          torch::Tensor o2 = o.view({m, L.out});
          at::addmm_out(o2, B_[li].view({L.out}), h.view({m, L.in}),
                        W_[li].view({L.out, L.in}).t());
        } else {
          torch::Tensor ot = o.transpose(0, 1);
          at::baddbmm_out(ot, B_[li].unsqueeze(1), h.transpose(0, 1), W_[li].transpose(1, 2));
        }
        h = o;
      } else if (L.kind == LayerKind::kBatchNorm1d) {
        h = at::batch_norm(h.view({m, K * L.out}), bn_w[li], bn_b[li], run_mean_[L.bn],
                           run_var_[L.bn], /*training=*/false, kBnMomentum, kBnEps, cudnn)
                .view({m, K, L.out});
      } else {
        h = at::relu(h);
      }
    }
    // h: logits [m, K, classes].
    const torch::Tensor logits = h.to(torch::kCPU, torch::kFloat).contiguous();
    TORCH_CHECK(logits.size(2) == spec_.num_classes, "the model has ", logits.size(2),
                " outputs for ", spec_.num_classes, " classes");
    TORCH_CHECK(metrics.Add(logits.data_ptr<float>(), label + s, m),
                "an evaluation label is outside [0, ", spec_.num_classes, ")");
  }
  out.assign(K, {});
  for (int64_t c = 0; c < K; ++c) out[c] = metrics.Result(c);
}

// Copies column `col`'s parameters, BatchNorm statistics and optimizer state
// into the trial's Network and FlatOptimizer (what checkpoints are written
// from).
void PackedEngine::SyncTrialToNetwork(int col) {
  torch::NoGradGuard no_grad;
  Trial& t = trials_[active_[col]];
  auto params = t.net->parameters();
  int64_t off = 0;
  const torch::Tensor row = param_.select(0, col);
  for (size_t j = 0; j < block_sizes_.size(); ++j) {
    params[j].copy_(row.narrow(0, off, block_sizes_[j]).view(params[j].sizes()));
    off += block_sizes_[j];
  }
  if (sgd_) {
    t.opt->SetState(opt_step_, t.lr, momentum_.select(0, col), torch::Tensor());
  } else {
    t.opt->SetState(opt_step_, t.lr, exp_avg_.select(0, col), exp_avg_sq_.select(0, col));
  }
  int bn = 0;
  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    if (L.bn < 0) continue;
    auto m = std::dynamic_pointer_cast<torch::nn::BatchNorm1dImpl>(t.net->LayerModule(li));
    m->running_mean.copy_(run_mean_[L.bn].view({K, L.out}).select(0, col));
    m->running_var.copy_(run_var_[L.bn].view({K, L.out}).select(0, col));
    m->num_batches_tracked.fill_(t.batches_tracked[bn++]);
  }
}

absl::Status PackedEngine::SaveCheckpoint(Trial& t, const std::string& file,
                                          const std::string& kind) {
  nlohmann::json meta = t.base_meta;
  meta["kind"] = kind;
  meta["epoch"] = epoch_;
  meta["global_step"] = global_step_;
  meta["metrics"] = t.epoch_metrics;
  const std::string path = (std::filesystem::path(t.src->options.checkpoint_dir) / file).string();
  QSWEEP_RETURN_IF_ERROR(WriteCheckpoint(path, *t.net, t.opt.get(), std::move(meta)));
  (kind == "best" ? t.result.best_checkpoint : t.result.last_checkpoint) = path;
  return absl::OkStatus();
}

absl::Status PackedEngine::EndEpoch(Clock::time_point epoch_start, double train_seconds,
                                    bool last_for_all) {
  std::vector<EvalResult> val, test;
  EvaluatePacked(train_x_, train_y_, val);
  EvaluatePacked(test_x_, test_y_, test);
  const double epoch_seconds = SecondsSince(epoch_start);
  for (int64_t c = 0; c < K; ++c) {
    Trial& t = trials_[active_[c]];
    t.epoch_metrics = {
        {"val_loss_epoch", val[c].loss}, {"val_acc_epoch", val[c].accuracy}, {"lr", t.lr}};
    if (test[c].rows > 0) {
      t.epoch_metrics["test_loss_epoch"] = test[c].loss;
      t.epoch_metrics["test_acc_epoch"] = test[c].accuracy;
    }
    t.epoch_metrics["epoch_seconds"] = epoch_seconds;
    t.epoch_metrics["samples_per_second"] =
        train_seconds > 0 ? static_cast<double>(epoch_samples_) / train_seconds : 0.0;
    for (const auto& [name, value] : t.epoch_metrics) Emit(t, name, value);
    t.progress.val_loss = val[c].loss;
    t.progress.val_acc = val[c].accuracy;
    for (const auto& [name, value] : t.epoch_metrics) t.result.final_metrics[name] = value;
    t.train_seconds_total += train_seconds;
    t.samples_total += epoch_samples_;
    if (!std::isfinite(val[c].loss)) {
      t.result.global_steps = global_step_;
      t.result.status = "diverged";
      t.result.message = absl::StrCat("diverged: loss is ", std::isnan(val[c].loss) ? "NaN" : "inf",
                                      " at step ", global_step_ + 1);
      t.leaving = true;
      continue;
    }
    ++t.result.epochs_completed;
    const bool best = val[c].loss < t.best_val_loss;
    if (best) {
      t.best_val_loss = val[c].loss;
      t.result.final_metrics["best_epoch"] = static_cast<double>(epoch_);
    }
    if (last_for_all || epoch_ + 1 >= t.src->config.max_epochs) t.leaving = true;
    const bool checkpoints = !t.src->options.checkpoint_dir.empty();
    const bool resume = !t.leaving && !t.src->options.resume_state_out.empty();
    if (!checkpoints && !resume) continue;
    SyncTrialToNetwork(static_cast<int>(c));
    if (checkpoints && best) QSWEEP_RETURN_IF_ERROR(SaveCheckpoint(t, "best.ckpt", "best"));
    if (checkpoints) QSWEEP_RETURN_IF_ERROR(SaveCheckpoint(t, "last.ckpt", "last"));
    if (resume) QSWEEP_RETURN_IF_ERROR(WriteTrialResume(t));
  }
  return absl::OkStatus();
}

void PackedEngine::Finish(Trial& t) {
  if (t.result.status == "succeeded") t.result.global_steps = global_step_;
  if (std::isfinite(t.best_val_loss))
    t.result.final_metrics["best_val_loss_epoch"] = t.best_val_loss;
  t.result.wall_seconds = SecondsSince(start_);
  t.result.samples_per_second = t.train_seconds_total > 0
                                    ? static_cast<double>(t.samples_total) / t.train_seconds_total
                                    : 0.0;
  if (t.cb) t.cb->OnFinished(t.result);
}

void PackedEngine::Leave() {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> keep;
  std::vector<int> still;
  for (int64_t c = 0; c < K; ++c) {
    Trial& t = trials_[active_[c]];
    if (t.leaving) {
      Finish(t);
    } else {
      keep.push_back(c);
      still.push_back(active_[c]);
    }
  }
  if (keep.size() == static_cast<size_t>(K)) return;
  active_ = std::move(still);
  const int64_t old_k = K;
  K = static_cast<int64_t>(keep.size());
  if (K == 0) return;
  const torch::Tensor idx =
      torch::tensor(keep, torch::TensorOptions().dtype(torch::kLong)).to(device_);
  auto compact = [&](const torch::Tensor& t) { return t.defined() ? t.index_select(0, idx) : t; };
  param_ = compact(param_);
  grad_ = compact(grad_);
  step_grad_ = compact(step_grad_);
  exp_avg_ = compact(exp_avg_);
  exp_avg_sq_ = compact(exp_avg_sq_);
  momentum_ = compact(momentum_);
  if (denom_.defined()) denom_ = torch::empty_like(param_);
  upd_ = torch::empty_like(param_);
  for (int b = 0; b < n_bn_; ++b) {
    const int64_t c = run_mean_[b].numel() / old_k;
    run_mean_[b] = run_mean_[b].view({old_k, c}).index_select(0, idx).reshape({-1});
    run_var_[b] = run_var_[b].view({old_k, c}).index_select(0, idx).reshape({-1});
  }
  if (order_.defined()) order_ = order_.index_select(1, idx);
  BindViews();
  AllocateWork();
  SetLearningRates();  // the same epoch's rates, for the remaining columns
}

absl::Status PackedEngine::Run() {
  QSWEEP_RETURN_IF_ERROR(Setup());  // epoch_: 0, or where resumed trials continue
  for (; !active_.empty(); ++epoch_) {
    SetLearningRates();
    for (int i : active_) trials_[i].progress.epoch = epoch_;
    epoch_samples_ = 0;
    const auto t0 = Clock::now();
    const bool go_on = TrainEpoch();
    Flush({});
    const double train_seconds = SecondsSince(t0);
    Leave();  // diverged in the last batches
    if (active_.empty()) break;
    QSWEEP_RETURN_IF_ERROR(EndEpoch(t0, train_seconds, !go_on));
    Leave();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<TrainResult>> TrainPacked(const std::vector<PackedTrial>& trials,
                                                     const ModelSpec& spec, const Dataset& data) {
  PackedEngine engine(trials, spec, data);
  absl::Status s;
  try {
    s = engine.Run();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("training model '", spec.name, "' failed at epoch ",
                                            engine.epoch(), ": ", TorchMessage(e)));
  }
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("training model '", spec.name, "': ", s.message()));
  }
  return engine.TakeResults();
}

}  // namespace qsweep
