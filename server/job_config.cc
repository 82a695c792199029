#include "server/job_config.h"

#include <nlohmann/json.hpp>

namespace qsweep {

std::string EffectiveConfigJson(const v1::Sweep& sweep, const v1::Job& job) {
  if (!job.config_json().empty() || sweep.base_config_json().empty()) return job.config_json();
  nlohmann::json config = nlohmann::json::parse(sweep.base_config_json(), nullptr, false);
  if (!config.is_object()) return job.config_json();  // the worker reports the bad config
  const nlohmann::json trial = nlohmann::json::parse(job.trial_json(), nullptr, false);
  if (trial.is_object())
    for (const auto& [key, value] : trial.items()) config[key] = value;
  return config.dump();
}

v1::Job FullJob(const v1::Sweep& sweep, v1::Job job) {
  job.set_config_json(EffectiveConfigJson(sweep, job));
  if (job.kind() == v1::TRANSFORM && job.transform_toml().empty())
    job.set_transform_toml(sweep.source_toml());
  return job;
}

v1::Job ListedJob(v1::Job job) {
  job.clear_config_json();
  job.clear_transform_toml();
  job.clear_lease_id();
  return job;
}

v1::Sweep ListedSweep(v1::Sweep sweep) {
  sweep.clear_source_toml();
  sweep.clear_base_config_json();
  return sweep;
}

}  // namespace qsweep
