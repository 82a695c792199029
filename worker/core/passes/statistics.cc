#include "worker/core/passes/statistics.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/core/passes/quantize_config.h"

namespace qsweep {
namespace {

using ojson = nlohmann::ordered_json;

// Results are float32 tensors in MASE; round through float so reports match.
ojson F32(double v) {
  if (std::isnan(v)) return nullptr;
  return static_cast<double>(static_cast<float>(v));
}

// Running (count, mean, M2) with MASE's merge: a sample's M2 is its unbiased
// variance times its size (MASE.md §6.5, copied for parity).
struct OnlineVar {
  int64_t count = 0;
  double mean = 0.0, m2 = 0.0;
  void Update(const float* d, size_t n, bool use_abs) {
    if (n == 0) return;
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) s += use_abs ? std::fabs(d[i]) : d[i];
    double mb = s / n, ss = 0.0;
    for (size_t i = 0; i < n; ++i) {
      double x = use_abs ? std::fabs(d[i]) : d[i];
      ss += (x - mb) * (x - mb);
    }
    double var_b = n > 1 ? ss / (n - 1) : 0.0;
    double m2b = var_b * n;
    int64_t nb = static_cast<int64_t>(n), total = count + nb;
    double delta = mb - mean;
    mean += delta * nb / total;
    m2 += m2b + delta * delta * static_cast<double>(count) * nb / total;
    count = total;
  }
  double Variance() const { return count < 2 ? NAN : m2 / count; }
};

struct Recorded {
  std::vector<double> data;
  void Update(const float* d, size_t n, bool use_abs) {
    for (size_t i = 0; i < n; ++i) data.push_back(use_abs ? std::fabs(d[i]) : d[i]);
  }
  double Mean() const {
    double s = 0.0;
    for (double x : data) s += x;
    return data.empty() ? NAN : s / data.size();
  }
  double UnbiasedVar() const {
    if (data.size() < 2) return NAN;
    double m = Mean(), ss = 0.0;
    for (double x : data) ss += (x - m) * (x - m);
    return ss / (data.size() - 1);
  }
  // torch.quantile with linear interpolation.
  double Quantile(double q) const {
    if (data.empty()) return NAN;
    std::vector<double> s = data;
    std::sort(s.begin(), s.end());
    double pos = q * (s.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(pos));
    size_t hi = std::min(lo + 1, s.size() - 1);
    return s[lo] + (s[hi] - s[lo]) * (pos - lo);
  }
};

class VariancePrecise : public StatCollector {
 public:
  void Update(const float* d, size_t n) override { rec_.Update(d, n, false); }
  ojson Compute() const override {
    return {{"mean", F32(rec_.Mean())},
            {"variance", F32(rec_.UnbiasedVar())},
            {"count", static_cast<int64_t>(rec_.data.size())}};
  }

 private:
  Recorded rec_;
};

class VarianceOnline : public StatCollector {
 public:
  void Update(const float* d, size_t n) override { v_.Update(d, n, false); }
  ojson Compute() const override {
    return {{"mean", v_.count ? F32(v_.mean) : ojson(nullptr)},
            {"variance", F32(v_.Variance())},
            {"count", v_.count}};
  }

 private:
  OnlineVar v_;
};

ojson RangeResult(double mn, double mx, int64_t count) {
  return {{"min", F32(mn)}, {"max", F32(mx)}, {"range", F32(mx - mn)}, {"count", count}};
}

class RangeMinMax : public StatCollector {
 public:
  explicit RangeMinMax(bool use_abs) : abs_(use_abs) {}
  void Update(const float* d, size_t n) override {
    for (size_t i = 0; i < n; ++i) {
      double x = abs_ ? std::fabs(d[i]) : d[i];
      mn_ = std::min(mn_, x);
      mx_ = std::max(mx_, x);
    }
    count_ += n;
  }
  ojson Compute() const override {
    return count_ ? RangeResult(mn_, mx_, count_) : RangeResult(NAN, NAN, 0);
  }

