// A Store that forwards every call to another store (`base`, by default a
// fresh in-memory one), for tests that record, fail or filter a few calls:
// they override just those and call ForwardingStore's to go on.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "storage/store.h"

namespace qsweep::testing {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(std::unique_ptr<Store> base = NewInMemoryStore())
      : base(std::move(base)) {}

  absl::Status CreateSweep(const v1::Sweep& s, const std::vector<v1::Job>& j) override {
    return base->CreateSweep(s, j);
  }
  absl::StatusOr<v1::Sweep> GetSweep(const std::string& id) override { return base->GetSweep(id); }
  absl::StatusOr<v1::Sweep> FindSweepByIdempotencyKey(const std::string& k) override {
    return base->FindSweepByIdempotencyKey(k);
  }
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps() override { return base->ListSweeps(); }
  absl::Status UpdateJob(const v1::Job& j) override { return base->UpdateJob(j); }
  absl::Status UpdateJobAndAttempt(const v1::Job& j, const v1::Attempt& a) override {
    return base->UpdateJobAndAttempt(j, a);
  }
  absl::Status UpdateJobs(const std::vector<JobUpdate>& jobs, const v1::Attempt* a) override {
    return base->UpdateJobs(jobs, a);
  }
  absl::StatusOr<v1::Job> GetJob(const std::string& id) override { return base->GetJob(id); }
  absl::StatusOr<std::vector<v1::Job>> ListJobs(const JobFilter& f) override {
    return base->ListJobs(f);
  }
  absl::StatusOr<std::vector<v1::Attempt>> ListAttempts(const std::string& id) override {
    return base->ListAttempts(id);
  }
  absl::Status AppendMetrics(const std::string& id, int32_t a,
                             const std::vector<v1::Metric>& m) override {
    return base->AppendMetrics(id, a, m);
  }
  absl::StatusOr<std::vector<v1::Metric>> ListMetrics(const std::string& id, int32_t a,
                                                      const std::string& n) override {
    return base->ListMetrics(id, a, n);
  }
  absl::Status PutArtifact(const v1::ArtifactInfo& i, const std::string& b) override {
    return base->PutArtifact(i, b);
  }
  absl::Status LinkArtifact(const v1::ArtifactInfo& i) override { return base->LinkArtifact(i); }
  absl::StatusOr<std::string> GetArtifactBytes(const std::string& s) override {
    return base->GetArtifactBytes(s);
  }
  absl::StatusOr<v1::ArtifactInfo> FindArtifact(const std::string& id,
                                                const std::string& n) override {
    return base->FindArtifact(id, n);
  }
  absl::StatusOr<std::vector<v1::ArtifactInfo>> ListArtifacts(const std::string& id) override {
    return base->ListArtifacts(id);
  }
  absl::Status PutResumeState(const v1::ArtifactInfo& i, const std::string& b) override {
    return base->PutResumeState(i, b);
  }
  absl::StatusOr<std::string> GetResumeState(const std::string& id, v1::ArtifactInfo* i) override {
    return base->GetResumeState(id, i);
  }
  absl::Status DeleteResumeState(const std::string& id) override {
    return base->DeleteResumeState(id);
  }
  absl::Status PutReport(const v1::Report& r) override { return base->PutReport(r); }
  absl::StatusOr<v1::Report> GetReport(const std::string& id, const std::string& p) override {
    return base->GetReport(id, p);
  }
  absl::Status PutWorker(const v1::WorkerInfo& w) override { return base->PutWorker(w); }
  absl::StatusOr<std::vector<v1::WorkerInfo>> ListWorkers() override { return base->ListWorkers(); }
  absl::Status CreateToken(const v1::Token& t) override { return base->CreateToken(t); }
  absl::StatusOr<v1::Token> GetToken(const std::string& id) override { return base->GetToken(id); }
  absl::StatusOr<std::vector<v1::Token>> ListTokens() override { return base->ListTokens(); }
  absl::StatusOr<bool> RevokeToken(const std::string& id, int64_t at) override {
    return base->RevokeToken(id, at);
  }
  absl::Status DeleteWorker(const std::string& id) override { return base->DeleteWorker(id); }
  absl::Status BeginBatch() override { return base->BeginBatch(); }
  absl::Status EndBatch() override { return base->EndBatch(); }

  std::unique_ptr<Store> base;
};

}  // namespace qsweep::testing
