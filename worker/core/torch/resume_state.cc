// Per-epoch resume states (format in resume_state.h).
#include "worker/core/torch/resume_state.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/core/torch/checkpoint.h"
#include "worker/core/torch/checkpoint_io.h"
#include "worker/core/torch/trainer_internal.h"

namespace qsweep {
namespace {

namespace fs = std::filesystem;

constexpr char kRecordKey[] = "qsweep_resume";
constexpr char kStateKey[] = "state_dict";
constexpr char kOptimizerKey[] = "optimizer";
constexpr char kGeneratorKey[] = "generator";
constexpr char kBestKey[] = "best_checkpoint";
constexpr char kFormat[] = "qsweep-resume";
constexpr int kFormatVersion = 1;

absl::Status NotAState(const std::string& path, const std::string& why) {
  return absl::DataLossError(
      absl::StrCat("resume state '", path, "' is not a readable qsweep resume state: ", why));
}

// The first key (a.b.c) whose values differ, or "".
std::string FirstDifference(const nlohmann::json& a, const nlohmann::json& b,
                            const std::string& prefix) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [k, v] : a.items()) {
      const std::string key = prefix.empty() ? k : prefix + "." + k;
      if (!b.contains(k)) return key;
      std::string d = FirstDifference(v, b[k], key);
      if (!d.empty()) return d;
    }
    for (const auto& [k, v] : b.items())
      if (!a.contains(k)) return prefix.empty() ? k : prefix + "." + k;
    return "";
  }
  return a == b ? "" : (prefix.empty() ? "(value)" : prefix);
}

torch::Tensor BytesTensor(const std::string& bytes) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  if (!bytes.empty()) std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

std::string TensorBytes(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous().to(torch::kUInt8);
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()),
                     static_cast<size_t>(c.numel()));
}

nlohmann::json MetricsJson(const std::map<std::string, double>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
  return j;
}

std::map<std::string, double> MetricsFrom(const nlohmann::json& j) {
  std::map<std::string, double> m;
  if (!j.is_object()) return m;
  for (const auto& [k, v] : j.items())
    m[k] = v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN();
  return m;
}

}  // namespace

nlohmann::json ResumeIdentity(const TrainConfig& config, const ModelSpec& spec,
                              const Dataset& data) {
  nlohmann::json c = TrainConfigToJson(config);
  for (const char* local :
       {"device", "accelerator", "threads", "project_dir", "project", "data_dir", "log_level"})
    c.erase(local);
  return {{"config", c}, {"spec", ModelSpecToJson(spec)}, {"dataset_sha256", data.sha256}};
}

absl::Status WriteResumeState(const std::string& path, const nlohmann::json& identity,
                              const Network& net, const FlatOptimizer& optimizer,
                              const at::Generator& generator, const ResumeCounters& counters,
                              const std::string& best_checkpoint_path) {
  const nlohmann::json record = {{"format", kFormat},
                                 {"format_version", kFormatVersion},
                                 {"identity", identity},
                                 {"epochs_done", counters.epochs_done},
                                 {"global_step", counters.global_step},
                                 {"best_val_loss", std::isfinite(counters.best_val_loss)
                                                       ? nlohmann::json(counters.best_val_loss)
                                                       : nlohmann::json()},
                                 {"epochs_completed", counters.epochs_completed},
                                 {"final_metrics", MetricsJson(counters.final_metrics)},
                                 {"epoch_metrics", MetricsJson(counters.epoch_metrics)},
                                 {"train_seconds_total", counters.train_seconds_total},
                                 {"samples_total", counters.samples_total}};
  return WriteArchiveAtomically(
      path, "resume state", [&](torch::serialize::OutputArchive& archive) -> absl::Status {
        archive.write(kRecordKey, c10::IValue(record.dump()));
        WriteStateDict(archive, kStateKey, net);
        torch::serialize::OutputArchive opt;
        optimizer.Save(opt);
        archive.write(kOptimizerKey, opt);
        archive.write(kGeneratorKey, generator.get_state(), /*is_buffer=*/true);
        if (!best_checkpoint_path.empty()) {
          std::ifstream in(best_checkpoint_path, std::ios::binary);
          if (!in) {
            return absl::InternalError(absl::StrCat("writing resume state '", path,
                                                    "' failed: cannot read '", best_checkpoint_path,
                                                    "'"));
          }
          const std::string bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
          archive.write(kBestKey, BytesTensor(bytes), /*is_buffer=*/true);
        }
        return absl::OkStatus();
      });
}

