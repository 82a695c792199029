// qsweep-bench-data-load: how long a prepared 1M-row dataset takes to load
// from the cache (the path every training run takes), and how long it takes
// to generate and prepare it once.
//
//   qsweep-bench-data-load [ROWS] [REPEATS]   (default 1000000 rows, 5 loads)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "worker/core/data/dataset.h"
#include "worker/core/data/synthetic.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 1'000'000;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  if (rows <= 0 || repeats <= 0) {
    std::fprintf(stderr, "usage: qsweep-bench-data-load [ROWS>0] [REPEATS>0]\n");
    return 2;
  }
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("qsweep_bench_data_" + std::to_string(getpid())))
          .string();
  qsweep::DatasetRequest req;
  req.name = "jsc-synthetic";
  req.cache_dir = dir;
  req.synthetic_rows = rows;

  auto t0 = std::chrono::steady_clock::now();
  qsweep::SyntheticOptions gen;
  gen.rows = rows;
  auto raw = qsweep::GenerateSyntheticJsc(gen);
  const double gen_s = Seconds(t0);
  if (!raw.ok()) {
    std::fprintf(stderr, "generate failed: %s\n", std::string(raw.status().message()).c_str());
    return 1;
  }
  t0 = std::chrono::steady_clock::now();
  auto prepared = qsweep::LoadDataset(req);  // generate + dedup + split + scale + write
  const double prepare_s = Seconds(t0);
  if (!prepared.ok()) {
    std::fprintf(stderr, "prepare failed: %s\n", std::string(prepared.status().message()).c_str());
    return 1;
  }
  const double bytes = static_cast<double>(std::filesystem::file_size(qsweep::PreparedPath(req)));

  std::vector<double> loads;
  for (int i = 0; i < repeats; ++i) {
    t0 = std::chrono::steady_clock::now();
    auto d = qsweep::LoadDataset(req);  // read + SHA-256 verify
    loads.push_back(Seconds(t0));
    if (!d.ok() || d->sha256 != prepared->sha256) {
      std::fprintf(stderr, "load failed\n");
      return 1;
    }
  }
  std::sort(loads.begin(), loads.end());
  const double med = loads[loads.size() / 2];
  std::printf("dataset: %s\n", prepared->DisplayName().c_str());
  std::printf("rows: %lld (%lld train+val, %lld test), file %.1f MB\n",
              static_cast<long long>(rows), static_cast<long long>(prepared->train_val.rows),
              static_cast<long long>(prepared->test.rows), bytes / 1e6);
  std::printf("generate only:               %.3f s (%.2f M rows/s)\n", gen_s, rows / gen_s / 1e6);
  std::printf("generate+prepare+write once: %.3f s\n", prepare_s);
  std::printf(
      "LoadDataset from cache (SHA-256 verified), %d runs: median %.3f s, min %.3f s, "
      "max %.3f s\n",
      repeats, med, loads.front(), loads.back());
  std::printf("  = %.2f M rows/s, %.0f MB/s (median)\n", rows / med / 1e6, bytes / med / 1e6);
  std::filesystem::remove_all(dir);
  return 0;
}
