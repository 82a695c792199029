#include "worker/core/passes/quantizers.h"

#include <algorithm>
#include <cfenv>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace qsweep {
namespace {

int DefaultBias(int exponent_bits) { return (1 << std::max(exponent_bits - 1, 0)) - 1; }

double Sign(double x) { return std::signbit(x) ? -1.0 : 1.0; }

// floor(log2(a)) for a > 0, exact.
int FloorLog2(double a) {
  int ex = 0;
  std::frexp(a, &ex);  // a = fr * 2^ex, fr in [0.5, 1)
  return ex - 1;
}

int CeilLog2(double a) {
  int fl = FloorLog2(a);
  return std::ldexp(1.0, fl) == a ? fl : fl + 1;
}

std::vector<float> MapValues(const std::vector<float>& v, auto fn) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(fn(static_cast<double>(v[i])));
  return out;
}

std::vector<float> QuantizeBlockFp(const std::vector<float>& values,
                                   const std::vector<int64_t>& shape, const OperandFormat& f) {
  const int ew = f.exponent_width.value_or(8);
  const int bias = f.exponent_bias.value_or(DefaultBias(ew));
  const int emin = -bias, emax = (1 << ew) - 1 - bias;
  const int64_t last = shape.empty() ? static_cast<int64_t>(values.size()) : shape.back();
  const int64_t block = f.block_size.empty() ? 16 : std::max(f.block_size.back(), 1);
  const double mant_scale = std::ldexp(1.0, f.width - 1);
  const double kmax = mant_scale - 1.0;
  std::vector<float> out(values.size());
  for (size_t row = 0; row * last < values.size(); ++row) {
    for (int64_t b0 = 0; b0 < last; b0 += block) {
      size_t lo = row * last + b0, hi = row * last + std::min(last, b0 + block);
      double amax = 0.0;
      for (size_t i = lo; i < hi; ++i) amax = std::max(amax, std::fabs(double(values[i])));
      if (amax == 0.0) {
        for (size_t i = lo; i < hi; ++i) out[i] = 0.0f;
        continue;
      }
      int e = std::clamp(CeilLog2(amax), emin, emax);
      for (size_t i = lo; i < hi; ++i) {
        double a = std::fabs(double(values[i]));
        double k = std::clamp(std::nearbyint(std::ldexp(a, -e) * mant_scale), 0.0, kmax);
        out[i] = static_cast<float>(Sign(values[i]) * std::ldexp(k / mant_scale, e));
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<float>> QuantizeTernary(const std::vector<float>& values,
                                                   const OperandFormat& f) {
  double t = 0.0;
  if (f.mean) {
    t = 0.75 * *f.mean;
  } else if (f.max) {
    t = 0.05 * *f.max;
  } else if (f.median) {
    t = 0.75 * *f.median;
  } else {
    return absl::FailedPreconditionError(
        "ternary quantization needs a threshold statistic (mean, max or median): run "
        "profile_statistics first or set <operand>_mean / _max / _median");
  }
  if (f.scaling_factor && !f.mean)
    return absl::FailedPreconditionError("ternary scaling_factor needs the operand's mean");
  double scale = f.scaling_factor ? *f.mean : 1.0;
  return MapValues(values, [&](double x) { return x > t ? scale : (x < -t ? -scale : 0.0); });
}

}  // namespace

const std::vector<std::string>& ArithmeticNames() {
  static const std::vector<std::string> kNames = {"integer",          "fixed",  "minifloat_ieee",
                                                  "minifloat_denorm", "log",    "block_fp",
                                                  "binary",           "ternary"};
  return kNames;
}

absl::StatusOr<Arithmetic> ParseArithmetic(const std::string& name) {
  if (name == "integer" || name == "fixed") return Arithmetic::kInteger;
  if (name == "minifloat_ieee") return Arithmetic::kMinifloatIeee;
  if (name == "minifloat_denorm") return Arithmetic::kMinifloatDenorm;
  if (name == "log") return Arithmetic::kLog;
  if (name == "block_fp") return Arithmetic::kBlockFp;
  if (name == "binary") return Arithmetic::kBinary;
  if (name == "ternary") return Arithmetic::kTernary;
  static const std::vector<std::string> kMaseOnly = {"block_minifloat", "block_log",
                                                     "binary_residual", "lutnet", "logicnets"};
  std::string why = std::find(kMaseOnly.begin(), kMaseOnly.end(), name) != kMaseOnly.end()
                        ? "is a MASE arithmetic that qsweep does not implement"
                        : "is not a known arithmetic";
  return absl::InvalidArgumentError(absl::StrCat(
      "arithmetic '", name, "' ", why, "; allowed: ", absl::StrJoin(ArithmeticNames(), ", ")));
}

std::string ArithmeticName(Arithmetic a) {
  switch (a) {
    case Arithmetic::kInteger:
      return "integer";
    case Arithmetic::kMinifloatIeee:
      return "minifloat_ieee";
    case Arithmetic::kMinifloatDenorm:
      return "minifloat_denorm";
    case Arithmetic::kLog:
      return "log";
    case Arithmetic::kBlockFp:
      return "block_fp";
    case Arithmetic::kBinary:
      return "binary";
    case Arithmetic::kTernary:
      return "ternary";
  }
  return "?";
}

std::vector<int> OperandFormat::Precision() const {
  switch (arithmetic) {
    case Arithmetic::kInteger:
      return {width, FracWidth()};
    case Arithmetic::kMinifloatIeee:
    case Arithmetic::kMinifloatDenorm: {
      int e = exponent_width.value_or(0);
      return {width, e, exponent_bias.value_or(DefaultBias(e))};
    }
    case Arithmetic::kBlockFp: {
      int e = exponent_width.value_or(8);
      return {width, e, exponent_bias.value_or(DefaultBias(e))};
    }
    case Arithmetic::kLog:
      return {width, exponent_bias.value_or(DefaultBias(width - 1))};
    case Arithmetic::kBinary:
    case Arithmetic::kTernary:
      return {width};
  }
  return {width};
}

std::string OperandFormat::Describe() const {
  std::vector<int> p = Precision();
  switch (arithmetic) {
    case Arithmetic::kInteger:
      return absl::StrCat("integer ", p[0], "/", p[1]);
    case Arithmetic::kMinifloatIeee:
    case Arithmetic::kMinifloatDenorm:
    case Arithmetic::kBlockFp:
      return absl::StrCat(ArithmeticName(arithmetic), " w", p[0], " e", p[1], " b", p[2]);
    case Arithmetic::kLog:
      return absl::StrCat("log w", p[0], " b", p[1]);
    case Arithmetic::kBinary:
      return bipolar ? "binary {-1,+1}" : "binary {0,1}";
    case Arithmetic::kTernary:
      return scaling_factor ? "ternary {-m,0,+m}" : "ternary {-1,0,+1}";
  }
  return "?";
}

double RoundHalfEven(double x) {
  // nearbyint honours the current rounding mode; qsweep never changes it from
  // FE_TONEAREST, which is round half to even.
  return std::nearbyint(x);
}

double QuantizeInteger(double x, int width, int frac_width, bool is_signed) {
  double qmin = is_signed ? -std::ldexp(1.0, width - 1) : 0.0;
  double qmax = is_signed ? std::ldexp(1.0, width - 1) - 1.0 : std::ldexp(1.0, width) - 1.0;
  double r = RoundHalfEven(std::ldexp(x, frac_width));
  if (r < qmin) r = qmin;
  if (r > qmax) r = qmax;
  return std::ldexp(r, -frac_width);
}

double QuantizeMinifloatIeee(double x, int width, int exponent_width,
                             std::optional<int> exponent_bias) {
  const int m = width - exponent_width - 1;
  const int bias = exponent_bias.value_or(DefaultBias(exponent_width));
  const int emin_normal = 1 - bias;
  const int emax = (1 << exponent_width) - 1 - bias;
  const double a = std::fabs(x);
  if (a == 0.0 || std::isnan(x)) return x;
  const double max_value = (2.0 - std::ldexp(1.0, -m)) * std::ldexp(1.0, emax);
  int e = std::isinf(a) ? emax : std::max(FloorLog2(a), emin_normal);  // subnormals share emin
  e = std::min(e, emax);
  double step = std::ldexp(1.0, e - m);
  double v = std::min(RoundHalfEven(a / step) * step, max_value);
  return Sign(x) * v;
}

double QuantizeMinifloatDenorm(double x, int width, int exponent_width,
                               std::optional<int> exponent_bias) {
  const int m = width - exponent_width - 1;
  const int bias = exponent_bias.value_or(DefaultBias(exponent_width));
  const int emin = -bias, emax = (1 << exponent_width) - 1 - bias;
  const double a = std::fabs(x);
  if (a == 0.0 || std::isnan(x)) return x;
  int e = std::isinf(a) ? emax : std::clamp(CeilLog2(a), emin, emax);
  double scale = std::ldexp(1.0, m);
  double k = std::clamp(RoundHalfEven(std::ldexp(a, -e) * scale), 0.0, scale - 1.0);
  return Sign(x) * std::ldexp(k / scale, e);
}

double QuantizeLog(double x, int width, std::optional<int> exponent_bias) {
  const int exp_bits = width - 1;
  const int bias = exponent_bias.value_or(DefaultBias(exp_bits));
  const int emin = -bias;
  const int emax = (exp_bits >= 31 ? (1 << 30) : (1 << exp_bits)) - 1 - bias;
  double e = RoundHalfEven(std::log2(std::fabs(x) + 0.1 * std::ldexp(1.0, emin)));
  e = std::clamp(e, double(emin), double(emax));
  return Sign(x) * std::ldexp(1.0, static_cast<int>(e));
}

double QuantizeBinary(double x, bool bipolar) {
  if (x >= 0) return 1.0;
  return bipolar ? -1.0 : 0.0;
}

absl::Status ValidateFormat(const OperandFormat& f, const std::string& prefix) {
  auto bad = [&](const std::string& field, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "_", field, " ", why));
  };
  if (f.width <= 0) return bad("width", absl::StrCat("must be > 0, got ", f.width));
  if (f.width > 32) return bad("width", absl::StrCat("must be <= 32, got ", f.width));
  switch (f.arithmetic) {
    case Arithmetic::kInteger:
      if (f.frac_width && std::abs(*f.frac_width) > 64)
        return bad("frac_width", absl::StrCat("must be within [-64, 64], got ", *f.frac_width));
      break;
    case Arithmetic::kMinifloatIeee:
    case Arithmetic::kMinifloatDenorm:
      if (!f.exponent_width) return bad("exponent_width", "is required for minifloat");
      if (*f.exponent_width <= 0 || *f.exponent_width > 11 || *f.exponent_width >= f.width)
        return bad("exponent_width",
                   absl::StrCat("must be in [1, min(11, width - 1)], got ", *f.exponent_width));
      break;
    case Arithmetic::kBlockFp:
      if (f.exponent_width && (*f.exponent_width <= 0 || *f.exponent_width > 11))
        return bad("exponent_width", absl::StrCat("must be in [1, 11], got ", *f.exponent_width));
      if (f.width < 2) return bad("width", "must be >= 2 for block_fp (sign + mantissa)");
      for (int b : f.block_size)
        if (b <= 0) return bad("block_size", absl::StrCat("entries must be > 0, got ", b));
      break;
    case Arithmetic::kLog:
      if (f.width < 2 || f.width > 12)
        return bad("width", absl::StrCat("must be in [2, 12] for log, got ", f.width));
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> QuantizeArray(const std::vector<float>& values,
                                                 const std::vector<int64_t>& shape,
                                                 const OperandFormat& f, bool is_signed) {
  switch (f.arithmetic) {
    case Arithmetic::kInteger: {
      int frac = f.FracWidth();
      return MapValues(values,
                       [&](double x) { return QuantizeInteger(x, f.width, frac, is_signed); });
    }
    case Arithmetic::kMinifloatIeee:
      return MapValues(values, [&](double x) {
        return QuantizeMinifloatIeee(x, f.width, f.exponent_width.value_or(4), f.exponent_bias);
      });
    case Arithmetic::kMinifloatDenorm:
      return MapValues(values, [&](double x) {
        return QuantizeMinifloatDenorm(x, f.width, f.exponent_width.value_or(4), f.exponent_bias);
      });
    case Arithmetic::kLog:
      return MapValues(values, [&](double x) { return QuantizeLog(x, f.width, f.exponent_bias); });
    case Arithmetic::kBlockFp:
      return QuantizeBlockFp(values, shape, f);
    case Arithmetic::kBinary:
      return MapValues(values, [&](double x) { return QuantizeBinary(x, f.bipolar); });
    case Arithmetic::kTernary:
      return QuantizeTernary(values, f);
  }
  return absl::InternalError("unhandled arithmetic");
}

}  // namespace qsweep
