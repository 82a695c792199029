#include "worker/local/local_commands.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/dates.h"
#include "common/status_macros.h"
#include "common/table.h"
#include "worker/core/torch/checkpoint.h"
#include "worker/core/torch/pass_runner.h"
#include "worker/core/torch/trainer.h"
#include "worker/local/progress.h"
#include "worker/local/train_args.h"

namespace qsweep {
namespace fs = std::filesystem;
namespace {

// Log lines go to stdout, flushed at once so that they interleave correctly
// with the progress bar on stderr when both are redirected to one file.
void Info(const std::string& msg) {
  std::fprintf(stdout, "INFO     %s\n", msg.c_str());
  std::fflush(stdout);
}

DatasetRequest RequestFor(const TrainConfig& c) {
  DatasetRequest r;
  r.name = c.dataset;
  r.cache_dir = c.data_dir;
  r.synthetic_rows = c.synthetic_rows;
  r.synthetic_seed = static_cast<uint64_t>(c.synthetic_seed);
  return r;
}

// Records every metric as CSV rows (name, step, epoch, value) next to the checkpoints.
class MetricsCsv : public TrainCallback {
 public:
  MetricsCsv(TrainCallback* next, const std::string& path) : next_(next), out_(path) {
    out_ << "name,step,epoch,value\n";
  }
  void OnMetric(const MetricPoint& m) override {
    out_ << m.name << "," << m.step << "," << m.epoch << "," << absl::StrFormat("%.17g", m.value)
         << "\n";
    next_->OnMetric(m);
  }
  void OnProgress(const TrainProgress& p) override { next_->OnProgress(p); }

