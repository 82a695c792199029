// A job in its three forms. Stored: a sweep with a base_config_json stores
// its base config once, and each of its jobs only its trial's values
// (trial_json; config_json and transform_toml empty). Full: what a worker
// leases and GetJob returns, with config_json = base + trial and, for
// TRANSFORM jobs, transform_toml = the sweep's source_toml. Listed: what
// ListJobs and WatchSweep send, without either. Jobs of sweeps stored before
// base configs existed carry config_json and transform_toml themselves and
// are left as they are.
#pragma once

#include <string>

#include "qsweep/v1/common.pb.h"

namespace qsweep {

// The effective config (JSON object text) of `job`, a job of `sweep`.
std::string EffectiveConfigJson(const v1::Sweep& sweep, const v1::Job& job);

// `job` (stored or full) in its full form.
v1::Job FullJob(const v1::Sweep& sweep, v1::Job job);

// `job` as listed to clients: without config_json and transform_toml, and
// without lease_id (a secret of the worker holding the lease).
v1::Job ListedJob(v1::Job job);

// `sweep` without source_toml and base_config_json.
v1::Sweep ListedSweep(v1::Sweep sweep);

}  // namespace qsweep