 private:
  bool abs_;
  double mn_ = INFINITY, mx_ = -INFINITY;
  int64_t count_ = 0;
};

class RangeQuantile : public StatCollector {
 public:
  RangeQuantile(bool use_abs, double q) : abs_(use_abs), q_(q) {}
  void Update(const float* d, size_t n) override { rec_.Update(d, n, abs_); }
  ojson Compute() const override {
    return RangeResult(rec_.Quantile(1.0 - q_), rec_.Quantile(q_),
                       static_cast<int64_t>(rec_.data.size()));
  }

 private:
  bool abs_;
  double q_;
  Recorded rec_;
};

class RangeNSigma : public StatCollector {
 public:
  RangeNSigma(bool use_abs, bool online, double k) : abs_(use_abs), online_(online), k_(k) {}
  void Update(const float* d, size_t n) override {
    if (online_) {
      v_.Update(d, n, abs_);
    } else {
      rec_.Update(d, n, abs_);
    }
  }
  ojson Compute() const override {
    double mean = online_ ? v_.mean : rec_.Mean();
    double var = online_ ? v_.Variance() : rec_.UnbiasedVar();
    int64_t count = online_ ? v_.count : static_cast<int64_t>(rec_.data.size());
    double sd = std::sqrt(var);
    return RangeResult(mean - k_ * sd, mean + k_ * sd, count);
  }

 private:
  bool abs_, online_;
  double k_;
  OnlineVar v_;
  Recorded rec_;
};

class AbsMean : public StatCollector {
 public:
  void Update(const float* d, size_t n) override {
    for (size_t i = 0; i < n; ++i) sum_ += std::fabs(d[i]);
    count_ += n;
  }
  ojson Compute() const override {
    return {{"abs_mean", count_ ? F32(sum_ / count_) : ojson(nullptr)}, {"count", count_}};
  }

 private:
  double sum_ = 0.0;
  int64_t count_ = 0;
};

absl::Status CheckKwargs(const ojson& kw, const std::vector<std::string>& allowed,
                         const std::string& where) {
  if (!kw.is_object()) return absl::InvalidArgumentError(where + " must be a table of kwargs");
  for (auto it = kw.begin(); it != kw.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".", it.key(),
          " is not a kwarg of this statistic; allowed: ", absl::StrJoin(allowed, ", ")));
  }
  if (kw.contains("dims") && !(kw["dims"].is_string() && kw["dims"] == "all"))
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".dims = ", kw["dims"].dump(), " is not supported; allowed: \"all\""));
  if (kw.contains("abs") && !kw["abs"].is_boolean())
    return absl::InvalidArgumentError(where + ".abs must be true or false");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> StringList(const ojson& args, const std::string& key) {
  std::vector<std::string> out;
  if (!args.contains(key)) return out;
  const ojson& v = args[key];
  if (v.is_string()) return std::vector<std::string>{v.get<std::string>()};
  if (!v.is_array())
    return absl::InvalidArgumentError(
        absl::StrCat("passes.profile_statistics.", key, " must be a list of strings"));
  for (const auto& e : v) {
    if (!e.is_string())
      return absl::InvalidArgumentError(
          absl::StrCat("passes.profile_statistics.", key, " must be a list of strings"));
    out.push_back(e.get<std::string>());
  }
  return out;
}

bool Matches(const std::string& by, const std::vector<std::string>& targets, const Node& n) {
  const std::string& key = by == "name" ? n.name : n.mase_op;
  return std::find(targets.begin(), targets.end(), key) != targets.end();
}

}  // namespace

const std::vector<std::string>& StatNames() {
  static const std::vector<std::string> kNames = {"variance_precise", "variance_online",
                                                  "range_min_max",    "range_quantile",
                                                  "range_n_sigma",    "abs_mean"};
  return kNames;
}

