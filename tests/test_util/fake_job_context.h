// A JobContext for tests that call a JobRunner directly (no worker loop, no
// server): an existing work folder, artifacts served from a map (or one blob
// for every hash), the slot device the test chooses; metrics and progress
// are dropped and the job is never stopped.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "worker/job_runner.h"

namespace qsweep::testing {

class FakeJobContext final : public JobContext {
 public:
  // Creates `work_dir`. `device` as JobContext::Device() ("" = the runner's own).
  explicit FakeJobContext(std::string work_dir, std::string device = "")
      : work_dir_(std::move(work_dir)), device_(std::move(device)) {
    std::filesystem::create_directories(work_dir_);
  }
  void ReportMetric(const v1::Metric&) override {}
  void ReportProgress(const v1::JobProgress&) override {}
  bool ShouldStop() override { return false; }
  const std::string& WorkDir() const override { return work_dir_; }
  absl::StatusOr<std::string> FetchArtifact(const std::string& sha256) override {
    ++fetches;
    if (every_artifact) return *every_artifact;
    auto it = artifacts.find(sha256);
    if (it == artifacts.end()) return absl::NotFoundError(sha256);
    return it->second;
  }
  std::string Device() const override { return device_; }

  std::map<std::string, std::string> artifacts;  // sha256 -> bytes
  std::optional<std::string> every_artifact;     // set: served for any hash
  int fetches = 0;

 private:
  std::string work_dir_;
  std::string device_;
};

}  // namespace qsweep::testing
