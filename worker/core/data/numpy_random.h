// A bit-exact reimplementation of the parts of numpy's legacy
// `numpy.random.RandomState` that MASE's data split depends on: MT19937 seeded
// from one 32-bit integer (init_genrand), 32-bit draws, bounded integers by
// masked rejection sampling, and the legacy Fisher-Yates `shuffle` /
// `permutation`. sklearn's `train_test_split(random_state=42)` is built on
// `RandomState(42).permutation(n)`, so reproducing it reproduces MASE's split.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace qsweep {

// Not thread-safe; one instance per stream.
class NumpyRandomState {
 public:
  // Like `numpy.random.RandomState(seed)` for an integer seed in [0, 2^32).
  explicit NumpyRandomState(uint32_t seed);

  // The next raw 32-bit MT19937 output (numpy's `random_uint32`).
  uint32_t NextUint32();
  // numpy's `next_uint64` for MT19937: (first draw << 32) | second draw.
  uint64_t NextUint64();
  // A uniform integer in [0, max], as numpy's legacy `random_interval`.
  uint64_t Interval(uint64_t max);
  // The 624-word state key (what `get_state()[1]` returns).
  const std::array<uint32_t, 624>& key() const { return mt_; }

 private:
  void Regenerate();
  std::array<uint32_t, 624> mt_;
  int pos_;
};

// numpy `RandomState(seed).permutation(n)`. INVALID_ARGUMENT when n < 0 or
// seed does not fit in 32 bits (numpy raises for those too).
absl::StatusOr<std::vector<int64_t>> NumpyPermutation(int64_t n, uint64_t seed);

}  // namespace qsweep
