// Helpers for the data tests: scratch directories and running Debian's
// /usr/bin/python3 (with numpy / h5py) as an independent reference.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

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

// Runs `code` with /usr/bin/python3, arguments appended (shell-quoted simply).
inline PyResult RunPython(const std::string& code, const std::vector<std::string>& args = {}) {
  char tmpl[] = "/tmp/qsweep_data_py_XXXXXX";
  const int fd = mkstemp(tmpl);
  PyResult r;
  if (fd < 0) return r;
  ::close(fd);
  std::ofstream(tmpl) << code;
  std::string cmd = std::string("/usr/bin/python3 ") + tmpl;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
    const int st = pclose(p);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  std::filesystem::remove(tmpl);
  return r;
}

// True when /usr/bin/python3 can import every module listed.
inline bool HavePython(const std::string& modules) {
  return RunPython("import " + modules + "\n").exit_code == 0;
}

#define QSWEEP_REQUIRE_PYTHON(modules)                                        \
  do {                                                                        \
    if (!::qsweep::testing::HavePython(modules))                              \
      GTEST_SKIP() << "/usr/bin/python3 lacks " << (modules) << "; skipping"; \
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
