// jsc-synthetic: determinism, shapes, labelling as SYNTHETIC, the JSC-like
// class structure, and bad sizes.
#include "worker/core/data/synthetic.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/test_util.h"
#include "worker/core/data/dataset.h"

namespace qsweep {
namespace {

using ::qsweep::testing::ScratchDir;
using ::testing::HasSubstr;

TEST(Synthetic, DeterministicLogAndExpAreAccurate) {
  for (double x : {1e-300, 1e-9, 0.1, 0.5, 0.70710678, 1.0, 1.5, 2.0, 10.0, 12345.678, 1e300}) {
    EXPECT_NEAR(DetLog(x), std::log(x), 4e-16 * std::max(1.0, std::fabs(std::log(x)))) << x;
  }
  for (double x : {-700.0, -20.0, -1.0, -0.3, 0.0, 0.3466, 1.0, 5.5, 80.0, 700.0}) {
    EXPECT_NEAR(DetExp(x), std::exp(x), 4e-16 * std::exp(x)) << x;
  }
}

TEST(Synthetic, SameSeedSameBitsOtherSeedOtherData) {
  SyntheticOptions o;
  o.rows = 3000;
  o.seed = 7;
  auto a = GenerateSyntheticJsc(o);
  auto b = GenerateSyntheticJsc(o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->x, b->x);
  EXPECT_EQ(a->y, b->y);
  o.seed = 8;
  auto c = GenerateSyntheticJsc(o);
  EXPECT_NE(a->x, c->x);
}

TEST(Synthetic, ShapedLikeJsc) {
  SyntheticOptions o;
  o.rows = 50000;
  auto t = GenerateSyntheticJsc(o);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->n_features, 16);
  std::vector<double> count(5), mass(5), mult(5);
  for (int64_t r = 0; r < t->rows; ++r) {
    const double* x = &t->x[r * 16];
    const int64_t c = t->y[r];
    count[c] += 1;
    mass[c] += x[14];
    mult[c] += x[15];
    for (int j = 1; j < 16; ++j) ASSERT_GT(x[j], 0.0) << "feature " << j << " is positive";
    for (int j = 0; j < 16; ++j) {
      ASSERT_EQ(x[j], static_cast<double>(static_cast<float>(x[j])))
          << "row " << r << " feature " << j << " is rounded to float32";
    }
    ASSERT_LT(x[0], 0.5) << "zlogz is mostly negative";
    ASSERT_EQ(x[15], std::nearbyint(x[15])) << "multiplicity is an integer";
  }
  for (int c = 0; c < 5; ++c) {
    EXPECT_NEAR(count[c] / o.rows, 0.2, 0.02);
    mass[c] /= count[c];
    mult[c] /= count[c];
  }
  // Mean groomed mass: top > Z > W > gluon, quark; gluons have more particles.
  EXPECT_GT(mass[4], mass[3]);
  EXPECT_GT(mass[3], mass[2]);
  EXPECT_GT(mass[2], mass[0]);
  EXPECT_GT(mass[0], mass[1]);
  EXPECT_GT(mult[0], mult[1]);
}

TEST(Synthetic, LoadedDatasetIsSplitScaledAndSaysSynthetic) {
  ScratchDir dir;
  DatasetRequest req;
  req.name = "jsc-synthetic";
  req.cache_dir = dir.str();
  req.synthetic_rows = 10001;
  req.synthetic_seed = 3;
  auto d = LoadDataset(req);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->synthetic);
  EXPECT_EQ(d->test.rows, 2001);  // ceil(0.2 * 10001)
  EXPECT_EQ(d->train_val.rows, 8000);
  EXPECT_EQ(d->n_features, 16);
  EXPECT_EQ(d->n_classes, 5);
  EXPECT_THAT(d->DisplayName(), HasSubstr("SYNTHETIC"));
  EXPECT_THAT(d->DisplayName(), HasSubstr("seed 3"));
  EXPECT_THAT(d->description, HasSubstr("SYNTHETIC"));
  EXPECT_THAT(d->description, HasSubstr("validation = train+val"));
  for (int j = 0; j < 16; ++j) {
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < d->train_val.rows; ++r) {
      const double v = d->train_val.x[r * 16 + j];
      s += v;
      s2 += v * v;
    }
    const double n = static_cast<double>(d->train_val.rows);
    EXPECT_NEAR(s / n, 0.0, 1e-4) << j;
    EXPECT_NEAR(std::sqrt(s2 / n - (s / n) * (s / n)), 1.0, 1e-4) << j;
  }
  req.synthetic_seed = 4;
  auto other = LoadDataset(req);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->sha256, d->sha256);
  // Each seed has its own prepared file: seed 4's did not replace seed 3's,
  // whose reload gives back the same data.
  const std::string path4 = PreparedPath(req);
  req.synthetic_seed = 3;
  const std::string path3 = PreparedPath(req);
  EXPECT_NE(path3, path4);
  EXPECT_TRUE(std::filesystem::exists(path3)) << path3;
  EXPECT_TRUE(std::filesystem::exists(path4)) << path4;
  auto again = LoadDataset(req);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sha256, d->sha256);
  EXPECT_EQ(again->train_val.x, d->train_val.x);
}

TEST(Synthetic, RejectsBadRowCounts) {
  ScratchDir dir;
  DatasetRequest req;
  req.name = "jsc-synthetic";
  req.cache_dir = dir.str();
  for (int64_t rows : {int64_t{-1}, int64_t{-986880}, int64_t{1} << 40}) {
    req.synthetic_rows = rows;
    auto d = LoadDataset(req);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << rows;
    EXPECT_THAT(d.status().message(), HasSubstr("synthetic_rows")) << rows;
  }
  req.synthetic_rows = 1;
  EXPECT_EQ(LoadDataset(req).status().code(), absl::StatusCode::kInvalidArgument);
  SyntheticOptions o;
  o.rows = 0;
  EXPECT_EQ(GenerateSyntheticJsc(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Dataset, UnknownNameListsKnownNames) {
  ScratchDir dir;
  DatasetRequest req;
  req.name = "jsc-real";
  req.cache_dir = dir.str();
  auto d = LoadDataset(req);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(d.status().message(), HasSubstr("unknown dataset 'jsc-real'"));
  EXPECT_THAT(d.status().message(), HasSubstr("jsc, jsc-synthetic"));
  req.name = "../../etc/passwd";
  EXPECT_EQ(LoadDataset(req).status().code(), absl::StatusCode::kNotFound);
  req.name = "";
  EXPECT_EQ(LoadDataset(req).status().code(), absl::StatusCode::kNotFound);
}

TEST(Dataset, ListSkipsBuiltinCacheFiles) {
  ScratchDir dir;
  DatasetRequest req;
  req.name = "jsc-synthetic";
  req.cache_dir = dir.str();
  req.synthetic_rows = 100;
  ASSERT_TRUE(LoadDataset(req).ok());
  EXPECT_THAT(ListDatasets(dir.str()), ::testing::ElementsAre("jsc", "jsc-synthetic"));
}

}  // namespace
}  // namespace qsweep
