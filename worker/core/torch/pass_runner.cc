#include "worker/core/torch/pass_runner.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/dates.h"
#include "common/status_macros.h"
#include "worker/core/config/train_config.h"
#include "worker/core/passes/graph_reports.h"
#include "worker/core/passes/pass_pipeline.h"
#include "worker/core/torch/checkpoint_io.h"
#include "worker/core/torch/quantized_modules.h"
#include "worker/core/torch/trainer_internal.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;

int64_t LayerIndex(const ModelSpec& spec, const std::string& node) {
  for (size_t i = 0; i < spec.layers.size(); ++i)
    if (spec.NodeName(i) == node) return static_cast<int64_t>(i);
  return -1;
}

std::vector<float> ToVector(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// The torch side of the pass pipeline.
class TorchBackend : public PassBackend {
 public:
  TorchBackend(Network& net, const Dataset* data, int64_t batch, uint64_t seed, torch::Device dev)
      : net_(net), data_(data), batch_(batch), seed_(seed), device_(dev) {}

  absl::Status ApplyQuantization(const QuantizePlan& plan) override {
    return ApplyQuantizationToNetwork(net_, plan);
  }

  absl::Status Profile(Profiler& profiler, int64_t num_batches) override {
    for (const auto& [node, arg] : profiler.WeightTargets()) {
      QSWEEP_ASSIGN_OR_RETURN(torch::Tensor t, Tensor(node, arg));
      auto v = ToVector(t);
      profiler.UpdateWeight(node, arg, v.data(), v.size());
    }
    auto acts = profiler.ActivationTargets();
    if (acts.empty() || num_batches == 0) return absl::OkStatus();
    if (data_ == nullptr)
      return absl::FailedPreconditionError("profile_statistics needs the training data");
    // MASE draws the batches from a fresh shuffled train loader.
    torch::manual_seed(seed_);
    const int64_t rows = data_->train_val.rows;
    torch::Tensor perm = torch::randperm(rows, torch::kLong);
    torch::Tensor x_all = SplitTensors(data_->train_val, data_->n_features, torch::kCPU).first;
    torch::NoGradGuard no_grad;
    bool was_training = net_.is_training();
    net_.eval();
    const ModelSpec& spec = net_.spec();
    for (int64_t b = 0; b < num_batches && b * batch_ < rows; ++b) {
      int64_t len = std::min(batch_, rows - b * batch_);
      torch::Tensor x = x_all.index_select(0, perm.narrow(0, b * batch_, len)).to(device_);
      for (size_t i = 0; i <= spec.layers.size(); ++i) {
        std::string node = i < spec.layers.size() ? spec.NodeName(i) : "output";
        for (const auto& [n, arg] : acts) {
          if (n != node || arg != "data_in_0") continue;
          auto v = ToVector(x);
          profiler.UpdateActivation(n, arg, v.data(), x.size(0), x.numel() / x.size(0));
        }
        if (i < spec.layers.size()) x = net_.ForwardLayer(i, x);
      }
    }
    net_.train(was_training);
    return absl::OkStatus();
  }

  absl::StatusOr<ParameterValues> Parameter(const std::string& node,
                                            const std::string& arg) override {
    int64_t i = LayerIndex(net_.spec(), node);
    auto q = i < 0 ? nullptr : std::dynamic_pointer_cast<QuantLinearImpl>(net_.LayerModule(i));
    if (q == nullptr)
      return absl::InternalError(absl::StrCat("verify_quantization: ", node, " is not quantized"));
    torch::NoGradGuard no_grad;
    ParameterValues v;
    torch::Tensor stored = arg == "weight" ? q->weight : q->bias;
    v.stored = ToVector(stored);
    v.effective = ToVector(q->EffectiveParameter(arg));
    v.shape.assign(stored.sizes().begin(), stored.sizes().end());
    return v;
  }

  int64_t batch_size() const override { return batch_; }

 private:
  absl::StatusOr<torch::Tensor> Tensor(const std::string& node, const std::string& arg) {
    int64_t i = LayerIndex(net_.spec(), node);
    if (i < 0) return absl::NotFoundError(absl::StrCat("no layer for node '", node, "'"));
    auto m = net_.LayerModule(i);
    for (const auto& p : m->named_parameters(false))
      if (p.key() == arg) return p.value();
    for (const auto& p : m->named_buffers(false))
      if (p.key() == arg) return p.value();
    return absl::NotFoundError(absl::StrCat("node '", node, "' has no tensor '", arg, "'"));
  }

  Network& net_;
  const Dataset* data_;
  int64_t batch_;
  uint64_t seed_;
  torch::Device device_;
};

// Quantization-aware fine-tuning through the trainer's loop (TrainNetwork):
// Adam/AdamW/SGD as configured at a constant learning rate, one optimizer step
// per batch, straight-through gradients through the quantizers, no epoch
// evaluation or checkpoints (the transform evaluates and saves afterwards).
// Appends "Fine-tune epoch e/E: train loss L" (the mean batch loss of the
// epoch) to `log`; the caller's ShouldStop() cancels it.
absl::Status FineTune(const std::shared_ptr<Network>& net, const Dataset& data,
                      const TrainConfig& c, int64_t epochs, TrainCallback* caller,
                      std::string& log) {
  struct EpochLosses final : TrainCallback {
    explicit EpochLosses(TrainCallback* c) : caller(c) {}
    void OnProgress(const TrainProgress& p) override {
      if (static_cast<int64_t>(sums.size()) <= p.epoch) sums.resize(p.epoch + 1, {0.0, 0});
      sums[p.epoch].first += p.train_loss;  // the loss of this batch's step
      ++sums[p.epoch].second;
    }
    bool ShouldStop() override { return caller != nullptr && caller->ShouldStop(); }
    TrainCallback* caller;
    std::vector<std::pair<double, int64_t>> sums;  // per epoch: loss sum, steps
  } losses(caller);
  TrainConfig tune = c;
  tune.max_epochs = epochs;
  tune.accumulate_grad_batches = 1;  // a step per batch
  tune.max_steps = -1;
  tune.debug = false;
  TrainOptions options;  // no checkpoints: the transform writes its own
  options.callback = &losses;
  QSWEEP_ASSIGN_OR_RETURN(
      TrainResult r, TrainNetwork(net, tune, data, options,
                                  NetworkTraining{.constant_lr = true, .evaluate_epochs = false}));
  for (size_t e = 0; e < losses.sums.size() && static_cast<int64_t>(e) < r.epochs_completed; ++e)
    absl::StrAppend(
        &log, absl::StrFormat(
                  "Fine-tune epoch %d/%d: train loss %.5f\n", e + 1, epochs,
                  losses.sums[e].second ? losses.sums[e].first / losses.sums[e].second : 0.0));
  if (r.status == "cancelled") return absl::CancelledError("fine-tuning " + r.message);
  if (r.status != "succeeded") absl::StrAppend(&log, "Fine-tuning stopped: ", r.message, "\n");
  net->eval();
  return absl::OkStatus();
}

absl::Status WriteFile(const fs::path& path, const std::string& content,
                       std::vector<std::string>& written) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream f(path, std::ios::binary);
  if (!f || !(f << content))
    return absl::InternalError(absl::StrCat("cannot write '", path.string(), "'"));
  written.push_back(path.string());
  return absl::OkStatus();
}

