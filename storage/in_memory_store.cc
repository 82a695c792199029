// The in-memory Store: ordered maps under one mutex.
#include <map>
#include <mutex>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "storage/store.h"

namespace qsweep {
namespace {

class InMemoryStore final : public Store {
 public:
  absl::Status CreateSweep(const v1::Sweep& sweep, const std::vector<v1::Job>& jobs) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (sweeps_.count(sweep.id()))
      return absl::AlreadyExistsError(absl::StrCat("sweep '", sweep.id(), "' exists"));
    if (!sweep.idempotency_key().empty() && keys_.count(sweep.idempotency_key()))
      return absl::AlreadyExistsError(
          absl::StrCat("idempotency key '", sweep.idempotency_key(), "' is taken"));
    for (const auto& j : jobs)
      if (jobs_.count(j.id()))
        return absl::AlreadyExistsError(absl::StrCat("job '", j.id(), "' exists"));
    sweeps_[sweep.id()] = sweep;
    sweep_order_.push_back(sweep.id());
    if (!sweep.idempotency_key().empty()) keys_[sweep.idempotency_key()] = sweep.id();
    for (const auto& j : jobs) {
      jobs_[j.id()] = j;
      job_order_[sweep.id()][j.index()] = j.id();
    }
    return absl::OkStatus();
  }

  absl::StatusOr<v1::Sweep> GetSweep(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sweeps_.find(id);
    if (it == sweeps_.end()) return absl::NotFoundError(absl::StrCat("no sweep '", id, "'"));
    return it->second;
  }

  absl::StatusOr<v1::Sweep> FindSweepByIdempotencyKey(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = keys_.find(key);
    if (key.empty() || it == keys_.end())
      return absl::NotFoundError(absl::StrCat("no sweep with idempotency key '", key, "'"));
    return sweeps_.at(it->second);
  }

  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::Sweep> out;
    for (const auto& id : sweep_order_) out.push_back(sweeps_.at(id));
    return out;
  }

  absl::Status UpdateJob(const v1::Job& job) override {
    std::lock_guard<std::mutex> lock(mu_);
    return UpdateJobLocked(job);
  }

