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
  int64_t epochs = 0;
  const auto sweep = sweeps_.find(job.sweep_id());
  if (job.kind() == v1::TRAIN && sweep != sweeps_.end() && !sweep->second.no_pack()) {
    const std::string config = EffectiveConfigJson(sweep->second, job);
    key = PackKeyOfConfig(config, job.dataset_sha256());
    epochs = TrialEpochsOfConfig(config);
  }
  pack_epochs_[job.id()] = epochs;
  return pack_keys_.emplace(job.id(), std::move(key)).first->second;
}

int64_t TrialEpochsOfConfig(const std::string& config_json) {
  const nlohmann::json config = nlohmann::json::parse(config_json, nullptr, false);
  if (!config.is_object()) return 0;
  const nlohmann::json epochs = config.value("max_epochs", nlohmann::json());
  return epochs.is_number_integer() ? epochs.get<int64_t>() : 0;
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
  // Slots free right now: this request's and those of workers waiting in a
  // long-poll. When fewer groups of compatible jobs are pending than that, a
  // group is split so that no free slot idles while another trains a long
  // pack (PackSplit).
  int32_t idle = slots;
  if (pack > 1)
    for (const Waiter& w : waiters_) idle += std::max(0, w.request.max_jobs());
  int32_t groups_pending = -1;  // counted on first need
  auto count_groups = [&] {
    std::set<std::string> keys;
    int32_t groups = 0;
    int scanned = 0;
    for (auto it = pending_.begin(); it != pending_.end() && scanned < kPackScan && groups < idle;
         ++it, ++scanned) {
      const v1::Job& job = jobs_.at(std::get<3>(*it));
      if (!eligible(job)) continue;
      const std::string& key = PackKey(job);
      if (key.empty() || keys.insert(key).second) ++groups;
    }
    return groups;
  };
  for (auto head = pending_.begin(); head != pending_.end(); ++head) {
    if (static_cast<int32_t>(packs.size()) >= slots) break;
    const v1::Job& job = jobs_.at(std::get<3>(*head));
    if (!eligible(job)) continue;
    std::vector<std::string> group;
    // A job that resumes from a per-epoch state trains alone (a pack starts
    // its trials at one epoch).
    const std::string& key = pack > 1 && job.resume_sha256().empty() ? PackKey(job) : std::string();
    if (key.empty()) {
      take(job, group);
      packs.push_back(std::move(group));
      continue;
    }
    // The head and the later eligible pending jobs it may train with (enough
    // of them to split evenly: a long queue is cut at 4 packs' worth).
    std::vector<const v1::Job*> members{&job};
    int scanned = 0;
    const size_t enough = 4 * static_cast<size_t>(pack);
    for (auto it = std::next(head);
         it != pending_.end() && scanned < kPackScan && members.size() < enough; ++it, ++scanned) {
      const v1::Job& other = jobs_.at(std::get<3>(*it));
      if (eligible(other) && other.resume_sha256().empty() && PackKey(other) == key)
        members.push_back(&other);
    }
    if (groups_pending < 0) groups_pending = count_groups();
    const int32_t idle_left = idle - static_cast<int32_t>(packs.size());
    const size_t size = PackSplit(members.size(), pack, idle_left,
                                  groups_pending - static_cast<int32_t>(packs.size()));
    // Longest first: order by priority, then max_epochs (descending), then
    // queue order, and deal: this pack takes every parts-th member, so that the
    // packs of one group end at about the same time.
    std::vector<const v1::Job*> by_length = members;  // members are in queue order
    std::stable_sort(by_length.begin(), by_length.end(), [&](const v1::Job* a, const v1::Job* b) {
      if (a->priority() != b->priority()) return a->priority() > b->priority();
      return pack_epochs_.at(a->id()) > pack_epochs_.at(b->id());
    });
    // The lengths this pack takes, dealt from the longest; among equally long
    // jobs, the first in queue order.
    const size_t parts = (members.size() + size - 1) / size;
    std::map<int64_t, int> lengths;
    for (size_t i = 0; i < by_length.size() && i / parts < size; i += parts)
      ++lengths[pack_epochs_.at(by_length[i]->id())];
    for (const v1::Job* m : members) {
      if (group.size() >= size) break;
      int& wanted = lengths[pack_epochs_.at(m->id())];
      if (wanted > 0 && eligible(*m)) {
        --wanted;
        take(*m, group);
      }
    }
    for (const v1::Job* m : members)  // places left by max_concurrency
      if (group.size() < size && eligible(*m)) take(*m, group);
    if (!group.empty()) packs.push_back(std::move(group));
  }
  return packs;
}

size_t PackSplit(size_t n, int32_t pack, int32_t idle_slots, int32_t groups_pending) {
  if (n == 0) return 0;
  const size_t cap = static_cast<size_t>(std::max(1, pack));
  size_t parts = (n + cap - 1) / cap;  // within the pack limit, as even as possible
  if (groups_pending >= 1 && idle_slots > groups_pending) {
    // Free slots would idle: give this group its share of them.
    const size_t share = static_cast<size_t>((idle_slots + groups_pending - 1) / groups_pending);
    parts = std::max(parts, std::min(n, share));
  }
  return (n + parts - 1) / parts;
}

}  // namespace qsweep