// Training config from the checkpoint, overlaid with the transform config
// file and then the explicit overrides.
absl::StatusOr<TrainConfig> MergedConfig(const ConfigLayers& layers, const nlohmann::json& meta,
                                         const nlohmann::json& overrides) {
  nlohmann::json merged = layers.defaults;
  // Where the checkpoint was trained (device, accelerator) says nothing about
  // where it is transformed: that comes from the config file, the overrides
  // (a worker's --device) or the defaults (cpu).
  if (meta.contains("config") && meta["config"].is_object())
    for (auto& [k, v] : meta["config"].items())
      if (FindTrainKey(k) && k != "device" && k != "accelerator") merged[k] = v;
  for (auto& [k, v] : layers.file.items()) merged[k] = v;
  for (auto& [k, v] : overrides.items()) {
    const KeySpec* key = FindTrainKey(k);
    if (!key) return absl::InvalidArgumentError(absl::StrCat("unknown override key '", k, "'"));
    QSWEEP_RETURN_IF_ERROR(CheckKeyValue(*key, v, "override "));
    merged[k] = v;
  }
  return TrainConfigFromJson(merged, false);
}

bool NeedsData(const std::vector<PassSpec>& passes, const TransformOptions& o) {
  if (o.evaluate || o.fine_tune_epochs > 0) return true;
  for (const auto& p : passes)
    if (p.name == "profile_statistics") return true;
  return false;
}

