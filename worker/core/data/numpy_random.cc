#include "worker/core/data/numpy_random.h"

#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace qsweep {
namespace {

constexpr int kN = 624;
constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpperMask = 0x80000000U;
constexpr uint32_t kLowerMask = 0x7fffffffU;

// Smallest all-ones bit mask covering `max`.
uint64_t MaskFor(uint64_t max) {
  uint64_t mask = max;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  return mask;
}

}  // namespace

NumpyRandomState::NumpyRandomState(uint32_t seed) {
  mt_[0] = seed;
  for (int i = 1; i < kN; ++i) {
    mt_[i] = 1812433253U * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  }
  pos_ = kN;
}

void NumpyRandomState::Regenerate() {
  int i = 0;
  for (; i < kN - kM; ++i) {
    uint32_t y = (mt_[i] & kUpperMask) | (mt_[i + 1] & kLowerMask);
    mt_[i] = mt_[i + kM] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
  }
  for (; i < kN - 1; ++i) {
    uint32_t y = (mt_[i] & kUpperMask) | (mt_[i + 1] & kLowerMask);
    mt_[i] = mt_[i + (kM - kN)] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
  }
  uint32_t y = (mt_[kN - 1] & kUpperMask) | (mt_[0] & kLowerMask);
  mt_[kN - 1] = mt_[kM - 1] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
  pos_ = 0;
}

uint32_t NumpyRandomState::NextUint32() {
  if (pos_ == kN) Regenerate();
  uint32_t y = mt_[pos_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

uint64_t NumpyRandomState::NextUint64() {
  uint64_t hi = NextUint32();
  return (hi << 32) | NextUint32();
}

uint64_t NumpyRandomState::Interval(uint64_t max) {
  if (max == 0) return 0;
  const uint64_t mask = MaskFor(max);
  uint64_t value;
  if (max <= 0xffffffffULL) {
    while ((value = (NextUint32() & mask)) > max) {
    }
  } else {
    while ((value = (NextUint64() & mask)) > max) {
    }
  }
  return value;
}

absl::StatusOr<std::vector<int64_t>> NumpyPermutation(int64_t n, uint64_t seed) {
  if (n < 0) {
    return absl::InvalidArgumentError(absl::StrCat("permutation: n must be >= 0, got ", n));
  }
  if (seed > 0xffffffffULL) {
    return absl::InvalidArgumentError(
        absl::StrCat("permutation: seed must be in [0, 2^32 - 1], got ", seed));
  }
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  NumpyRandomState rs(static_cast<uint32_t>(seed));
  // Legacy shuffle: Fisher-Yates from the last element down to index 1.
  for (int64_t i = n - 1; i >= 1; --i) {
    const auto j = static_cast<int64_t>(rs.Interval(static_cast<uint64_t>(i)));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return perm;
}

}  // namespace qsweep
