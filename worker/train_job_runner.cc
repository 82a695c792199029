#include "worker/train_job_runner.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "worker/core/config/train_config.h"
#include "worker/core/data/dataset.h"
#include "worker/core/data/prepared_file.h"
#include "worker/core/model/model_spec.h"
#include "worker/core/torch/checkpoint.h"
#include "worker/core/torch/packed_trainer.h"
#include "worker/core/torch/pass_runner.h"
#include "worker/core/torch/trainer.h"
#include "worker/dataset_cache.h"

namespace qsweep {
namespace {

// Forwards the trainer's callbacks to the worker's job context. Resume states
// go out at most once per `resume_interval_ms` (0 = after every epoch); the
// latest one not sent goes out with SendLatest() (before a hand-back).
class ContextCallback final : public TrainCallback {
 public:
  explicit ContextCallback(JobContext& context, int64_t resume_interval_ms = 0)
      : context_(context),
        interval_(std::chrono::milliseconds(resume_interval_ms)),
        last_sent_(std::chrono::steady_clock::now()) {}
  void OnMetric(const MetricPoint& m) override {
    v1::Metric metric;
    metric.set_name(m.name);
    metric.set_step(m.step);
    metric.set_epoch(m.epoch);
    metric.set_value(m.value);
    context_.ReportMetric(metric);
  }
  void OnProgress(const TrainProgress& p) override {
    v1::JobProgress progress;
    progress.set_epoch(p.epoch);
    progress.set_max_epochs(p.max_epochs);
    progress.set_batch_in_epoch(p.batch_in_epoch);
    progress.set_batches_per_epoch(p.batches_per_epoch);
    progress.set_global_step(p.global_step);
    progress.set_train_loss(p.train_loss);
    progress.set_train_acc(p.train_acc);
    progress.set_val_acc(p.val_acc);
    progress.set_elapsed_seconds(p.elapsed_seconds);
    context_.ReportProgress(progress);
  }
  bool ShouldStop() override { return context_.ShouldStop(); }
  void OnResumeState(const std::string& path, int64_t epochs_done) override {
    latest_path_ = path;
    latest_ = epochs_done;
    if (std::chrono::steady_clock::now() - last_sent_ >= interval_) Send();
  }
  // Sends the latest state if it was not sent yet (the trial stopped: the
  // next attempt continues from it).
  void SendLatest() {
    if (latest_ > sent_) Send();
  }

