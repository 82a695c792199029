#include "server/sweep.h"

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/core/config/train_config.h"
#include "worker/core/graph/graph.h"
#include "worker/core/model/model_spec.h"
#include "worker/core/passes/pass_pipeline.h"

namespace qsweep {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// One randomly sampled key.
struct RandomParam {
  std::string key;
  std::string distribution;  // choice | uniform | loguniform | int
  std::vector<json> values;  // choice
  double low = 0, high = 0;  // uniform, loguniform, int (inclusive)
};

struct SweepSpec {
  std::vector<std::pair<std::string, std::vector<json>>> grid;
  std::vector<RandomParam> random;
  int64_t trials = 0;  // 0 = no random section
  uint64_t seed = 0;
};

absl::Status FieldError(const std::string& source, const std::string& field,
                        const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", field, " ", what));
}

std::string KnownKeys() {
  std::vector<std::string> names;
  for (const auto& k : TrainKeys())
    if (k.used) names.push_back(k.name);
  return absl::StrJoin(names, ", ");
}

absl::StatusOr<const KeySpec*> SweptKey(const std::string& source, const std::string& field,
                                        const std::string& key) {
  const KeySpec* spec = FindTrainKey(key);
  if (spec == nullptr)
    return FieldError(source, field,
                      absl::StrCat("names unknown key '", key, "'; known keys: ", KnownKeys()));
  return spec;
}

absl::StatusOr<int32_t> SmallInt(const std::string& source, const std::string& field,
                                 const ojson& v, int64_t min, int64_t max) {
  if (!v.is_number_integer())
    return FieldError(source, field, absl::StrCat("must be an integer, got ", v.dump()));
  int64_t n = v.get<int64_t>();
  if (n < min || n > max)
    return FieldError(source, field, absl::StrCat("must be in [", min, ", ", max, "], got ", n));
  return static_cast<int32_t>(n);
}

absl::Status ParseGrid(const std::string& source, const ojson& grid, SweepSpec& spec) {
  if (!grid.is_object())
    return FieldError(source, "[sweep.grid]", "must be a table of key = [values]");
  for (const auto& [key, values] : grid.items()) {
    const std::string field = absl::StrCat("sweep.grid.", key);
    QSWEEP_ASSIGN_OR_RETURN(const KeySpec* ks, SweptKey(source, field, key));
    if (!values.is_array() || values.empty())
      return FieldError(source, field, "must be a non-empty list of values");
    std::vector<json> list;
    for (const auto& v : values) {
      json jv = json::parse(v.dump());
      QSWEEP_RETURN_IF_ERROR(CheckKeyValue(*ks, jv, absl::StrCat(source, ": sweep.grid: key ")));
      list.push_back(std::move(jv));
    }
    spec.grid.emplace_back(key, std::move(list));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Bound(const std::string& source, const std::string& field, const ojson& d,
                             const char* name) {
  auto it = d.find(name);
  if (it == d.end() || !it->is_number() || !std::isfinite(it->get<double>()))
    return FieldError(source, absl::StrCat(field, ".", name), "must be a finite number");
  return it->get<double>();
}

absl::StatusOr<RandomParam> ParseRandomParam(const std::string& source, const std::string& key,
                                             const ojson& d) {
  const std::string field = absl::StrCat("sweep.random.", key);
  QSWEEP_ASSIGN_OR_RETURN(const KeySpec* ks, SweptKey(source, field, key));
  static const char* kAllowed = "choice, uniform, loguniform, int";
  if (!d.is_object() || !d.contains("distribution") || !d["distribution"].is_string())
    return FieldError(source, field,
                      absl::StrCat("must be a table with distribution = one of ", kAllowed));
  RandomParam p;
  p.key = key;
  p.distribution = d["distribution"].get<std::string>();
  if (p.distribution == "choice") {
    auto it = d.find("values");
    if (it == d.end() || !it->is_array() || it->empty())
      return FieldError(source, field + ".values", "must be a non-empty list");
    for (const auto& v : *it) {
      json jv = json::parse(v.dump());
      QSWEEP_RETURN_IF_ERROR(CheckKeyValue(*ks, jv, absl::StrCat(source, ": ", field, ": key ")));
      p.values.push_back(std::move(jv));
    }
    return p;
  }
  if (p.distribution != "uniform" && p.distribution != "loguniform" && p.distribution != "int")
    return FieldError(source, field + ".distribution",
                      absl::StrCat("is '", p.distribution, "'; allowed: ", kAllowed));
  QSWEEP_ASSIGN_OR_RETURN(p.low, Bound(source, field, d, "low"));
  QSWEEP_ASSIGN_OR_RETURN(p.high, Bound(source, field, d, "high"));
  if (p.high < p.low) return FieldError(source, field, "needs low <= high");
  if (p.distribution == "loguniform" && p.low <= 0)
    return FieldError(source, field + ".low", "must be > 0 for loguniform");
  if (p.distribution == "int" && ks->type != KeyType::kInt)
    return FieldError(source, field, "uses distribution 'int' but the key is not an integer");
  if (p.distribution != "int" && ks->type != KeyType::kFloat)
    return FieldError(source, field,
                      absl::StrCat("uses distribution '", p.distribution,
                                   "' but the key is not a number; allowed "
                                   "for it: choice",
                                   ks->type == KeyType::kInt ? ", int" : ""));
  // Both ends must be legal values of the key (e.g. learning_rate > 0).
  for (double b : {p.low, p.high}) {
    json jb = p.distribution == "int" ? json(static_cast<int64_t>(std::llround(b))) : json(b);
    QSWEEP_RETURN_IF_ERROR(CheckKeyValue(*ks, jb, absl::StrCat(source, ": ", field, ": key ")));
  }
  return p;
}

absl::Status ParseRandom(const std::string& source, const ojson& random, SweepSpec& spec) {
  if (!random.is_object()) return FieldError(source, "[sweep.random]", "must be a table");
  for (const auto& [key, value] : random.items()) {
    if (key == "trials") {
      QSWEEP_ASSIGN_OR_RETURN(int32_t n, SmallInt(source, "sweep.random.trials", value, 1, 100000));
      spec.trials = n;
    } else if (key == "seed") {
      if (!value.is_number_integer() || value.get<int64_t>() < 0)
        return FieldError(source, "sweep.random.seed", "must be an integer >= 0");
      spec.seed = value.get<uint64_t>();
    } else {
      QSWEEP_ASSIGN_OR_RETURN(RandomParam p, ParseRandomParam(source, key, value));
      spec.random.push_back(std::move(p));
    }
  }
  if (spec.trials == 0)
    return FieldError(source, "sweep.random.trials", "is required (an integer >= 1)");
  if (spec.random.empty()) return FieldError(source, "[sweep.random]", "names no key to sample");
  return absl::OkStatus();
}

absl::Status ParseTransformOptions(const std::string& source, const ojson& t, SweepPlan& plan) {
  if (!t.is_object()) return FieldError(source, "[sweep.transform]", "must be a table");
  for (const auto& [key, value] : t.items()) {
    if (key != "fine_tune_epochs")
      return FieldError(source, absl::StrCat("sweep.transform.", key),
                        "is not a transform option; allowed: fine_tune_epochs");
    QSWEEP_ASSIGN_OR_RETURN(int32_t n,
                            SmallInt(source, "sweep.transform.fine_tune_epochs", value, 0, 1000));
    plan.fine_tune_epochs = n;
  }
  return absl::OkStatus();
}

absl::Status ParseSweepTable(const std::string& source, const ojson& sweep, SweepPlan& plan,
                             SweepSpec& spec) {
  static const char* kAllowed =
      "name, max_concurrency, retries, priority, timeout, pack, grid, random, transform";
  for (const auto& [key, value] : sweep.items()) {
    const std::string field = absl::StrCat("sweep.", key);
    if (key == "name") {
      if (!value.is_string()) return FieldError(source, field, "must be a string");
      plan.name = value.get<std::string>();
    } else if (key == "max_concurrency") {
      QSWEEP_ASSIGN_OR_RETURN(plan.max_concurrency, SmallInt(source, field, value, 0, 1 << 20));
    } else if (key == "retries") {
      QSWEEP_ASSIGN_OR_RETURN(plan.retries, SmallInt(source, field, value, 0, 100));
    } else if (key == "priority") {
      QSWEEP_ASSIGN_OR_RETURN(plan.priority, SmallInt(source, field, value, -1000000, 1000000));
    } else if (key == "timeout") {
      // Seconds, 1 s .. 30 days.
      QSWEEP_ASSIGN_OR_RETURN(int32_t t, SmallInt(source, field, value, 1, 30 * 24 * 3600));
      plan.timeout_s = t;
    } else if (key == "pack") {
      if (!value.is_boolean())
        return FieldError(source, field, "must be true or false (allowed: true, false)");
      plan.pack = value.get<bool>();
    } else if (key == "grid") {
      QSWEEP_RETURN_IF_ERROR(ParseGrid(source, value, spec));
    } else if (key == "random") {
      QSWEEP_RETURN_IF_ERROR(ParseRandom(source, value, spec));
    } else if (key == "transform") {
      QSWEEP_RETURN_IF_ERROR(ParseTransformOptions(source, value, plan));
    } else {
      return FieldError(source, field, absl::StrCat("is not a sweep setting; allowed: ", kAllowed));
    }
  }
  return absl::OkStatus();
}

// Uniform double in [0, 1) from 53 random bits: the same on every platform.
double Unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

json Sample(const RandomParam& p, std::mt19937_64& rng) {
  double u = Unit(rng);
  if (p.distribution == "choice") {
    size_t i = std::min(p.values.size() - 1, static_cast<size_t>(u * p.values.size()));
    return p.values[i];
  }
  if (p.distribution == "uniform") return p.low + u * (p.high - p.low);
  if (p.distribution == "loguniform")
    return std::exp(std::log(p.low) + u * (std::log(p.high) - std::log(p.low)));
  int64_t lo = std::llround(std::ceil(p.low)), hi = std::llround(std::floor(p.high));
  if (hi < lo) hi = lo;
  return lo + std::min<int64_t>(hi - lo, static_cast<int64_t>(u * double(hi - lo + 1)));
}

absl::StatusOr<std::vector<json>> ExpandTrials(const std::string& source, const SweepSpec& spec,
                                               int64_t max_trials) {
  constexpr int64_t kHuge = int64_t{1} << 40;  // far over any limit; products stay in range
  int64_t grid_points = 1;
  for (const auto& [key, values] : spec.grid) {
    grid_points *= static_cast<int64_t>(values.size());
    if (grid_points > kHuge) break;
  }
  const int64_t per_point = spec.trials > 0 ? spec.trials : 1;
  if (grid_points > kHuge || grid_points * per_point > max_trials)
    return FieldError(source, "[sweep]",
                      absl::StrCat("expands to more than ", max_trials, " trials (",
                                   grid_points > kHuge ? absl::StrCat("over ", kHuge)
                                                       : absl::StrCat(grid_points * per_point),
                                   "; the limit is ", max_trials, " trials per sweep)"));
  std::mt19937_64 rng(spec.seed);
  std::vector<json> trials;
  for (int64_t g = 0; g < grid_points; ++g) {
    json point = json::object();
    int64_t rest = g;
    for (auto it = spec.grid.rbegin(); it != spec.grid.rend(); ++it) {
      const int64_t n = static_cast<int64_t>(it->second.size());
      point[it->first] = it->second[static_cast<size_t>(rest % n)];
      rest /= n;
    }
    for (int64_t r = 0; r < per_point; ++r) {
      json trial = point;
      for (const auto& p : spec.random) trial[p.key] = Sample(p, rng);
      trials.push_back(std::move(trial));
    }
  }
  return trials;
}

absl::Status ValidateConfig(const std::string& source, size_t index, const json& effective,
                            std::set<std::string>& models_checked) {
  auto config = TrainConfigFromJson(effective);
  if (!config.ok())
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": trial ", index, ": ", config.status().message()));
  const json model = effective.value("model", json());
  if (models_checked.insert(model.dump()).second) {
    auto spec = ServiceModel(model);
    if (!spec.ok())
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", spec.status().message()));
  }
  return absl::OkStatus();
}

// A top-level [model] table (or model = { ... }) is the base config's inline model.
void InlineModelTable(ConfigLayers& layers) {
  if (layers.tables.contains("model")) {
    layers.file["model"] = json::parse(layers.tables["model"].dump());
    layers.tables.erase("model");
  }
}

// The [passes.*] and [transform] tables, if any.
absl::Status ParseTransformTables(const std::string& source, const ojson& tables, SweepPlan& plan,
                                  std::vector<PassSpec>& passes) {
  auto with_source = [&](const absl::Status& s) {
    return s.ok() ? s : absl::Status(s.code(), absl::StrCat(source, ": ", s.message()));
  };
  QSWEEP_RETURN_IF_ERROR(with_source(CheckTransformTable(tables)));
  if (!tables.contains("passes")) {
    if (plan.fine_tune_epochs > 0)
      return FieldError(source, "sweep.transform", "needs [passes.*] tables to run");
    return absl::OkStatus();
  }
  auto parsed = ParsePassList(tables["passes"]);
  QSWEEP_RETURN_IF_ERROR(with_source(parsed.status()));
  passes = std::move(*parsed);
  // Report files are plain names inside the job's output folder.
  QSWEEP_RETURN_IF_ERROR(with_source(CheckReportFileNames(passes, /*plain_names_only=*/true)));
  if (passes.empty()) return FieldError(source, "[passes]", "names no pass to run");
  plan.transform = true;
  return absl::OkStatus();
}

// Checks the passes against the trial's model graph (by-name targets etc.).
absl::Status ValidateTransform(const std::string& source, const json& effective,
                               const std::vector<PassSpec>& passes) {
  auto model = ServiceModel(effective.value("model", json()));
  if (!model.ok())
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", model.status().message()));
  const int64_t batch = effective.value("batch_size", int64_t{1});
  absl::Status s = ValidatePasses(passes, BuildGraph(*model, batch));
  if (!s.ok())
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": [passes] for model '", model->name, "': ", s.message()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SweepPlan> ExpandSweep(const std::string& toml_text, const std::string& source,
                                      const SweepPlanOptions& options) {
  ConfigLayers layers = NewConfigLayers();
  QSWEEP_RETURN_IF_ERROR(LoadTomlConfig(toml_text, source, layers));
  InlineModelTable(layers);
  QSWEEP_RETURN_IF_ERROR(CheckServiceConfig(layers.file, absl::StrCat(source, ": ")));
  SweepPlan plan;
  SweepSpec spec;
  for (const auto& [table, value] : layers.tables.items()) {
    if (table == "passes" || table == "transform") continue;  // checked below
    if (table != "sweep")
      return FieldError(source, absl::StrCat("[", table, "]"),
                        "is not allowed in a sweep file; allowed tables: [sweep], "
                        "[passes.*], [transform]");
    QSWEEP_RETURN_IF_ERROR(ParseSweepTable(source, value, plan, spec));
  }
  std::vector<PassSpec> passes;
  QSWEEP_RETURN_IF_ERROR(ParseTransformTables(source, layers.tables, plan, passes));
  QSWEEP_ASSIGN_OR_RETURN(plan.trials, ExpandTrials(source, spec, options.max_trials));
  plan.base = layers.Effective();
  // Places are the worker's own: a job's config names none (CheckServiceConfig
  // refused any given in the file or a trial; this drops the defaults).
  for (const auto& key : PlaceKeys()) plan.base.erase(key);
  const json& base = plan.base;
  std::set<std::string> models_checked;
  for (size_t i = 0; i < plan.trials.size(); ++i) {
    QSWEEP_RETURN_IF_ERROR(
        CheckServiceConfig(plan.trials[i], absl::StrCat(source, ": [sweep] trial ", i, ": ")));
    json effective = base;
    for (const auto& [key, value] : plan.trials[i].items()) effective[key] = value;
    QSWEEP_RETURN_IF_ERROR(ValidateConfig(source, i, effective, models_checked));
    if (plan.transform) QSWEEP_RETURN_IF_ERROR(ValidateTransform(source, effective, passes));
    if (options.keep_configs) plan.configs.push_back(std::move(effective));
  }
  return plan;
}

absl::Status ValidateTransformConfig(const std::string& toml_text, const std::string& source,
                                     const json& model, int64_t batch_size) {
  ConfigLayers layers = NewConfigLayers();
  QSWEEP_RETURN_IF_ERROR(LoadTomlConfig(toml_text, source, layers));
  InlineModelTable(layers);
  QSWEEP_RETURN_IF_ERROR(CheckServiceConfig(layers.file, absl::StrCat(source, ": ")));
  if (layers.file.contains("model")) {  // only compared with the checkpoint's; never opened
    auto named = ServiceModel(layers.file["model"]);
    if (!named.ok())
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", named.status().message()));
  }
  SweepPlan plan;
  std::vector<PassSpec> passes;
  QSWEEP_RETURN_IF_ERROR(ParseTransformTables(source, layers.tables, plan, passes));
  if (!plan.transform) return FieldError(source, "[passes]", "is required (no pass to run)");
  json effective = {{"model", model}, {"batch_size", batch_size}};
  return ValidateTransform(source, effective, passes);
}

}  // namespace qsweep
