// Helpers shared by the torch-layer tests (torch-free).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>

#include "tests/common/subprocess.h"
#include "worker/core/data/dataset.h"

namespace qsweep::testing_util {

// Debian's interpreter with python3-torch (not the `python3` on PATH).
inline constexpr char kPython[] = "/usr/bin/python3";

inline std::string HelperScript() {
  return std::string(QSWEEP_SOURCE_DIR) + "/tests/torch/mase_models.py";
}

// Runs a shell command, returning its exit code (-1 when killed at the 5-minute
// deadline); stdout goes to `stdout_file` if given, else to ours, like stderr.
inline int RunCommand(const std::string& cmd, const std::string& stdout_file = "") {
  std::string full = cmd;
  if (!stdout_file.empty()) full += " > '" + stdout_file + "'";
  ::qsweep::testing::ProcessOptions o;
  o.timeout = std::chrono::minutes(5);
  const auto r = ::qsweep::testing::RunShell(full, o);
  std::cout << r.out;
  std::cerr << r.err;
  return r.code;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A fresh folder under the system temp dir, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("qsweep_torch_" + tag + "_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Separable 16-feature, 5-class data: Gaussian blobs around well-separated
// class centres (not JSC-like; for convergence and mechanics tests).
inline DataSplit Blobs(int64_t rows, uint32_t seed, int64_t n_features = 16,
                       int64_t n_classes = 5) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> noise(0.0f, 0.6f);
  std::uniform_int_distribution<int64_t> cls(0, n_classes - 1);
  DataSplit s;
  s.rows = rows;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = cls(gen);
    s.y.push_back(c);
    for (int64_t f = 0; f < n_features; ++f) {
      // Centre: +2 on the features congruent to the class, -1 elsewhere.
      const float centre = (f % n_classes == c) ? 2.0f : -1.0f;
      s.x.push_back(centre + noise(gen));
    }
  }
  return s;
}

inline Dataset BlobDataset(int64_t train_rows, int64_t test_rows) {
  Dataset d;
  d.name = "blobs-test";
  d.synthetic = true;
  d.n_features = 16;
  d.n_classes = 5;
  d.train_val = Blobs(train_rows, 1);
  d.test = Blobs(test_rows, 2);
  d.sha256 = "0123456789abcdef";
  d.description = "separable Gaussian blobs for tests";
  return d;
}

}  // namespace qsweep::testing_util