 private:
  void Send() {
    // A failed upload only means a later attempt starts from an older state.
    if (context_.SaveResumeState(latest_path_, latest_).ok()) sent_ = latest_;
    last_sent_ = std::chrono::steady_clock::now();
  }
  JobContext& context_;
  const std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_sent_;
  std::string latest_path_;
  int64_t latest_ = 0;  // epochs of the latest state written
  int64_t sent_ = 0;    // epochs of the latest state sent
};

JobOutcome Failed(const v1::Job& job, const std::string& what) {
  JobOutcome o;
  o.kind = JobOutcome::Kind::kFailed;
  o.error = absl::StrCat("job ", job.id(), ": ", what);
  return o;
}

// TRANSFORM jobs with a served dataset: fetches it into the cache under
// `data_dir`, places it in a folder of the job's work dir under the name the
// pass runner looks for, and points `overrides` (data_dir and the trial's
// dataset keys) at it, so the evaluation runs on the served file.
absl::Status StageServedDataset(const v1::Job& job, JobContext& context,
                                const std::string& data_dir, nlohmann::json& overrides) {
  const nlohmann::json effective = nlohmann::json::parse(job.config_json(), nullptr, false);
  if (!effective.is_object()) return absl::InvalidArgumentError("config_json is not a JSON object");
  auto config = TrainConfigFromJson(effective);
  if (!config.ok()) return config.status();
  std::string dir = !data_dir.empty() ? data_dir : config->data_dir;
  if (dir.empty()) dir = DefaultDataDir();
  auto cached = EnsureCachedDataset(dir, job.dataset_sha256(), [&context](const std::string& sha) {
    return context.FetchArtifact(sha);
  });
  if (!cached.ok()) return cached.status();
  // The pass runner loads the dataset by name from a data dir: give it a
  // private one holding the served file under the name it looks for.
  DatasetRequest request;
  request.name = config->dataset;
  request.cache_dir = (std::filesystem::path(context.WorkDir()) / "served-data").string();
  request.synthetic_rows = config->synthetic_rows;
  request.synthetic_seed = static_cast<uint64_t>(config->synthetic_seed);
  const std::filesystem::path target = PreparedPath(request);
  std::error_code ec;
  std::filesystem::create_directories(target.parent_path(), ec);
  std::filesystem::remove(target, ec);
  std::filesystem::create_hard_link(*cached, target, ec);
  if (ec) std::filesystem::copy_file(*cached, target, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot place dataset ", job.dataset_sha256(), " at ", target.string()));
  }
  overrides["data_dir"] = request.cache_dir;
  for (const char* key : {"dataset", "synthetic_rows", "synthetic_seed"})
    if (effective.contains(key) && !effective[key].is_null()) overrides[key] = effective[key];
  return absl::OkStatus();
}

}  // namespace

TrainJobRunner::TrainJobRunner(TrainJobRunnerOptions options) : options_(std::move(options)) {}
TrainJobRunner::~TrainJobRunner() = default;

std::shared_ptr<const Dataset> TrainJobRunner::LoadCached(const std::string& key,
                                                          const std::string& name,
                                                          const std::string& dir, int64_t rows,
                                                          int64_t seed, std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);  // one load at a time; later jobs reuse it
  auto it = datasets_.find(key);
  if (it != datasets_.end()) return it->second;
  DatasetRequest request;
  request.name = name;
  request.cache_dir = dir;
  request.synthetic_rows = rows;
  request.synthetic_seed = static_cast<uint64_t>(seed);
  auto data = LoadDataset(request);
  if (!data.ok()) {
    error = std::string(data.status().message());
    return nullptr;
  }
  auto shared = std::make_shared<const Dataset>(std::move(*data));
  datasets_[key] = shared;
  return shared;
}

std::shared_ptr<const Dataset> TrainJobRunner::LoadServed(const std::string& sha256,
                                                          const std::string& dir,
                                                          JobContext& context, std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);  // one load at a time; later jobs reuse it
  const std::string key = "sha256:" + sha256;
  auto it = datasets_.find(key);
  if (it != datasets_.end()) return it->second;
  auto path = EnsureCachedDataset(
      dir, sha256, [&context](const std::string& sha) { return context.FetchArtifact(sha); });
  if (!path.ok()) {
    error = std::string(path.status().message());
    return nullptr;
  }
  auto data = ReadPreparedFile(*path);
  if (!data.ok()) {
    error = absl::StrCat("dataset ", sha256, ": ", data.status().message());
    return nullptr;
  }
  auto shared = std::make_shared<const Dataset>(std::move(*data));
  datasets_[key] = shared;
  return shared;
}

JobOutcome TrainJobRunner::Run(const v1::Job& job, JobContext& context) {
  if (job.kind() == v1::TRANSFORM) return RunTransformJob(job, context);
  if (job.kind() != v1::TRAIN) return Failed(job, "job kind is not TRAIN or TRANSFORM");
  return RunTrain(job, context);
}

