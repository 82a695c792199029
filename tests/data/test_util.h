// Helpers for the data tests: scratch directories and running Debian's
// /usr/bin/python3 (with numpy / h5py) as an independent reference.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/common/subprocess.h"

namespace qsweep::testing {

// A fresh directory removed at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("qsweep_data_" + std::string(info->test_suite_name()) + "_" + info->name() + "_" +
             std::to_string(getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

struct PyResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `code` with /usr/bin/python3 and `args`, killed after 5 minutes.
inline PyResult RunPython(const std::string& code, const std::vector<std::string>& args = {}) {
  char tmpl[] = "/tmp/qsweep_data_py_XXXXXX";
  const int fd = mkstemp(tmpl);
  PyResult r;
  if (fd < 0) return r;
  ::close(fd);
  std::ofstream(tmpl) << code;
  std::vector<std::string> argv = {"/usr/bin/python3", tmpl};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions o;
  o.timeout = std::chrono::minutes(5);
  o.merge_stderr = true;
  ProcessResult p = RunProcess(argv, o);
  r.exit_code = p.code;
  r.output = p.out + p.err;
  std::filesystem::remove(tmpl);
  return r;
}

// The independent references need Debian's python3-numpy / python3-h5py
// (deploy/setup-debian.sh installs them). Without them the test FAILS: a
// missing reference must not pass as a skip.
#define QSWEEP_REQUIRE_PYTHON(modules)                                                            \
  do {                                                                                            \
    const auto qsweep_py = ::qsweep::testing::RunPython("import " + std::string(modules));        \
    ASSERT_EQ(qsweep_py.exit_code, 0)                                                             \
        << "/usr/bin/python3 cannot import " << (modules)                                         \
        << " (install python3-numpy python3-h5py: deploy/setup-debian.sh): " << qsweep_py.output; \
  } while (0)

// Whitespace-separated numbers from a file written by a reference script.
template <typename T>
std::vector<T> ReadNumbers(const std::string& path) {
  std::ifstream in(path);
  std::vector<T> v;
  T x;
  while (in >> x) v.push_back(x);
  return v;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace qsweep::testing
