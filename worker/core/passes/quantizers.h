// Reference quantizer math for every arithmetic the quantize pass supports, in
// plain C++ on float arrays (fake quantization: the result is still float).
// The torch layer uses the same definitions; tests pin them to MASE.md §5.2-5.3.
// Torch-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qsweep {

enum class Arithmetic {
  kInteger,          // "integer" and its alias "fixed"
  kMinifloatIeee,    // "minifloat_ieee"
  kMinifloatDenorm,  // "minifloat_denorm"
  kLog,              // "log"
  kBlockFp,          // "block_fp"
  kBinary,           // "binary"
  kTernary,          // "ternary"
};

// MASE name -> Arithmetic. INVALID_ARGUMENT listing the supported names for an
// unknown or unsupported name.
absl::StatusOr<Arithmetic> ParseArithmetic(const std::string& name);
// Canonical MASE name ("integer" for both integer and fixed).
std::string ArithmeticName(Arithmetic a);
// Every accepted name, in display order.
const std::vector<std::string>& ArithmeticNames();

// The number format of one operand (data_in, weight or bias).
struct OperandFormat {
  Arithmetic arithmetic = Arithmetic::kInteger;
  int width = 8;
  // integer: fractional bits. Default: width / 2 (MASE's "NA").
  std::optional<int> frac_width;
  // minifloat / block_fp: exponent bits. Default: 8 for block_fp.
  std::optional<int> exponent_width;
  // minifloat / log / block_fp: exponent bias. Default: 2^(exponent_bits-1) - 1.
  std::optional<int> exponent_bias;
  // block_fp: block shape along the trailing dimension. Default: {16}.
  std::vector<int> block_size = {16};
  // binary: {-1, +1} when true, {0, 1} when false. Default: true.
  bool bipolar = true;
  // ternary: scale the levels by `mean`. Default: false.
  bool scaling_factor = false;
  // ternary thresholds from profiled statistics (first one set wins):
  // 0.75 * mean, else 0.05 * max, else 0.75 * median.
  std::optional<double> mean, median, max;

  int FracWidth() const { return frac_width ? *frac_width : width / 2; }
  // MASE's metadata precision list: [width, frac] for integer,
  // [width, exponent_width, exponent_bias] for minifloat and block_fp,
  // [width, exponent_bias] for log, [width] for binary and ternary.
  std::vector<int> Precision() const;
  // Short human-readable form, e.g. "integer 8/4", "minifloat_ieee w8 e4 b7".
  std::string Describe() const;
};

// Round half to even (torch.round), in double.
double RoundHalfEven(double x);

// MASE's integer quantizer: clamp(round_half_even(x * 2^f), qmin, qmax) / 2^f
// with [qmin, qmax] = [-2^(w-1), 2^(w-1)-1] when signed, [0, 2^w-1] otherwise.
double QuantizeInteger(double x, int width, int frac_width, bool is_signed);

// Minifloat with m = w - e - 1 mantissa bits, IEEE-like layout without inf/NaN:
// normals (1 + k/2^m) * 2^E for E in [1 - bias, 2^e - 1 - bias], subnormals
// k/2^m * 2^(1 - bias); round half to even; saturating; 0 stays 0.
double QuantizeMinifloatIeee(double x, int width, int exponent_width,
                             std::optional<int> exponent_bias);
// Minifloat without implicit bit: E = ceil(log2|x|) clamped to the exponent
// range, value = round(|x|/2^E * 2^m) / 2^m * 2^E with the mantissa in [0, 2^m-1].
double QuantizeMinifloatDenorm(double x, int width, int exponent_width,
                               std::optional<int> exponent_bias);
// Log quantizer: sign(x) * 2^e, e = clamp(round(log2(|x| + 0.1*2^emin)), emin, emax),
// exponent bits w - 1; there is no zero (x = 0 maps to +2^emin).
double QuantizeLog(double x, int width, std::optional<int> exponent_bias);
// Binary: bipolar -> x >= 0 ? 1 : -1; otherwise x >= 0 ? 1 : 0.
double QuantizeBinary(double x, bool bipolar);

// Quantizes `values` (row-major with `shape`) in the given format. `is_signed`
// matters for integer only. block_fp works on blocks along the last dimension
// of each row. ternary needs one of mean/max/median (FAILED_PRECONDITION
// otherwise: run profile_statistics first).
absl::StatusOr<std::vector<float>> QuantizeArray(const std::vector<float>& values,
                                                 const std::vector<int64_t>& shape,
                                                 const OperandFormat& format, bool is_signed);

// Checks a format's fields: width > 0 etc. INVALID_ARGUMENT naming `field_prefix`
// (e.g. "seq_blocks_2.weight") and the bad field.
absl::Status ValidateFormat(const OperandFormat& format, const std::string& field_prefix);

}  // namespace qsweep