 private:
  TrainCallback* next_;
  std::ofstream out_;
};

// MASE's -vN suffix for a run into a project that earlier runs wrote to:
// "" for the first run, then "-v1", "-v2", ... so that nothing is overwritten.
std::string RunSuffix(const fs::path& ckpt_dir, const fs::path& software_dir) {
  std::string suffix;
  for (int v = 1; fs::exists(ckpt_dir / absl::StrCat("best", suffix, ".ckpt")) ||
                  fs::exists(ckpt_dir / absl::StrCat("last", suffix, ".ckpt")) ||
                  fs::exists(software_dir / absl::StrCat("metrics", suffix, ".csv"));
       ++v)
    suffix = absl::StrCat("-v", v);
  return suffix;
}

// Moves best.ckpt/last.ckpt from `staging` into `dir` with `suffix`.
absl::StatusOr<std::pair<std::string, std::string>> PlaceCheckpoints(const fs::path& staging,
                                                                     const fs::path& dir,
                                                                     const std::string& suffix) {
  std::pair<std::string, std::string> out;
  std::error_code ec;
  for (const char* stem : {"best", "last"}) {
    fs::path from = staging / absl::StrCat(stem, ".ckpt");
    if (!fs::exists(from)) continue;
    fs::path to = dir / absl::StrCat(stem, suffix, ".ckpt");
    fs::rename(from, to, ec);
    if (ec)
      return absl::InternalError(
          absl::StrCat("cannot move checkpoint to ", to.string(), ": ", ec.message()));
    (std::string(stem) == "best" ? out.first : out.second) = to.string();
  }
  fs::remove_all(staging, ec);
  return out;
}

std::string MetricsTable(const std::map<std::string, double>& m) {
  Table t;
  t.headers = {"metric", "value"};
  for (const auto& [k, v] : m) t.rows.push_back({k, absl::StrFormat("%.5f", v)});
  return RenderTable(t, TableStyle::kOrgtbl);
}

absl::Status RunTrain(const std::vector<std::string>& args) {
  QSWEEP_ASSIGN_OR_RETURN(LocalArgs a, ParseLocalArgs("train", args, true));
  if (!a.help.empty()) {
    std::printf("%s", a.help.c_str());
    return absl::OkStatus();
  }
  QSWEEP_ASSIGN_OR_RETURN(TrainConfig c, TrainConfigFromJson(a.layers.Effective()));
  std::printf("Seed set to %lld\n", static_cast<long long>(c.seed));
  std::printf("%s\n", RenderArgumentTable(a.layers).c_str());
  if (c.device.empty() && (c.accelerator == "gpu" || c.accelerator == "cuda") && !CudaAvailable())
    Info(absl::StrCat("WARNING: accelerator '", c.accelerator,
                      "' asked for, but CUDA is not available here; training on the CPU"));
  Info(absl::StrCat("Initialising dataset '", c.dataset, "'..."));
  QSWEEP_ASSIGN_OR_RETURN(Dataset data, LoadDataset(RequestFor(c)));
  Info(absl::StrCat("Dataset: ", data.DisplayName(), ", ", data.train_val.rows,
                    " train rows (validation uses the same rows, as in MASE), ", data.test.rows,
                    " test rows, sha256 ", data.sha256.substr(0, 16)));
  if (data.synthetic) Info("NOTE: this dataset is SYNTHETIC; its accuracies are not JSC results");
  Info(absl::StrCat("Initialising model '", c.model, "'..."));
  QSWEEP_ASSIGN_OR_RETURN(ModelSpec spec, ResolveModel(c.model, data.n_features, data.n_classes));
  Info(absl::StrCat("Model '", spec.name, "': ", spec.TrainableParams(), " trainable params"));

  // A model given as a file names the project by the model's name, not its path.
  TrainConfig named = c;
  named.model = spec.name;
  fs::path project = fs::path(c.project_dir) / ProjectName(named, TodayUtc());
  fs::path ckpt_dir = project / "software" / "training_ckpts";
  fs::path staging = ckpt_dir / absl::StrCat(".staging-", getpid());
  std::error_code ec;
  fs::create_directories(project / "hardware", ec);
  fs::create_directories(staging, ec);
  if (ec)
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", staging.string(), ": ", ec.message()));
  Info(absl::StrCat("Project will be created at ", fs::absolute(project).string()));

  const std::string suffix = RunSuffix(ckpt_dir, project / "software");
  const fs::path metrics_path = project / "software" / absl::StrCat("metrics", suffix, ".csv");
  ProgressPrinter printer(stderr, stdout, isatty(fileno(stderr)) != 0);
  MetricsCsv metrics(&printer, metrics_path.string());
  TrainOptions opts;
  opts.checkpoint_dir = staging.string();
  opts.callback = &metrics;
  opts.provenance = {{"command", "qsweep train"}};
  Info(absl::StrCat("Training model '", spec.name, "'..."));
  absl::StatusOr<TrainResult> r = TrainModel(c, spec, data, opts);
  printer.Finish();
  if (!r.ok()) {
    fs::remove_all(staging, ec);
    return r.status();
  }
  QSWEEP_ASSIGN_OR_RETURN(auto placed, PlaceCheckpoints(staging, ckpt_dir, suffix));
  std::printf("%s\n", MetricsTable(r->final_metrics).c_str());
  Info(absl::StrFormat("%lld steps, %.1f s, %.0f samples/s",
                       static_cast<long long>(r->global_steps), r->wall_seconds,
                       r->samples_per_second));
  if (!placed.first.empty()) Info(absl::StrCat("Best checkpoint: ", placed.first));
  if (!placed.second.empty()) Info(absl::StrCat("Last checkpoint: ", placed.second));
  Info(absl::StrCat("Metrics: ", metrics_path.string()));
  if (r->status != "succeeded") return absl::AbortedError(r->message);
  Info("Training is completed");
  return absl::OkStatus();
}

// Prints a test result (and writes it as JSON with -o), for checkpoints and
// state dicts alike.
absl::Status ReportTest(const LocalArgs& a, const std::string& load, const Dataset& data,
                        const EvalResult& r) {
  std::printf("%s\n",
              MetricsTable({{"test_acc_epoch", r.accuracy}, {"test_loss_epoch", r.loss}}).c_str());
  if (!a.output.empty()) {
    nlohmann::json j = {
        {"checkpoint", load}, {"dataset", data.DisplayName()}, {"dataset_sha256", data.sha256},
        {"rows", r.rows},     {"test_acc_epoch", r.accuracy},  {"test_loss_epoch", r.loss}};
    std::ofstream out(a.output);
    if (!(out << j.dump(2) << "\n"))
      return absl::PermissionDeniedError(absl::StrCat("cannot write ", a.output));
    Info(absl::StrCat("Wrote ", a.output));
  }
  Info("Testing is completed");
  return absl::OkStatus();
}

// `qsweep test --load model.pt --load-type pt --model M [DATASET]`: a plain
// PyTorch state dict needs the model and dataset from the command line or config.
absl::Status RunTestStateDict(const LocalArgs& a, const std::string& load) {
  nlohmann::json eff = a.layers.Effective();
  if (!a.positionals.empty()) eff["dataset"] = a.positionals[0];
  if (!eff.value("model", nlohmann::json()).is_string() ||
      !eff.value("dataset", nlohmann::json()).is_string())
    return absl::InvalidArgumentError(
        "qsweep test --load-type pt: a state dict holds no model or dataset; give --model MODEL "
        "and DATASET (or --dataset)");
  QSWEEP_ASSIGN_OR_RETURN(TrainConfig c, TrainConfigFromJson(eff));
  QSWEEP_ASSIGN_OR_RETURN(Dataset data, LoadDataset(RequestFor(c)));
  QSWEEP_ASSIGN_OR_RETURN(ModelSpec spec, ResolveModel(c.model, data.n_features, data.n_classes));
  Info(absl::StrCat("Testing state dict ", load, " as model '", spec.name, "' on ",
                    data.DisplayName(), " (", data.test.rows, " test rows)"));
  QSWEEP_ASSIGN_OR_RETURN(EvalResult r,
                          EvaluateStateDict(spec, load, data, c.batch_size, c.device));
  return ReportTest(a, load, data, r);
}

absl::Status RunTest(const std::vector<std::string>& args) {
  QSWEEP_ASSIGN_OR_RETURN(LocalArgs a, ParseLocalArgs("test", args, false));
  if (!a.help.empty()) {
    std::printf("%s", a.help.c_str());
    return absl::OkStatus();
  }
  nlohmann::json eff = a.layers.Effective();
  std::string load = eff.value("load_name", nlohmann::json()).is_string()
                         ? eff["load_name"].get<std::string>()
                         : "";
  if (load.empty())
    return absl::InvalidArgumentError("qsweep test: --load CKPT is required (a qsweep checkpoint)");
  if (eff.value("load_type", std::string()) == "pt") return RunTestStateDict(a, load);
  QSWEEP_ASSIGN_OR_RETURN(CheckpointInfo info, ReadCheckpointInfo(load));
  // The dataset defaults to the one the checkpoint was trained on.
  nlohmann::json base = info.meta.value("config", nlohmann::json::object());
  for (auto& [k, v] : a.layers.file.items()) base[k] = v;
  for (auto& [k, v] : a.layers.cli.items()) base[k] = v;
  if (!a.positionals.empty()) base["dataset"] = a.positionals[0];
  base["model"] = info.spec.name;
  QSWEEP_ASSIGN_OR_RETURN(TrainConfig c, TrainConfigFromJson(base));
  Info(absl::StrCat("Loading checkpoint ", load));
  QSWEEP_ASSIGN_OR_RETURN(Dataset data, LoadDataset(RequestFor(c)));
  bool quantized = info.meta.contains("quantization") && !info.meta["quantization"].is_null() &&
                   !info.meta["quantization"].empty();
  Info(absl::StrCat("Testing model '", info.spec.name, "'", quantized ? " (quantized)" : "", " on ",
                    data.DisplayName(), " (", data.test.rows, " test rows)"));
  std::string trained_on = info.meta.value("dataset_sha256", std::string());
  if (!trained_on.empty() && trained_on != data.sha256)
    Info(absl::StrCat("WARNING: the checkpoint was trained on dataset sha256 ",
                      trained_on.substr(0, 16), "; this dataset is ", data.sha256.substr(0, 16)));
  QSWEEP_ASSIGN_OR_RETURN(EvalResult r,
                          EvaluateCheckpoint(load, data, "test", c.batch_size, c.device));
  return ReportTest(a, load, data, r);
}
absl::Status RunTransformCommand(const std::vector<std::string>& args) {
  QSWEEP_ASSIGN_OR_RETURN(LocalArgs a, ParseLocalArgs("transform", args, true));
  if (!a.help.empty()) {
    std::printf("%s", a.help.c_str());
    return absl::OkStatus();
  }
  if (a.config_path.empty())
    return absl::InvalidArgumentError(
        "qsweep transform: --config FILE.toml is required (it holds the [passes.*] tables)");
  TransformOptions opts;
  opts.config_path = a.config_path;
  opts.overrides = a.layers.cli;
  if (opts.overrides.contains("load_name") && opts.overrides["load_name"].is_string()) {
    opts.load = opts.overrides["load_name"].get<std::string>();
    opts.overrides.erase("load_name");
  }
  opts.evaluate = !a.no_eval;
  opts.output_dir = a.output;
  opts.fine_tune_epochs = a.fine_tune_epochs;
  QSWEEP_ASSIGN_OR_RETURN(TransformResult r, RunTransform(opts));
  std::printf("%s", r.text.c_str());
  if (!r.text.empty() && r.text.back() != '\n') std::printf("\n");
  Info(absl::StrCat("Reports written to ", r.output_dir));
  return absl::OkStatus();
}

absl::Status RunCheckpoint(const std::vector<std::string>& args) {
  constexpr const char* kUsage =
      "usage: qsweep checkpoint export CKPT -o FILE.pt\n"
      "  writes the parameters and buffers as a plain dict of tensors that PyTorch loads with\n"
      "  torch.load + load_state_dict(strict=True)";
  for (const auto& w : args)
    if (w == "-h" || w == "--help") {
      std::printf("%s\n", kUsage);
      return absl::OkStatus();
    }
  if (args.size() < 1 || args[0] != "export")
    return absl::InvalidArgumentError("usage: qsweep checkpoint export CKPT -o FILE.pt");
  std::string in, out;
  for (size_t i = 1; i < args.size(); ++i) {
    if ((args[i] == "-o" || args[i] == "--output") && i + 1 < args.size())
      out = args[++i];
    else if (in.empty() && args[i].rfind("-", 0) != 0)
      in = args[i];
    else
      return absl::InvalidArgumentError(
          absl::StrCat("qsweep checkpoint export: unexpected argument '", args[i], "'"));
  }
  if (in.empty() || out.empty())
    return absl::InvalidArgumentError("usage: qsweep checkpoint export CKPT -o FILE.pt");
  QSWEEP_RETURN_IF_ERROR(ExportStateDict(in, out));
  Info(absl::StrCat("Wrote state dict to ", out));
  return absl::OkStatus();
}

}  // namespace

bool IsLocalCommand(const std::string& name) {
  return name == "train" || name == "test" || name == "transform" || name == "checkpoint";
}

int RunLocalCommand(const std::vector<std::string>& argv) {
  if (argv.empty()) return 2;
  std::vector<std::string> rest(argv.begin() + 1, argv.end());
  absl::Status s;
  if (argv[0] == "train")
    s = RunTrain(rest);
  else if (argv[0] == "test")
    s = RunTest(rest);
  else if (argv[0] == "transform")
    s = RunTransformCommand(rest);
  else if (argv[0] == "checkpoint")
    s = RunCheckpoint(rest);
  else
    s = absl::InvalidArgumentError(absl::StrCat("unknown local command '", argv[0], "'"));
  if (!s.ok()) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", std::string(s.message()).c_str());
    return absl::IsAborted(s) ? 3 : (absl::IsInvalidArgument(s) || absl::IsNotFound(s) ? 2 : 1);
  }
  return 0;
}

}  // namespace qsweep