JobOutcome TrainJobRunner::RunTransformJob(const v1::Job& job, JobContext& context) {
  if (job.input_checkpoint_sha256().empty()) return Failed(job, "no input checkpoint");
  // Defence in depth: the server refuses these at submit; a worker checks again.
  {
    ConfigLayers layers = NewConfigLayers();
    absl::Status s = LoadTomlConfig(job.transform_toml(), "transform config", layers);
    if (s.ok()) s = CheckServiceConfig(layers.file, "transform config: ");
    const nlohmann::json trained = nlohmann::json::parse(job.config_json(), nullptr, false);
    if (s.ok() && !job.config_json().empty())
      s = CheckServiceConfig(trained, "job config: ", /*allow_default_project_dir=*/true);
    if (!s.ok()) return Failed(job, std::string(s.message()));
  }
  auto bytes = context.FetchArtifact(job.input_checkpoint_sha256());
  if (!bytes.ok())
    return Failed(job, absl::StrCat("fetching input checkpoint ", job.input_checkpoint_sha256(),
                                    ": ", bytes.status().message()));
  const std::filesystem::path dir(context.WorkDir());
  const std::string load = (dir / "input.ckpt").string();
  const std::string config = (dir / "transform.toml").string();
  std::ofstream(load, std::ios::binary) << *bytes;
  std::ofstream(config) << job.transform_toml();
  nlohmann::json opts = nlohmann::json::parse(job.transform_json(), nullptr, false);
  ContextCallback callback(context);
  TransformOptions options;
  options.config_path = config;
  options.load = load;
  options.overrides = {{"project_dir", (dir / "out").string()}};
  // This worker's device (its slot's, or --device), never the one the
  // checkpoint was trained on.
  options.overrides["device"] = context.Device().empty() ? options_.device : context.Device();
  {  // never more intra-op threads than this machine has cores
    const nlohmann::json effective = nlohmann::json::parse(job.config_json(), nullptr, false);
    int64_t threads = 1;
    if (effective.is_object() && effective.contains("threads") &&
        effective["threads"].is_number_integer())
      threads = effective["threads"].get<int64_t>();
    options.overrides["threads"] =
        ThreadsForWorker(threads, static_cast<int64_t>(std::thread::hardware_concurrency()));
  }
  options.plain_report_names = true;
  if (!options_.data_dir.empty()) options.overrides["data_dir"] = options_.data_dir;
  if (!job.dataset_sha256().empty()) {
    if (auto s = StageServedDataset(job, context, options_.data_dir, options.overrides); !s.ok())
      return Failed(job, absl::StrCat("loading dataset: ", s.message()));
  }
  if (opts.is_object()) options.fine_tune_epochs = opts.value("fine_tune_epochs", int64_t{0});
  options.callback = &callback;
  auto result = RunTransform(options);
  if (!result.ok()) return Failed(job, std::string(result.status().message()));
  JobOutcome o;
  o.kind = JobOutcome::Kind::kSucceeded;
  o.final_metrics = result->metrics;
  o.result_json = nlohmann::json{{"passes", result->passes}, {"device", result->device}}.dump();
  if (!result->checkpoint.empty())
    o.outputs.push_back({"transformed", "checkpoint", result->checkpoint});
  if (!result->state_dict.empty())
    o.outputs.push_back({"transformed_state_dict", "state_dict", result->state_dict});
  o.reports.push_back({"transform", result->report.dump(2), result->text});
  return o;
}

