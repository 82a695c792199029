// Scheduler: packing compatible pending TRAIN jobs into one lease answer, so
// that a worker trains them together on one slot (worker/core/torch/
// packed_trainer.h). Torch-free: compatibility comes from the effective
// config only.
#include <nlohmann/json.hpp>
#include <set>

#include "server/job_config.h"
#include "server/scheduler.h"
#include "worker/core/model/model_spec.h"

namespace qsweep {

namespace {

// The config keys every trial of a pack must share (packed_trainer.h
// CheckPackable, plus what selects the data and the model). Trials may
// differ in everything else: seed, learning_rate, weight_decay, max_epochs
// and provenance.
constexpr const char* kPackKeys[] = {"model",
                                     "dataset",
                                     "task",
                                     "batch_size",
                                     "training_optimizer",
                                     "max_steps",
                                     "trainer_precision",
                                     "accelerator",
                                     "device",
                                     "threads",
                                     "debug",
                                     "log_every_n_steps",
                                     "data_dir",
                                     "synthetic_rows",
                                     "synthetic_seed",
                                     "load_type",
                                     "accumulate_grad_batches"};

// Only scans this many pending jobs per pack, so a lease stays cheap with a
// long queue.
constexpr int kPackScan = 4096;

}  // namespace

std::string PackKeyOfConfig(const std::string& config_json, const std::string& dataset_sha256) {
  const nlohmann::json config = nlohmann::json::parse(config_json, nullptr, false);
  if (!config.is_object()) return "";
  const nlohmann::json model = config.value("model", nlohmann::json());
  // Dropout with p > 0 has no packed implementation: such trials train alone.
  auto spec = ServiceModel(model);
  if (!spec.ok()) return "";
  for (const auto& layer : spec->layers)
    if (layer.kind == LayerKind::kDropout && layer.p != 0.0) return "";
  nlohmann::json key = nlohmann::json::object();
  for (const char* k : kPackKeys) key[k] = config.contains(k) ? config[k] : nlohmann::json();
  key["dataset_sha256"] = dataset_sha256;
  return key.dump();
}

const std::string& Scheduler::PackKey(const v1::Job& job) const {
  auto it = pack_keys_.find(job.id());
  if (it != pack_keys_.end()) return it->second;
  std::string key;
  const auto sweep = sweeps_.find(job.sweep_id());
  if (job.kind() == v1::TRAIN && sweep != sweeps_.end() && !sweep->second.no_pack())
    key = PackKeyOfConfig(EffectiveConfigJson(sweep->second, job), job.dataset_sha256());
  return pack_keys_.emplace(job.id(), std::move(key)).first->second;
}

std::vector<std::vector<std::string>> Scheduler::PickPacks(int32_t slots, int32_t pack) const {
  std::vector<std::vector<std::string>> packs;
  std::map<std::string, int> extra;  // grants already picked per sweep
  std::set<std::string> taken;
  auto eligible = [&](const v1::Job& job) {
    if (taken.count(job.id())) return false;
    if (!job.depends_on().empty() && job.input_checkpoint_sha256().empty()) return false;
    const int32_t limit = sweeps_.at(job.sweep_id()).max_concurrency();
    if (limit <= 0) return true;
    auto active = active_per_sweep_.find(job.sweep_id());
    return (active == active_per_sweep_.end() ? 0 : active->second) + extra[job.sweep_id()] < limit;
  };
  auto take = [&](const v1::Job& job, std::vector<std::string>& group) {
    ++extra[job.sweep_id()];
    taken.insert(job.id());
    group.push_back(job.id());
  };
  for (auto head = pending_.begin(); head != pending_.end(); ++head) {
    if (static_cast<int32_t>(packs.size()) >= slots) break;
    const v1::Job& job = jobs_.at(std::get<3>(*head));
    if (!eligible(job)) continue;
    std::vector<std::string> group;
    take(job, group);
    // A job that resumes from a per-epoch state trains alone (a pack starts
    // its trials at one epoch).
    const std::string& key = pack > 1 && job.resume_sha256().empty() ? PackKey(job) : std::string();
    if (!key.empty()) {
      int scanned = 0;
      for (auto it = std::next(head);
           it != pending_.end() && scanned < kPackScan && static_cast<int32_t>(group.size()) < pack;
           ++it, ++scanned) {
        const v1::Job& other = jobs_.at(std::get<3>(*it));
        if (eligible(other) && other.resume_sha256().empty() && PackKey(other) == key)
          take(other, group);
      }
    }
    packs.push_back(std::move(group));
  }
  return packs;
}

}  // namespace qsweep