std::string MetricLine(const char* label, const EvalResult& r) {
  return absl::StrFormat("%s: test loss %.5f, test accuracy %.5f (%d rows)\n", label, r.loss,
                         r.accuracy, r.rows);
}

// Notes on the checkpoint for the run's text: a model name in the config that
// is not the checkpoint's, and synthetic training data.
std::string CheckpointNotes(const nlohmann::json& file, const CheckpointInfo& info) {
  std::string text;
  if (file.contains("model") && file["model"].is_string()) {
    std::string named = file["model"].get<std::string>();
    std::string trained = info.meta.value("config", nlohmann::json::object()).value("model", "");
    if (named != info.spec.name && named != trained)
      absl::StrAppend(&text, "warning: the config names model '", named,
                      "' but the checkpoint holds '", info.spec.name,
                      "'; using the checkpoint's\n");
  }
  if (info.meta.value("synthetic", false))
    absl::StrAppend(&text, "NOTE: the checkpoint was trained on SYNTHETIC data (",
                    info.meta.value("dataset", std::string("jsc-synthetic")),
                    "); its accuracies are not JSC results\n");
  return text;
}

// The dataset (the config's, else the checkpoint's); says which in `text`,
// and warns when it is not the one the checkpoint was trained on.
absl::StatusOr<Dataset> LoadTransformData(const TrainConfig& cfg, const CheckpointInfo& info,
                                          std::string& text) {
  DatasetRequest req;
  req.name = cfg.dataset.empty() ? info.meta.value("dataset", std::string()) : cfg.dataset;
  req.cache_dir = cfg.data_dir;
  req.synthetic_rows = cfg.synthetic_rows;
  req.synthetic_seed = static_cast<uint64_t>(cfg.synthetic_seed);
  QSWEEP_ASSIGN_OR_RETURN(Dataset data, LoadDataset(req));
  absl::StrAppend(&text, "Dataset: ", data.DisplayName(), "\n");
  if (info.meta.contains("dataset_sha256") && info.meta["dataset_sha256"] != data.sha256)
    absl::StrAppend(&text, "warning: dataset ", data.DisplayName(),
                    " differs from the one the checkpoint was trained on\n");
  return data;
}

// options.output_dir, else <project_dir>/<project>/software/transform; earlier
// transforms of the project are kept: a rerun writes transform-v1, -v2, ...
fs::path OutputDir(const TransformOptions& o, const TrainConfig& cfg) {
  if (!o.output_dir.empty()) return fs::absolute(o.output_dir);
  std::string project = cfg.project.empty() ? ProjectName(cfg, TodayUtc()) : cfg.project;
  fs::path base = fs::absolute(fs::path(cfg.project_dir) / project / "software");
  fs::path dir = base / "transform";
  std::error_code ec;
  for (int v = 1; fs::exists(dir, ec) && !fs::is_empty(dir, ec); ++v)
    dir = base / absl::StrCat("transform-v", v);
  return dir;
}

// The transformed checkpoint's meta: the source's, with where and how it was
// transformed and the quantization a loader re-applies.
nlohmann::json TransformedMeta(const TransformOptions& o, const std::string& load,
                               const CheckpointInfo& info, const std::vector<PassSpec>& passes,
                               const PipelineResult& pipe, const TransformResult& res) {
  nlohmann::json meta = info.meta;
  meta["kind"] = "transformed";
  meta["device"] = res.device;  // where it was transformed (and fine-tuned)
  meta["source_checkpoint"] = fs::absolute(load).string();
  nlohmann::ordered_json quantize_args;
  for (const auto& p : passes)
    if (p.name == "quantize") {
      quantize_args = p.args;
      break;
    }
  meta["quantization"] = pipe.plan ? QuantizationMeta(*pipe.plan, quantize_args, info.spec)
                                   : info.meta.value("quantization", nlohmann::json());
  meta["transform"] = {{"config", fs::absolute(o.config_path).string()},
                       {"passes", res.passes},
                       {"fine_tune_epochs", o.fine_tune_epochs}};
  return meta;
}