absl::StatusOr<TrainJobRunner::PreparedTrain> TrainJobRunner::PrepareTrain(const v1::Job& job,
                                                                           JobContext& context) {
  nlohmann::json effective = nlohmann::json::parse(job.config_json(), nullptr, false);
  if (effective.is_discarded() || !effective.is_object())
    return absl::InvalidArgumentError("config_json is not a JSON object");
  // Defence in depth: the server refuses these at submit; a worker checks again.
  QSWEEP_RETURN_IF_ERROR(
      CheckServiceConfig(effective, "job config: ", /*allow_default_project_dir=*/true));
  PreparedTrain p;
  QSWEEP_ASSIGN_OR_RETURN(p.config, TrainConfigFromJson(effective));
  p.config.device = context.Device().empty() ? options_.device : context.Device();
  p.config.project_dir = context.WorkDir();
  // Never more intra-op threads than this machine has cores.
  p.config.threads =
      ThreadsForWorker(p.config.threads, static_cast<int64_t>(std::thread::hardware_concurrency()));
  const std::string dir = !options_.data_dir.empty() ? options_.data_dir : p.config.data_dir;
  std::string error;
  if (!job.dataset_sha256().empty()) {  // served by the coordinator
    p.data = LoadServed(job.dataset_sha256(), dir.empty() ? DefaultDataDir() : dir, context, error);
  } else {
    const std::string key = absl::StrCat(p.config.dataset, "|", dir, "|", p.config.synthetic_rows,
                                         "|", p.config.synthetic_seed);
    p.data = LoadCached(key, p.config.dataset, dir, p.config.synthetic_rows,
                        p.config.synthetic_seed, error);
  }
  if (!p.data) return absl::InvalidArgumentError("loading dataset: " + error);
  // A zoo name or the inline definition the job carries; never a file.
  QSWEEP_ASSIGN_OR_RETURN(p.spec, ServiceModel(effective.value("model", nlohmann::json()),
                                               p.data->n_features, p.data->n_classes));
  p.options.checkpoint_dir = (std::filesystem::path(context.WorkDir()) / "checkpoints").string();
  p.options.provenance = {
      {"job_id", job.id()}, {"sweep_id", job.sweep_id()}, {"attempt", job.attempt()}};
  const std::filesystem::path resume_dir = std::filesystem::path(context.WorkDir()) / "resume";
  if (options_.resume_states) p.options.resume_state_out = (resume_dir / "state.qsr").string();
  if (!job.resume_sha256().empty()) {  // continue where an earlier attempt stopped
    auto bytes = context.FetchArtifact(job.resume_sha256());
    if (!bytes.ok()) {
      return absl::Status(bytes.status().code(),
                          absl::StrCat("fetching resume state ", job.resume_sha256(), ": ",
                                       bytes.status().message()));
    }
    if (Sha256Hex(*bytes) != job.resume_sha256())
      return absl::DataLossError(
          absl::StrCat("resume state ", job.resume_sha256(), " arrived with another hash"));
    std::error_code ec;
    std::filesystem::create_directories(resume_dir, ec);
    p.options.resume_from = (resume_dir / "from.qsr").string();
    std::ofstream out(p.options.resume_from, std::ios::binary | std::ios::trunc);
    out.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    if (!out) return absl::InternalError("cannot write " + p.options.resume_from);
  }
  return p;
}

JobOutcome TrainJobRunner::OutcomeOf(const PreparedTrain& p, const TrainResult& result) {
  if (result.status == "cancelled") {
    JobOutcome o;
    o.kind = JobOutcome::Kind::kStopped;
    return o;
  }
  JobOutcome o;
  o.kind = JobOutcome::Kind::kSucceeded;  // a diverged trial is a result, not an error
  o.final_metrics = result.final_metrics;
  o.final_metrics["samples_per_second"] = result.samples_per_second;
  o.final_metrics["wall_seconds"] = result.wall_seconds;
  o.result_json = nlohmann::json{{"status", result.status},
                                 {"message", result.message},
                                 {"global_steps", result.global_steps},
                                 {"epochs_completed", result.epochs_completed},
                                 {"resumed_from_epoch", result.resumed_from_epoch},
                                 {"threads", p.config.threads},
                                 {"device", p.config.device},
                                 {"dataset", p.data->DisplayName()},
                                 {"dataset_sha256", p.data->sha256}}
                      .dump();
  if (!result.best_checkpoint.empty()) {
    o.outputs.push_back({"best", "checkpoint", result.best_checkpoint});
    const std::string sd = result.best_checkpoint + ".state_dict.pt";
    if (ExportStateDict(result.best_checkpoint, sd).ok())
      o.outputs.push_back({"best_state_dict", "state_dict", sd});
  }
  if (!result.last_checkpoint.empty())
    o.outputs.push_back({"last", "checkpoint", result.last_checkpoint});
  return o;
}

JobOutcome TrainJobRunner::RunTrain(const v1::Job& job, JobContext& context) {
  auto p = PrepareTrain(job, context);
  if (!p.ok()) return Failed(job, std::string(p.status().message()));
  ContextCallback callback(context, options_.resume_interval_ms);
  p->options.callback = &callback;
  auto result = TrainModel(p->config, p->spec, *p->data, p->options);
  if (!result.ok()) return Failed(job, std::string(result.status().message()));
  if (result->status == "cancelled") callback.SendLatest();  // stopped: handed back next
  return OutcomeOf(*p, *result);
}

