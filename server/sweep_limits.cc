#include "server/sweep_limits.h"

#include <atomic>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/limits.h"
#include "common/status_macros.h"
#include "worker/core/config/train_config.h"

namespace qsweep {
namespace {

using json = nlohmann::json;

absl::Status TooLarge(const std::string& source, const std::string& where, const std::string& what,
                      int64_t value, int64_t limit, const char* unit) {
  return absl::InvalidArgumentError(
      absl::StrCat(source, ": ", where, what, " is ", value, unit, "; the limit is ", limit, unit));
}

// Upper bounds of the train keys that size a job's work.
struct KeyLimit {
  const char* key;
  int64_t max;
};
constexpr KeyLimit kKeyLimits[] = {{"synthetic_rows", kMaxSyntheticRows},
                                   {"threads", kMaxThreads},
                                   {"max_epochs", kMaxEpochs},
                                   {"batch_size", kMaxBatchSize}};

// Strings anywhere in `value` (tables and lists included).
absl::Status CheckStrings(const std::string& source, const std::string& where,
                          const std::string& key, const json& value) {
  if (value.is_string()) {
    const size_t n = value.get_ref<const std::string&>().size();
    if (n > kMaxConfigStringBytes)
      return TooLarge(source, where, absl::StrCat("key '", key, "'"), static_cast<int64_t>(n),
                      static_cast<int64_t>(kMaxConfigStringBytes), " bytes");
    return absl::OkStatus();
  }
  if (value.is_object()) {
    for (const auto& [k, v] : value.items())
      QSWEEP_RETURN_IF_ERROR(CheckStrings(source, where, absl::StrCat(key, ".", k), v));
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i)
      QSWEEP_RETURN_IF_ERROR(CheckStrings(source, where, absl::StrCat(key, "[", i, "]"), value[i]));
  }
  return absl::OkStatus();
}

// The keys of one layer (the base, or one trial's swept values).
absl::Status CheckValues(const std::string& source, const std::string& where, const json& layer) {
  for (const auto& [key, value] : layer.items()) {
    QSWEEP_RETURN_IF_ERROR(CheckStrings(source, where, key, value));
    for (const auto& limit : kKeyLimits) {
      if (key != limit.key || !value.is_number()) continue;
      // Compared as double: an integer too large for int64 is still caught.
      if (value.get<double>() > static_cast<double>(limit.max)) {
        const std::string shown =
            value.is_number_integer() ? absl::StrCat(value.get<int64_t>()) : value.dump();
        return absl::InvalidArgumentError(absl::StrCat(source, ": ", where, "key '", key, "' is ",
                                                       shown, "; the limit is ", limit.max));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSweepLimits(const SweepPlan& plan, const std::string& source) {
  if (plan.name.size() > kMaxIdBytes)
    return TooLarge(source, "", "sweep.name", static_cast<int64_t>(plan.name.size()),
                    static_cast<int64_t>(kMaxIdBytes), " bytes");
  if (static_cast<int64_t>(plan.trials.size()) > kMaxTrialsPerSweep)
    return TooLarge(source, "", "[sweep]: the number of trials",
                    static_cast<int64_t>(plan.trials.size()), kMaxTrialsPerSweep, "");
  QSWEEP_RETURN_IF_ERROR(CheckValues(source, "", plan.base));
  size_t total = 0;
  for (size_t i = 0; i < plan.trials.size(); ++i) {
    const std::string where = absl::StrCat("trial ", i, ": ");
    const size_t n = plan.trials[i].dump().size();
    if (n > kMaxTrialJsonBytes)
      return TooLarge(source, where, "the swept values", static_cast<int64_t>(n),
                      static_cast<int64_t>(kMaxTrialJsonBytes), " bytes");
    total += n;
    if (total > kMaxTrialBytesPerSweep)
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": [sweep]: the swept values of trials 0 to ", i, " take ", total,
          " bytes; the limit is ", kMaxTrialBytesPerSweep, " bytes for all trials of a sweep"));
    QSWEEP_RETURN_IF_ERROR(CheckValues(source, where, plan.trials[i]));
  }
  return absl::OkStatus();
}

absl::Status CheckTransformConfigLimits(const std::string& toml_text, const std::string& source) {
  ConfigLayers layers = NewConfigLayers();
  QSWEEP_RETURN_IF_ERROR(LoadTomlConfig(toml_text, source, layers));
  return CheckValues(source, "", layers.file);
}

namespace {
std::atomic<int64_t> service_expansions{0};
}  // namespace

int64_t ServiceSweepExpansions() { return service_expansions.load(); }

absl::StatusOr<SweepPlan> ExpandSweepForService(const std::string& toml_text,
                                                const std::string& source) {
  service_expansions.fetch_add(1);
  SweepPlanOptions options;
  options.keep_configs = false;
  QSWEEP_ASSIGN_OR_RETURN(SweepPlan plan, ExpandSweep(toml_text, source, options));
  QSWEEP_RETURN_IF_ERROR(CheckSweepLimits(plan, source));
  return plan;
}

json TrialConfig(const SweepPlan& plan, size_t index) {
  json effective = plan.base;
  for (const auto& [key, value] : plan.trials.at(index).items()) effective[key] = value;
  return effective;
}

}  // namespace qsweep