absl::StatusOr<TransformResult> Run(const TransformOptions& o) {
  TransformResult res;
  ConfigLayers layers = NewConfigLayers();
  QSWEEP_RETURN_IF_ERROR(LoadTomlConfigFile(o.config_path, layers));
  QSWEEP_RETURN_IF_ERROR(CheckTransformTable(layers.tables));
  nlohmann::ordered_json passes_table =
      layers.tables.contains("passes") ? layers.tables["passes"] : nlohmann::ordered_json();
  QSWEEP_ASSIGN_OR_RETURN(std::vector<PassSpec> passes, ParsePassList(passes_table));
  if (passes.empty())
    return absl::InvalidArgumentError(absl::StrCat(o.config_path, ": no [passes.*] table to run"));
  QSWEEP_RETURN_IF_ERROR(CheckReportFileNames(passes, o.plain_report_names));

  std::string load = o.load;
  if (load.empty() && layers.file.contains("load_name") && layers.file["load_name"].is_string())
    load = layers.file["load_name"].get<std::string>();
  if (load.empty())
    return absl::InvalidArgumentError("no checkpoint: give --load CKPT or load_name in the config");
  QSWEEP_ASSIGN_OR_RETURN(CheckpointInfo info, ReadCheckpointInfo(load));
  QSWEEP_ASSIGN_OR_RETURN(TrainConfig cfg, MergedConfig(layers, info.meta, o.overrides));
  if (cfg.model.empty() || cfg.model != info.spec.name) cfg.model = info.spec.name;
  QSWEEP_ASSIGN_OR_RETURN(torch::Device device, ResolveDevice(cfg.device, cfg.accelerator));
  res.device = device.str();
  QSWEEP_ASSIGN_OR_RETURN(auto net, LoadCheckpointNetwork(load, device, &info));
  QSWEEP_RETURN_IF_ERROR(
      ApplyQuantizationMeta(*net, info.meta.value("quantization", nlohmann::json())));

  Graph graph = BuildGraph(info.spec, cfg.batch_size);
  QSWEEP_RETURN_IF_ERROR(FillGraphShapes(graph, *net, cfg.batch_size));
  QSWEEP_RETURN_IF_ERROR(ValidatePasses(passes, graph));

  std::string& text = res.text;
  absl::StrAppend(&text, "Transforming model '", info.spec.name, "' from ", load, " on ",
                  device.str(), "\n");
  absl::StrAppend(&text, CheckpointNotes(layers.file, info));
  Dataset data;
  const bool have_data = NeedsData(passes, o);
  if (have_data) {
    QSWEEP_ASSIGN_OR_RETURN(data, LoadTransformData(cfg, info, text));
  }
  nlohmann::ordered_json evals = nlohmann::ordered_json::object();
  auto record = [&](const std::string& key, const char* label) {
    auto [x, y] = SplitTensors(data.test, data.n_features, device);
    EvalResult r = EvaluateNetwork(*net, x, y, cfg.batch_size);
    res.metrics["test_loss_" + key] = r.loss;
    res.metrics["test_acc_" + key] = r.accuracy;
    evals[key] = {{"test_loss", r.loss}, {"test_acc", r.accuracy}, {"rows", r.rows}};
    if (o.callback != nullptr) {
      o.callback->OnMetric({"test_loss_" + key, 0, 0, r.loss});
      o.callback->OnMetric({"test_acc_" + key, 0, 0, r.accuracy});
    }
    absl::StrAppend(&text, MetricLine(label, r));
  };
  if (o.evaluate) record("before", "Before passes");

  TorchBackend backend(*net, have_data ? &data : nullptr, cfg.batch_size,
                       static_cast<uint64_t>(cfg.seed), device);
  QSWEEP_ASSIGN_OR_RETURN(PipelineResult pipe,
                          RunPasses(passes, graph, backend, PipelineOptions{}));
  for (const auto& out : pipe.outputs) {
    res.passes.push_back(out.pass);
    absl::StrAppend(&text, "INFO     ", out.pass, "\n", out.text, "\n");
  }
  if (o.evaluate) record("after_passes", "After passes");
  std::string tune_log;
  if (o.fine_tune_epochs > 0) {
    QSWEEP_RETURN_IF_ERROR(FineTune(net, data, cfg, o.fine_tune_epochs, o.callback, tune_log));
    absl::StrAppend(&text, tune_log);
    record("after_finetune", "After quantization-aware fine-tuning");
    if (o.evaluate) {
      double gain = res.metrics["test_acc_after_finetune"] - res.metrics["test_acc_after_passes"];
      res.metrics["accuracy_recovered_by_finetune"] = gain;
      evals["accuracy_recovered_by_finetune"] = gain;
      absl::StrAppend(&text, absl::StrFormat("Fine-tuning changed test accuracy by %+.5f\n", gain));
    }
  }

  const fs::path dir = OutputDir(o, cfg);
  res.output_dir = dir.string();
  for (const auto& out : pipe.outputs)
    for (const auto& [rel, content] : out.files) {
      // Checked again where it is written (the names chosen by the config were
      // checked above, with the stricter rule where it applies): a report never
      // lands outside `dir`.
      QSWEEP_RETURN_IF_ERROR(CheckReportFileName(absl::StrCat("passes.", out.pass, ": report file"),
                                                 rel, /*plain_names_only=*/false));
      QSWEEP_RETURN_IF_ERROR(WriteFile(dir / rel, content, res.files));
    }
  res.checkpoint = (dir / "transformed_ckpt" / "transformed.ckpt").string();
  fs::create_directories(dir / "transformed_ckpt");
  QSWEEP_RETURN_IF_ERROR(WriteCheckpoint(res.checkpoint, *net, nullptr,
                                         TransformedMeta(o, load, info, passes, pipe, res)));
  res.files.push_back(res.checkpoint);
  QSWEEP_RETURN_IF_ERROR(WriteFile(dir / "transformed_ckpt" / "node_meta_param.toml",
                                   NodeMetaParamToml(pipe.graph), res.files));
  res.state_dict = (dir / "transformed_ckpt" / "state_dict.pt").string();
  QSWEEP_RETURN_IF_ERROR(ExportStateDict(res.checkpoint, res.state_dict));
  res.files.push_back(res.state_dict);

  res.report = nlohmann::ordered_json::object();
  res.report["model"] = info.spec.name;
  res.report["checkpoint"] = fs::absolute(load).string();
  res.report["dataset"] = have_data ? data.DisplayName() : "";
  res.report["device"] = device.str();
  res.report["batch_size"] = cfg.batch_size;
  res.report["evaluation"] = evals;
  res.report["passes"] = pipe.ToJson();
  res.report["transformed_checkpoint"] = res.checkpoint;
  QSWEEP_RETURN_IF_ERROR(
      WriteFile(dir / "transform_report.json", res.report.dump(2) + "\n", res.files));
  QSWEEP_RETURN_IF_ERROR(WriteFile(dir / "transform_report.txt", text, res.files));
  absl::StrAppend(&text, "Saved transformed checkpoint to ", res.checkpoint,
                  "\nTransformation is completed\n");
  return res;
}

}  // namespace

absl::StatusOr<TransformResult> RunTransform(const TransformOptions& options) {
  try {
    return Run(options);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("transform with config '", options.config_path, "' failed: ", e.what()));
  }
}

absl::StatusOr<std::vector<float>> RunCheckpointForward(const std::string& checkpoint,
                                                        const std::vector<float>& x, int64_t rows) {
  try {
    CheckpointInfo info;
    QSWEEP_ASSIGN_OR_RETURN(auto net, LoadCheckpointNetwork(checkpoint, torch::kCPU, &info));
    QSWEEP_RETURN_IF_ERROR(
        ApplyQuantizationMeta(*net, info.meta.value("quantization", nlohmann::json())));
    if (rows <= 0 || static_cast<int64_t>(x.size()) != rows * info.spec.in_features)
      return absl::InvalidArgumentError(
          absl::StrCat("input must be rows x ", info.spec.in_features));
    torch::NoGradGuard no_grad;
    net->eval();
    torch::Tensor in = torch::from_blob(const_cast<float*>(x.data()), {rows, info.spec.in_features},
                                        torch::kFloat);
    return ToVector(net->Forward(in));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("running '", checkpoint, "' failed: ", e.what()));
  }
}

}  // namespace qsweep