  absl::Status UpdateJobAndAttempt(const v1::Job& job, const v1::Attempt& attempt) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto s = UpdateJobLocked(job); !s.ok()) return s;
    attempts_[{attempt.job_id(), attempt.number()}] = attempt;
    return absl::OkStatus();
  }

  absl::Status UpdateJobs(const std::vector<JobUpdate>& updates,
                          const v1::Attempt* attempt) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& u : updates) {
      auto it = jobs_.find(u.job.id());
      if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", u.job.id(), "'"));
      if (auto s = CheckExpected(it->second, u); !s.ok()) return s;
    }
    for (const auto& u : updates) jobs_[u.job.id()] = u.job;
    if (attempt) attempts_[{attempt->job_id(), attempt->number()}] = *attempt;
    return absl::OkStatus();
  }

  absl::StatusOr<v1::Job> GetJob(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
    return it->second;
  }

  absl::StatusOr<std::vector<v1::Job>> ListJobs(const JobFilter& filter) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::Job> out;
    for (const auto& sweep_id : sweep_order_) {
      if (!filter.sweep_id.empty() && filter.sweep_id != sweep_id) continue;
      for (const auto& [index, job_id] : job_order_[sweep_id]) {
        const v1::Job& j = jobs_.at(job_id);
        bool state_ok = filter.states.empty();
        for (auto s : filter.states) state_ok |= (s == j.state());
        if (state_ok) out.push_back(j);
      }
    }
    return out;
  }

  absl::StatusOr<std::vector<v1::Attempt>> ListAttempts(const std::string& job_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::Attempt> out;
    for (auto it = attempts_.lower_bound({job_id, 0});
         it != attempts_.end() && it->first.first == job_id; ++it)
      out.push_back(it->second);
    return out;
  }

  absl::Status AppendMetrics(const std::string& job_id, int32_t attempt,
                             const std::vector<v1::Metric>& metrics) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& m : metrics) metrics_[{job_id, attempt, m.name(), m.step()}] = m;
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<v1::Metric>> ListMetrics(const std::string& job_id, int32_t attempt,
                                                      const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::Metric> out;
    for (const auto& [key, m] : metrics_) {
      if (std::get<0>(key) != job_id || std::get<1>(key) != attempt) continue;
      if (!name.empty() && m.name() != name) continue;
      out.push_back(m);
    }
    return out;
  }

  absl::Status PutArtifact(const v1::ArtifactInfo& info, const std::string& bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    blobs_[info.sha256()] = bytes;
    if (!info.job_id().empty()) links_[{info.job_id(), info.name()}] = info;
    return absl::OkStatus();
  }

  absl::Status PutResumeState(const v1::ArtifactInfo& info, const std::string& bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    resume_[info.job_id()] = {info, bytes};
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> GetResumeState(const std::string& job_id,
                                             v1::ArtifactInfo* info) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = resume_.find(job_id);
    if (it == resume_.end())
      return absl::NotFoundError(absl::StrCat("job '", job_id, "' has no resume state"));
    if (info) *info = it->second.first;
    return it->second.second;
  }

  absl::Status DeleteResumeState(const std::string& job_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    resume_.erase(job_id);
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> GetArtifactBytes(const std::string& sha256) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blobs_.find(sha256);
    if (it == blobs_.end()) return absl::NotFoundError(absl::StrCat("no artifact ", sha256));
    return it->second;
  }

  absl::StatusOr<v1::ArtifactInfo> FindArtifact(const std::string& job_id,
                                                const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = links_.find({job_id, name});
    if (it == links_.end())
      return absl::NotFoundError(absl::StrCat("job '", job_id, "' has no artifact '", name, "'"));
    return it->second;
  }

  absl::StatusOr<std::vector<v1::ArtifactInfo>> ListArtifacts(const std::string& job_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::ArtifactInfo> out;
    for (auto it = links_.lower_bound({job_id, ""});
         it != links_.end() && it->first.first == job_id; ++it)
      out.push_back(it->second);
    return out;
  }

  absl::Status PutReport(const v1::Report& report) override {
    std::lock_guard<std::mutex> lock(mu_);
    reports_[{report.job_id(), report.pass_name()}] = report;
    return absl::OkStatus();
  }

  absl::StatusOr<v1::Report> GetReport(const std::string& job_id,
                                       const std::string& pass_name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = reports_.find({job_id, pass_name});
    if (it == reports_.end())
      return absl::NotFoundError(
          absl::StrCat("job '", job_id, "' has no report of pass '", pass_name, "'"));
    return it->second;
  }

  absl::Status PutWorker(const v1::WorkerInfo& worker) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!workers_.count(worker.id())) worker_order_.push_back(worker.id());
    workers_[worker.id()] = worker;
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<v1::WorkerInfo>> ListWorkers() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::WorkerInfo> out;
    for (const auto& id : worker_order_) out.push_back(workers_.at(id));
    return out;
  }

  absl::Status CreateToken(const v1::Token& token) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (tokens_.count(token.id()))
      return absl::AlreadyExistsError(absl::StrCat("token '", token.id(), "' exists"));
    tokens_[token.id()] = token;
    token_order_.push_back(token.id());
    return absl::OkStatus();
  }

  absl::StatusOr<v1::Token> GetToken(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(id);
    if (it == tokens_.end()) return absl::NotFoundError(absl::StrCat("no token '", id, "'"));
    return it->second;
  }

  absl::StatusOr<std::vector<v1::Token>> ListTokens() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<v1::Token> out;
    for (const auto& id : token_order_) out.push_back(tokens_.at(id));
    return out;
  }

  absl::StatusOr<bool> RevokeToken(const std::string& id, int64_t at_unix_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(id);
    if (it == tokens_.end()) return absl::NotFoundError(absl::StrCat("no token '", id, "'"));
    if (it->second.revoked_unix_ms() != 0) return false;
    it->second.set_revoked_unix_ms(at_unix_ms);
    return true;
  }

  absl::Status DeleteWorker(const std::string& worker_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (workers_.erase(worker_id)) std::erase(worker_order_, worker_id);
    return absl::OkStatus();
  }

 private:
  absl::Status UpdateJobLocked(const v1::Job& job) {
    auto it = jobs_.find(job.id());
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", job.id(), "'"));
    it->second = job;
    return absl::OkStatus();
  }

  std::mutex mu_;
  std::map<std::string, v1::Sweep> sweeps_;
  std::vector<std::string> sweep_order_;
  std::map<std::string, std::string> keys_;  // idempotency key -> sweep id
  std::map<std::string, v1::Job> jobs_;
  std::map<std::string, std::map<int32_t, std::string>> job_order_;  // sweep -> index -> job
  std::map<std::pair<std::string, int32_t>, v1::Attempt> attempts_;
  std::map<std::tuple<std::string, int32_t, std::string, int64_t>, v1::Metric> metrics_;
  std::map<std::string, std::pair<v1::ArtifactInfo, std::string>> resume_;  // by job id
  std::map<std::string, std::string> blobs_;
  std::map<std::pair<std::string, std::string>, v1::ArtifactInfo> links_;
  std::map<std::pair<std::string, std::string>, v1::Report> reports_;
  std::map<std::string, v1::WorkerInfo> workers_;
  std::vector<std::string> worker_order_;
  std::map<std::string, v1::Token> tokens_;
  std::vector<std::string> token_order_;
};

}  // namespace

std::unique_ptr<Store> NewInMemoryStore() { return std::make_unique<InMemoryStore>(); }

}  // namespace qsweep
