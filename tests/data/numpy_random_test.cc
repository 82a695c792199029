// Proves NumpyRandomState / NumpyPermutation bit-exact against numpy's
// legacy RandomState, computed at test time by /usr/bin/python3.
#include "worker/core/data/numpy_random.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "tests/data/test_util.h"

namespace qsweep {
namespace {

using ::qsweep::testing::RunPython;

std::vector<uint64_t> Numbers(const std::string& text) {
  std::istringstream in(text);
  std::vector<uint64_t> v;
  uint64_t x;
  while (in >> x) v.push_back(x);
  return v;
}

// A reference test whose Python module is missing fails; it is not skipped.
TEST(PythonReference, MissingModuleFailsTheTest) {
  EXPECT_FATAL_FAILURE(QSWEEP_REQUIRE_PYTHON("qsweep_no_such_module"),
                       "cannot import qsweep_no_such_module");
}

TEST(NumpyRandom, SeedingMatchesNumpyState) {
  QSWEEP_REQUIRE_PYTHON("numpy");
  for (uint32_t seed : {0u, 1u, 42u, 123456789u, 4294967295u}) {
    auto py = RunPython(
        "import sys, numpy as np\n"
        "k = np.random.RandomState(int(sys.argv[1])).get_state()[1]\n"
        "print(' '.join(str(int(v)) for v in k))\n",
        {absl::StrCat(seed)});
    ASSERT_EQ(py.exit_code, 0) << py.output;
    const auto want = Numbers(py.output);
    ASSERT_EQ(want.size(), 624u);
    NumpyRandomState rs(seed);
    for (int i = 0; i < 624; ++i)
      ASSERT_EQ(rs.key()[i], want[i]) << "seed " << seed << " word " << i;
  }
}

TEST(NumpyRandom, BoundedIntegersMatchLegacyRandint) {
  QSWEEP_REQUIRE_PYTHON("numpy");
  // Legacy randint uses masked rejection on 32-bit draws (small ranges) and
  // on 64-bit draws (ranges above 2^32), as Interval does.
  for (uint64_t max :
       {uint64_t{6}, uint64_t{999}, uint64_t{4294967295ull}, (uint64_t{1} << 40) + 4}) {
    for (uint32_t seed : {3u, 42u}) {
      auto py = RunPython(
          "import sys, numpy as np\n"
          "rs = np.random.RandomState(int(sys.argv[1]))\n"
          "v = rs.randint(0, int(sys.argv[2]) + 1, size=200, dtype=np.int64)\n"
          "print(' '.join(str(int(x)) for x in v))\n",
          {absl::StrCat(seed), absl::StrCat(max)});
      ASSERT_EQ(py.exit_code, 0) << py.output;
      const auto want = Numbers(py.output);
      ASSERT_EQ(want.size(), 200u);
      NumpyRandomState rs(seed);
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(rs.Interval(max), want[i]) << "max " << max << " seed " << seed << " i " << i;
      }
    }
  }
}

TEST(NumpyRandom, PermutationMatchesNumpy) {
  QSWEEP_REQUIRE_PYTHON("numpy");
  const std::pair<int64_t, uint64_t> cases[] = {
      {0, 42},     {1, 42},    {2, 42},    {10, 42},
      {1000, 42},  {12345, 0}, {65537, 7}, {200003, 4294967295ull},
      {986880, 42}};
  for (const auto& [n, seed] : cases) {
    auto py = RunPython(
        "import sys, numpy as np\n"
        "p = np.random.RandomState(int(sys.argv[2])).permutation(int(sys.argv[1]))\n"
        "print(' '.join(map(str, p.tolist())))\n",
        {absl::StrCat(n), absl::StrCat(seed)});
    ASSERT_EQ(py.exit_code, 0) << py.output;
    const auto want = Numbers(py.output);
    auto got = NumpyPermutation(n, seed);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want.size()) << "n " << n;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(static_cast<uint64_t>((*got)[i]), want[i])
          << "n " << n << " seed " << seed << " i " << i;
    }
  }
}

TEST(NumpyRandom, RejectsBadArguments) {
  EXPECT_EQ(NumpyPermutation(-1, 42).status().code(), absl::StatusCode::kInvalidArgument);
  auto big = NumpyPermutation(5, uint64_t{1} << 32);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("seed"), std::string::npos);
}

}  // namespace
}  // namespace qsweep
