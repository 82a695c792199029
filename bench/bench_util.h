// Helpers shared by the gRPC benchmark drivers (qsweep-bench-coordinator,
// qsweep-bench-watch): timing and a token-authenticated channel.
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/secrets.h"

namespace qsweep::bench {

using Clock = std::chrono::steady_clock;

inline double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The p-quantile (0..1) of `v`, nearest rank; 0 for no values.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// A channel to `server` carrying the token of `token_file`; exits 2 with the
// reason when the file or the channel cannot be had.
inline std::shared_ptr<grpc::Channel> TokenChannel(const std::string& server,
                                                   const std::string& token_file) {
  auto token = ReadTokenFile(token_file);
  if (!token.ok()) {
    std::fprintf(stderr, "%s\n", token.status().ToString().c_str());
    std::exit(2);
  }
  ChannelOptions o;
  o.address = server;
  o.token = *token;
  auto ch = MakeChannel(o);
  if (!ch.ok()) {
    std::fprintf(stderr, "%s\n", ch.status().ToString().c_str());
    std::exit(2);
  }
  return *ch;
}

// A sweep of `trials` jsc-tiny trials differing only in seed: each is a job
// the benchmark's simulated workers lease and complete without training.
inline std::string NoOpSweepToml(int trials) {
  std::string seeds;
  for (int i = 0; i < trials; ++i) absl::StrAppend(&seeds, i ? ", " : "", i);
  return absl::StrCat("model = \"jsc-tiny\"\ndataset = \"jsc-synthetic\"\n[sweep.grid]\nseed = [",
                      seeds, "]\n");
}

}  // namespace qsweep::bench