absl::StatusOr<ResumeCounters> ReadResumeState(const std::string& path,
                                               const nlohmann::json& identity, int64_t max_epochs,
                                               Network& net, FlatOptimizer& optimizer,
                                               at::Generator& generator,
                                               const std::string& best_checkpoint_out,
                                               bool* has_best) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    return absl::NotFoundError(absl::StrCat("resume state '", path, "' does not exist"));
  if (has_best) *has_best = false;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, torch::Device(torch::kCPU));
    c10::IValue record_iv;
    if (!archive.try_read(kRecordKey, record_iv) || !record_iv.isString())
      return NotAState(path, "no qsweep_resume record");
    const nlohmann::json record = nlohmann::json::parse(record_iv.toStringRef(), nullptr, false);
    if (!record.is_object() || record.value("format", "") != kFormat ||
        record.value("format_version", 0) != kFormatVersion)
      return NotAState(path, "unknown format or format_version");
    const std::string differs =
        FirstDifference(record.value("identity", nlohmann::json()), identity, "");
    if (!differs.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "resume state '", path, "' belongs to another trial: '", differs, "' differs"));
    }
    ResumeCounters c;
    c.epochs_done = record.value("epochs_done", int64_t{0});
    c.global_step = record.value("global_step", int64_t{0});
    const nlohmann::json best = record.value("best_val_loss", nlohmann::json());
    if (best.is_number()) c.best_val_loss = best.get<double>();
    c.epochs_completed = record.value("epochs_completed", int64_t{0});
    c.final_metrics = MetricsFrom(record.value("final_metrics", nlohmann::json()));
    c.epoch_metrics = MetricsFrom(record.value("epoch_metrics", nlohmann::json()));
    c.train_seconds_total = record.value("train_seconds_total", 0.0);
    c.samples_total = record.value("samples_total", int64_t{0});
    if (c.epochs_done < 1 || c.global_step < 0)
      return NotAState(path, "epochs_done must be >= 1 and global_step >= 0");
    if (c.epochs_done >= max_epochs) {
      return absl::FailedPreconditionError(absl::StrCat("resume state '", path, "' has all ",
                                                        c.epochs_done, " epochs done (max_epochs ",
                                                        max_epochs, "): nothing to resume"));
    }
    c10::IValue state;
    if (!archive.try_read(kStateKey, state) || !state.isGenericDict())
      return NotAState(path, "no state_dict record");
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& entry : state.toGenericDict()) {
      if (!entry.key().isString() || !entry.value().isTensor())
        return NotAState(path, "state_dict holds a non-tensor entry");
      tensors.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
    }
    QSWEEP_RETURN_IF_ERROR(net.LoadStateDict(tensors, absl::StrCat("resume state '", path, "'")));
    torch::serialize::InputArchive opt;
    if (!archive.try_read(kOptimizerKey, opt)) return NotAState(path, "no optimizer state");
    QSWEEP_RETURN_IF_ERROR(optimizer.Load(opt));
    torch::Tensor gen_state;
    if (!archive.try_read(kGeneratorKey, gen_state, /*is_buffer=*/true))
      return NotAState(path, "no generator state");
    generator.set_state(gen_state);
    torch::Tensor best_bytes;
    if (archive.try_read(kBestKey, best_bytes, /*is_buffer=*/true) &&
        !best_checkpoint_out.empty()) {
      const std::string tmp = best_checkpoint_out + ".tmp";
      {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        const std::string bytes = TensorBytes(best_bytes);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        if (!out) return absl::InternalError(absl::StrCat("cannot write '", tmp, "'"));
      }
      fs::rename(tmp, best_checkpoint_out, ec);
      if (ec) {
        return absl::InternalError(
            absl::StrCat("cannot write '", best_checkpoint_out, "': ", ec.message()));
      }
      if (has_best) *has_best = true;
    }
    return c;
  } catch (const std::exception& e) {
    return NotAState(path, TorchMessage(e));
  }
}

}  // namespace qsweep