absl::StatusOr<std::unique_ptr<StatCollector>> MakeStatCollector(const std::string& name,
                                                                 const ojson& kw,
                                                                 const std::string& where) {
  const std::string w = absl::StrCat(where, ".", name);
  bool use_abs = kw.is_object() ? kw.value("abs", false) : false;
  if (name == "variance_precise" || name == "variance_online" || name == "abs_mean") {
    QSWEEP_RETURN_IF_ERROR(CheckKwargs(kw, {"device", "dims"}, w));
    if (name == "variance_precise") return std::make_unique<VariancePrecise>();
    if (name == "variance_online") return std::make_unique<VarianceOnline>();
    return std::make_unique<AbsMean>();
  }
  if (name == "range_min_max") {
    QSWEEP_RETURN_IF_ERROR(CheckKwargs(kw, {"device", "dims", "abs"}, w));
    return std::make_unique<RangeMinMax>(use_abs);
  }
  if (name == "range_quantile") {
    QSWEEP_RETURN_IF_ERROR(CheckKwargs(kw, {"device", "dims", "abs", "quantile"}, w));
    double q = 0.975;
    if (kw.contains("quantile")) {
      if (!kw["quantile"].is_number() || kw["quantile"].get<double>() <= 0.0 ||
          kw["quantile"].get<double>() > 1.0)
        return absl::InvalidArgumentError(w + ".quantile must be a number in (0, 1]");
      q = kw["quantile"].get<double>();
    }
    return std::make_unique<RangeQuantile>(use_abs, q);
  }
  if (name == "range_n_sigma") {
    QSWEEP_RETURN_IF_ERROR(CheckKwargs(kw, {"device", "dims", "abs", "var_mode", "num_sigma"}, w));
    std::string mode = kw.value("var_mode", std::string("online"));
    if (mode != "online" && mode != "precise")
      return absl::InvalidArgumentError(w + ".var_mode must be \"online\" or \"precise\"");
    double k = 3.0;
    if (kw.contains("num_sigma")) {
      if (!kw["num_sigma"].is_number() || kw["num_sigma"].get<double>() <= 0)
        return absl::InvalidArgumentError(w + ".num_sigma must be a positive number");
      k = kw["num_sigma"].get<double>();
    }
    return std::make_unique<RangeNSigma>(use_abs, mode == "online", k);
  }
  return absl::InvalidArgumentError(absl::StrCat(w, ": unknown statistic '", name,
                                                 "'; allowed: ", absl::StrJoin(StatNames(), ", ")));
}

absl::StatusOr<ProfileStatisticsConfig> ParseProfileStatisticsConfig(const ojson& args) {
  const std::string where = "passes.profile_statistics";
  if (!args.is_object()) return absl::InvalidArgumentError(where + " must be a table");
  ProfileStatisticsConfig c;
  if (args.contains("by")) {
    if (!args["by"].is_string() || (args["by"] != "type" && args["by"] != "name"))
      return absl::InvalidArgumentError(where + ".by must be \"type\" or \"name\"");
    c.by = args["by"].get<std::string>();
  }
  QSWEEP_ASSIGN_OR_RETURN(c.target_weight_nodes, StringList(args, "target_weight_nodes"));
  QSWEEP_ASSIGN_OR_RETURN(c.target_activation_nodes, StringList(args, "target_activation_nodes"));
  for (const char* key : {"weight_statistics", "activation_statistics"}) {
    if (!args.contains(key)) continue;
    if (!args[key].is_object())
      return absl::InvalidArgumentError(absl::StrCat(where, ".", key, " must be a table"));
    for (auto it = args[key].begin(); it != args[key].end(); ++it) {
      // Validate now so that a bad kwarg fails before any data is read.
      QSWEEP_RETURN_IF_ERROR(
          MakeStatCollector(it.key(), it.value(), absl::StrCat(where, ".", key)).status());
    }
    (std::string(key) == "weight_statistics" ? c.weight_statistics : c.activation_statistics) =
        args[key];
  }
  if (args.contains("num_samples")) {
    if (!args["num_samples"].is_number_integer() || args["num_samples"].get<int64_t>() <= 0)
      return absl::InvalidArgumentError(where + ".num_samples must be a positive integer");
    c.num_samples = args["num_samples"].get<int64_t>();
  }
  static const std::vector<std::string> kKnown = {"by",
                                                  "target_weight_nodes",
                                                  "target_activation_nodes",
                                                  "weight_statistics",
                                                  "activation_statistics",
                                                  "num_samples",
                                                  "profile_output_activation",
                                                  "input_generator"};
  for (auto it = args.begin(); it != args.end(); ++it)
    if (std::find(kKnown.begin(), kKnown.end(), it.key()) == kKnown.end())
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".", it.key(), " is not a known field; allowed: ", absl::StrJoin(kKnown, ", ")));
  return c;
}