namespace {

// A pack member's callback: the job's context, and its outcome reported the
// moment the trainer says the trial ended.
class PackMemberCallback final : public TrainCallback {
 public:
  PackMemberCallback(JobContext& context, int64_t resume_interval_ms,
                     std::function<void(const TrainResult&)> finished)
      : context_(context), forward_(context, resume_interval_ms), finished_(std::move(finished)) {}
  void OnMetric(const MetricPoint& m) override { forward_.OnMetric(m); }
  void OnProgress(const TrainProgress& p) override { forward_.OnProgress(p); }
  bool ShouldStop() override { return context_.ShouldStop(); }
  void OnResumeState(const std::string& path, int64_t epochs_done) override {
    forward_.OnResumeState(path, epochs_done);
  }
  void OnFinished(const TrainResult& result) override {
    if (result.status == "cancelled") forward_.SendLatest();  // stopped: handed back next
    finished_(result);
  }

 private:
  JobContext& context_;
  ContextCallback forward_;
  std::function<void(const TrainResult&)> finished_;
};

}  // namespace

void TrainJobRunner::RunPack(const std::vector<const v1::Job*>& jobs,
                             const std::vector<JobContext*>& contexts, const PackDone& done) {
  std::vector<bool> reported(jobs.size(), false);
  auto report = [&](size_t i, JobOutcome o) {
    if (reported[i]) return;
    reported[i] = true;
    done(i, std::move(o));
  };
  // Jobs that are not TRAIN, fail to prepare or cannot share the first
  // trainable job's pack run alone, after the pack.
  std::vector<size_t> alone;
  std::vector<size_t> members;
  std::vector<PreparedTrain> prepared(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i]->kind() != v1::TRAIN) {
      alone.push_back(i);
      continue;
    }
    auto p = PrepareTrain(*jobs[i], *contexts[i]);
    if (!p.ok()) {
      report(i, Failed(*jobs[i], std::string(p.status().message())));
      continue;
    }
    prepared[i] = std::move(*p);
    // A trial resuming from a state trains alone: a pack starts at one epoch.
    const bool fits =
        prepared[i].options.resume_from.empty() &&
        (members.empty()
             ? CheckPackableModel(prepared[i].spec).ok()
             : prepared[i].data == prepared[members[0]].data &&
                   prepared[i].spec.layers.size() == prepared[members[0]].spec.layers.size() &&
                   CheckPackable(prepared[members[0]].config, prepared[i].config).ok());
    (fits ? members : alone).push_back(i);
  }
  if (members.size() == 1) {
    alone.insert(alone.begin(), members[0]);
    members.clear();
  }
  if (!members.empty()) {
    std::vector<std::unique_ptr<PackMemberCallback>> callbacks;
    std::vector<PackedTrial> trials;
    for (size_t i : members) {
      callbacks.push_back(std::make_unique<PackMemberCallback>(
          *contexts[i], options_.resume_interval_ms,
          [&, i](const TrainResult& result) { report(i, OutcomeOf(prepared[i], result)); }));
      PackedTrial t;
      t.config = prepared[i].config;
      t.options = prepared[i].options;
      t.options.callback = callbacks.back().get();
      trials.push_back(std::move(t));
    }
    const size_t first = members[0];
    auto results = TrainPacked(trials, prepared[first].spec, *prepared[first].data);
    for (size_t k = 0; k < members.size(); ++k) {
      const size_t i = members[k];
      if (!results.ok())
        report(i, Failed(*jobs[i], std::string(results.status().message())));
      else
        report(i, OutcomeOf(prepared[i], (*results)[k]));  // if OnFinished did not come
    }
  }
  for (size_t i : alone)
    if (!reported[i]) report(i, Run(*jobs[i], *contexts[i]));
}

}  // namespace qsweep
