#include "worker/core/data/synthetic.h"

#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/core/data/jsc_loader.h"

namespace qsweep {
namespace {

constexpr double kLn2 = 0.693147180559945309417232121458;

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t z = seed ^ 0x4a53432d53594e54ULL;  // "JSC-SYNT"
    for (uint64_t& w : s_) w = SplitMix(z);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Standard normal (Marsaglia polar method, second value cached).
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u, v, s;
    do {
      u = 2.0 * Uniform() - 1.0;
      v = 2.0 * Uniform() - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double f = std::sqrt(-2.0 * DetLog(s) / s);
    spare_ = v * f;
    has_spare_ = true;
    return u * f;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t s_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// Latent means of one sub-population.
struct Population {
  double weight;    // probability within its class
  double log_mass;  // mean of ln(mass / GeV)
  double mass_sd;   // sd of ln(mass)
  double prong2;    // two-prong score
  double prong3;    // three-prong score
  double width;     // jet width (log scale)
  double log_mult;  // mean of ln(multiplicity)
};

// Classes in MASE's order g, q, w, z, t; each up to 3 sub-populations.
constexpr Population kPopulations[5][3] = {
    // gluon: wide, high multiplicity; a few hard splittings look two-prong.
    {{0.9, 3.40, 0.55, 0.0, 0.0, 0.5, 3.81},
     {0.1, 3.9, 0.4, 0.6, 0.0, 0.6, 3.9},
     {0, 0, 1, 0, 0, 0, 0}},
    // light quark: narrow, lower multiplicity.
    {{0.9, 3.00, 0.60, 0.0, 0.0, -0.3, 3.40},
     {0.1, 3.6, 0.4, 0.6, 0.0, -0.1, 3.5},
     {0, 0, 1, 0, 0, 0, 0}},
    // W: two prongs at ~80 GeV; sometimes a prong is lost (QCD-like).
    {{0.72, 4.38, 0.12, 1.0, 0.0, 0.1, 3.64},
     {0.28, 3.7, 0.5, 0.3, 0.0, 0.2, 3.55},
     {0, 0, 1, 0, 0, 0, 0}},
    // Z: like W at ~91 GeV, slightly wider.
    {{0.72, 4.51, 0.12, 1.0, 0.0, 0.15, 3.69},
     {0.28, 3.8, 0.5, 0.3, 0.0, 0.25, 3.6},
     {0, 0, 1, 0, 0, 0, 0}},
    // top: three prongs at ~172 GeV; partially contained tops look like a W.
    {{0.55, 5.15, 0.12, 0.6, 1.0, 0.6, 4.09},
     {0.3, 4.4, 0.2, 0.9, 0.3, 0.4, 3.9},
     {0.15, 3.9, 0.5, 0.3, 0.1, 0.5, 3.8}},
};

// One feature = exp(offset + a_w*width + a_2*prong2 + a_3*prong3 + sd*noise).
struct Ratio {
  double offset, a_w, a_2, a_3, sd;
};

// Features 1..13 (c1, c2, d2, d2_a1, m2, n2 ratios) in JscFeatureNames order.
constexpr Ratio kRatios[13] = {
    {-1.5, 0.5, 0.3, 0.1, 0.15},  {-2.0, 0.5, 0.4, 0.15, 0.2},  {-2.5, 0.5, 0.5, 0.2, 0.25},
    {-2.5, 0.4, -0.8, 0.3, 0.25}, {-3.0, 0.4, -0.9, 0.4, 0.3},  {0.5, 0.3, -1.0, 0.2, 0.3},
    {0.3, 0.3, -1.1, 0.3, 0.35},  {0.8, 0.2, -0.9, 0.2, 0.3},   {0.6, 0.2, -1.0, 0.3, 0.35},
    {-3.0, 0.3, -0.2, 0.9, 0.3},  {-3.5, 0.3, -0.2, 1.0, 0.35}, {-1.2, 0.2, -0.6, 0.0, 0.2},
    {-1.4, 0.2, -0.7, 0.1, 0.25},
};

const Population& PickPopulation(int cls, double u) {
  const Population* p = kPopulations[cls];
  double acc = 0.0;
  for (int k = 0; k < 3; ++k) {
    acc += p[k].weight;
    if (u < acc) return p[k];
  }
  return p[0];
}

// Writes one row of 16 features (rounded to float32) and returns its class.

// Latent sign pairs whose product, not either sign, depends on the class
// (+1 aligned, -1 opposed, 0 random; classes g,q,w,z,t). Each pair is
// carried by two features (multiplying them by exp(+-amp)), so only networks
// wide enough to model the interactions use them.
constexpr int kSignAlign[4][5] = {
    {+1, -1, +1, -1, 0}, {-1, +1, 0, +1, -1}, {+1, +1, -1, -1, 0}, {0, -1, +1, -1, +1}};
// The feature indices (into the 16) that carry each pair.
constexpr int kSignFeatures[4][2] = {{2, 12}, {4, 13}, {8, 1}, {10, 5}};
// Strength of the sign pairs and the fraction of rows whose pair disagrees
// with its class (tuned together with SyntheticOptions::overlap).
constexpr double kSignAmp = 0.18;
constexpr double kSignFlip = 0.15;

double Sign(Rng& rng) { return rng.Uniform() < 0.5 ? 1.0 : -1.0; }

void ApplySignPairs(Rng& rng, int cls, double* f) {
  for (int k = 0; k < 4; ++k) {
    const double s1 = Sign(rng);
    const double flip = rng.Uniform() < kSignFlip ? -1.0 : 1.0;
    const int align = kSignAlign[k][cls];
    const double s2 = align == 0 ? Sign(rng) : flip * align * s1;
    f[kSignFeatures[k][0]] *= DetExp(kSignAmp * s1);
    f[kSignFeatures[k][1]] *= DetExp(kSignAmp * s2);
  }
}

// Rounds to the nearest float32. Kept out of line: GCC 12 at -O3 with SLP
// vectorisation was seen to skip this rounding for some elements when it was
// written inline in GenerateRow's store loop.
[[gnu::noinline]] double ToFloatPrecision(double v) {
  return static_cast<double>(static_cast<float>(v));
}

int64_t GenerateRow(Rng& rng, double overlap, double* out) {
  const int cls = static_cast<int>(rng.Uniform() * 5.0);
  const Population& pop = PickPopulation(cls, rng.Uniform());
  const double log_mass = pop.log_mass + overlap * pop.mass_sd * rng.Normal();
  const double p2 = pop.prong2 + overlap * 0.35 * rng.Normal();
  const double p3 = pop.prong3 + overlap * 0.35 * rng.Normal();
  const double dw = overlap * 0.4 * rng.Normal();
  const double width = pop.width + dw;
  const double log_mult = pop.log_mult + overlap * 0.22 * rng.Normal() + 0.3 * dw;
  double f[16];
  const double mult = std::nearbyint(DetExp(log_mult));
  f[0] = -0.9 * DetLog(mult < 1.0 ? 1.0 : mult) + 0.2 * width + 0.15 * rng.Normal();
  for (int j = 0; j < 13; ++j) {
    const Ratio& r = kRatios[j];
    f[1 + j] = DetExp(r.offset + r.a_w * width + r.a_2 * p2 + r.a_3 * p3 + r.sd * rng.Normal());
  }
  ApplySignPairs(rng, cls, f);
  f[14] = DetExp(log_mass);
  f[15] = mult < 1.0 ? 1.0 : mult;
  for (int j = 0; j < 16; ++j) out[j] = ToFloatPrecision(f[j]);
  return cls;
}

}  // namespace

double DetLog(double x) {
  int e;
  double m = std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e -= 1;
  }
  const double t = (m - 1.0) / (m + 1.0);
  const double t2 = t * t;
  double sum = 0.0;
  for (int k = 21; k >= 1; k -= 2) sum = sum * t2 + 1.0 / k;
  return static_cast<double>(e) * kLn2 + 2.0 * t * sum;
}

double DetExp(double x) {
  if (x > 700.0) x = 700.0;
  if (x < -700.0) x = -700.0;
  // Cody-Waite reduction: kLn2Hi has trailing zero bits, so k * kLn2Hi is exact.
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  const double k = std::nearbyint(x / kLn2);
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;  // |r| <= ~0.347
  double sum = 1.0;
  for (int n = 16; n >= 1; --n) sum = 1.0 + sum * r / n;
  return std::ldexp(sum, static_cast<int>(k));
}

absl::StatusOr<RawTable> GenerateSyntheticJsc(const SyntheticOptions& options) {
  if (options.rows <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("jsc-synthetic: rows must be > 0 (default ",
                                                   kJscSizedRows, "), got ", options.rows));
  }
  if (!(options.overlap > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("jsc-synthetic: overlap must be > 0, got ", options.overlap));
  }
  RawTable t;
  t.rows = options.rows;
  t.n_features = 16;
  t.feature_names = JscFeatureNames();
  t.class_names = JscLabelNames();
  t.x.resize(static_cast<size_t>(t.rows) * 16);
  t.y.resize(static_cast<size_t>(t.rows));
  Rng rng(options.seed);
  for (int64_t r = 0; r < t.rows; ++r) {
    t.y[r] = GenerateRow(rng, options.overlap, &t.x[static_cast<size_t>(r) * 16]);
  }
  return t;
}

}  // namespace qsweep