absl::StatusOr<Profiler> Profiler::Create(const ProfileStatisticsConfig& c, const Graph& graph) {
  Profiler p;
  p.num_samples_ = c.num_samples;
  for (const auto* targets : {&c.target_weight_nodes, &c.target_activation_nodes}) {
    for (const auto& t : *targets) {
      bool ok = c.by == "name" ? graph.Find(t) != nullptr : IsKnownMaseOp(t);
      if (!ok) {
        std::vector<std::string> names;
        for (const auto& n : graph.nodes) names.push_back(n.name);
        return absl::InvalidArgumentError(absl::StrCat(
            "passes.profile_statistics: target '", t, "' ",
            c.by == "name" ? absl::StrCat("names no node; nodes: ", absl::StrJoin(names, ", "))
                           : "is not a MASE op (e.g. \"linear\", \"relu\")"));
      }
    }
  }
  auto add = [&](const Node& n, const std::string& arg, bool weight,
                 const ojson& stats) -> absl::Status {
    auto slot = std::make_shared<Slot>();
    slot->node = n.name;
    slot->arg = arg;
    slot->weight = weight;
    for (auto it = stats.begin(); it != stats.end(); ++it) {
      QSWEEP_ASSIGN_OR_RETURN(auto col,
                              MakeStatCollector(it.key(), it.value(), "passes.profile_statistics"));
      slot->stats.emplace_back(it.key(), std::move(col));
    }
    p.slots_.push_back(std::move(slot));
    return absl::OkStatus();
  };
  for (const auto& n : graph.nodes) {
    bool weight = Matches(c.by, c.target_weight_nodes, n) && n.op == "call_module";
    bool act = Matches(c.by, c.target_activation_nodes, n);
    for (const auto& [arg, meta] : n.args) {
      bool is_data = arg.rfind("data_in", 0) == 0;
      if (weight && !is_data) QSWEEP_RETURN_IF_ERROR(add(n, arg, true, c.weight_statistics));
      if (act && is_data) QSWEEP_RETURN_IF_ERROR(add(n, arg, false, c.activation_statistics));
    }
    if (weight) ++p.weight_nodes_profiled_;
  }
  return p;
}

int64_t Profiler::NumBatches(int64_t batch_size) const {
  return batch_size <= 0 ? 0 : (num_samples_ + batch_size - 1) / batch_size;
}

std::vector<std::pair<std::string, std::string>> Profiler::WeightTargets() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : slots_)
    if (s->weight) out.emplace_back(s->node, s->arg);
  return out;
}

std::vector<std::pair<std::string, std::string>> Profiler::ActivationTargets() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : slots_)
    if (!s->weight) out.emplace_back(s->node, s->arg);
  return out;
}

Profiler::Slot* Profiler::Find(const std::string& node, const std::string& arg, bool weight) {
  for (auto& s : slots_)
    if (s->node == node && s->arg == arg && s->weight == weight) return s.get();
  return nullptr;
}

void Profiler::UpdateWeight(const std::string& node, const std::string& arg, const float* data,
                            size_t n) {
  if (Slot* s = Find(node, arg, true))
    for (auto& [name, col] : s->stats) col->Update(data, n);
}

void Profiler::UpdateActivation(const std::string& node, const std::string& arg, const float* data,
                                int64_t rows, int64_t cols) {
  Slot* s = Find(node, arg, false);
  if (s == nullptr) return;
  for (int64_t r = 0; r < rows; ++r)
    for (auto& [name, col] : s->stats) col->Update(data + r * cols, static_cast<size_t>(cols));
}

void Profiler::WriteResults(Graph& graph) const {
  for (const auto& s : slots_) {
    Node* n = graph.Find(s->node);
    if (n == nullptr) continue;
    auto it = n->args.find(s->arg);
    if (it == n->args.end()) continue;
    for (const auto& [name, col] : s->stats) it->second.stat[name] = col->Compute();
  }
}

ojson Profiler::Results() const {
  ojson out = ojson::object();
  for (const auto& s : slots_) {
    ojson& arg = out[s->node][s->arg];
    arg = ojson::object();
    for (const auto& [name, col] : s->stats) arg[name] = col->Compute();
  }
  return out;
}

}  // namespace qsweep
