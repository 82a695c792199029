// Reference quantizer math against MASE.md §5.2-5.3 worked values.
#include "worker/core/passes/quantizers.h"

#include <gtest/gtest.h>

#include <cmath>

namespace qsweep {
namespace {

double Q84(double x) { return QuantizeInteger(x, 8, 4, true); }

TEST(IntegerQuantizer, MaseWorkedValuesAt8_4) {
  EXPECT_EQ(Q84(0.09375), 0.125);  // 1.5 -> 2
  EXPECT_EQ(Q84(0.03125), 0.0);    // 0.5 -> 0
  EXPECT_EQ(Q84(-0.03125), 0.0);
  EXPECT_TRUE(std::signbit(Q84(-0.03125)));  // -0.0, as torch.round gives
  EXPECT_EQ(Q84(100.0), 7.9375);
  EXPECT_EQ(Q84(-100.0), -8.0);
  EXPECT_EQ(QuantizeInteger(100.0, 8, 4, false), 15.9375);
  EXPECT_EQ(QuantizeInteger(-3.0, 8, 4, false), 0.0);
}

TEST(IntegerQuantizer, RoundHalfToEven) {
  EXPECT_EQ(Q84(0.15625), 0.125);    // 2.5 -> 2
  EXPECT_EQ(Q84(0.21875), 0.25);     // 3.5 -> 4
  EXPECT_EQ(Q84(-0.09375), -0.125);  // -1.5 -> -2
  EXPECT_EQ(Q84(-0.15625), -0.125);  // -2.5 -> -2
  EXPECT_EQ(Q84(0.1), 0.125);        // 1.6 -> 2
  EXPECT_EQ(RoundHalfEven(0.5), 0.0);
  EXPECT_EQ(RoundHalfEven(1.5), 2.0);
  EXPECT_EQ(RoundHalfEven(2.5), 2.0);
  EXPECT_EQ(RoundHalfEven(-3.5), -4.0);
}

struct RangeCase {
  int width;
  std::optional<int> frac;  // nullopt = "NA" -> width / 2
  bool is_signed;
  double lo, hi, step;
};

TEST(IntegerQuantizer, MaseRangeTable) {
  const RangeCase cases[] = {
      {8, 4, true, -8.0, 7.9375, 0.0625},
      {8, 4, false, 0.0, 15.9375, 0.0625},
      {4, std::nullopt, true, -2.0, 1.75, 0.25},
      {2, std::nullopt, true, -1.0, 0.5, 0.5},
      {16, 8, true, -128.0, 127.99609375, 0.00390625},
  };
  for (const auto& c : cases) {
    OperandFormat f;
    f.width = c.width;
    f.frac_width = c.frac;
    int frac = f.FracWidth();
    SCOPED_TRACE(testing::Message() << c.width << "/" << frac << " signed=" << c.is_signed);
    EXPECT_EQ(QuantizeInteger(-1e9, c.width, frac, c.is_signed), c.lo);
    EXPECT_EQ(QuantizeInteger(1e9, c.width, frac, c.is_signed), c.hi);
    EXPECT_EQ(QuantizeInteger(c.step, c.width, frac, c.is_signed), c.step);
    EXPECT_EQ(QuantizeInteger(c.step * 0.49, c.width, frac, c.is_signed), 0.0);
    EXPECT_EQ(QuantizeInteger(c.step * 0.51, c.width, frac, c.is_signed), c.step);
  }
}

TEST(IntegerQuantizer, ArrayUsesFracDefault) {
  OperandFormat f;
  f.width = 4;  // frac "NA" -> 2
  auto q = QuantizeArray({0.3f, -5.0f, 1.0f}, {3}, f, true);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)[0], 0.25f);
  EXPECT_EQ((*q)[1], -2.0f);
  EXPECT_EQ((*q)[2], 1.0f);
}

TEST(MinifloatIeee, E4M3) {
  // w=8, e=4 -> 3 mantissa bits, bias 7; largest value (2 - 1/8) * 2^8 = 480.
  auto q = [](double x) { return QuantizeMinifloatIeee(x, 8, 4, std::nullopt); };
  EXPECT_EQ(q(1.0), 1.0);
  EXPECT_EQ(q(1.0625), 1.0);   // halfway between 1 and 1.125 -> even mantissa
  EXPECT_EQ(q(1.1875), 1.25);  // halfway between 1.125 and 1.25 -> even
  EXPECT_EQ(q(-3.3), -3.25);
  EXPECT_EQ(q(1e6), 480.0);
  EXPECT_EQ(q(0.0), 0.0);
  EXPECT_EQ(q(1.97), 2.0);  // carries into the next binade
  // Subnormal step 2^(1-7-3) = 2^-9.
  EXPECT_EQ(q(std::ldexp(1.0, -9)), std::ldexp(1.0, -9));
  EXPECT_EQ(q(std::ldexp(1.0, -11)), 0.0);
}

TEST(LogQuantizer, PowersOfTwo) {
  // w=4 -> 3 exponent bits, bias 3, exponents [-3, 4].
  auto q = [](double x) { return QuantizeLog(x, 4, std::nullopt); };
  EXPECT_EQ(q(3.0), 4.0);
  EXPECT_EQ(q(-0.3), -0.25);
  EXPECT_EQ(q(1000.0), 16.0);
  EXPECT_EQ(q(0.0), 0.125);  // no zero
}

TEST(BlockFp, SharedExponent) {
  OperandFormat f;
  f.arithmetic = Arithmetic::kBlockFp;
  f.width = 8;
  f.exponent_width = 8;
  auto q = QuantizeArray({1.0f, 0.5f, -0.25f, 0.3f}, {1, 4}, f, true);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ((*q)[0], 127.0f / 128.0f);  // mantissa saturates at 2^(w-1) - 1
  EXPECT_EQ((*q)[1], 0.5f);
  EXPECT_EQ((*q)[2], -0.25f);
  EXPECT_EQ((*q)[3], 38.0f / 128.0f);
}

TEST(BinaryAndTernary, Levels) {
  EXPECT_EQ(QuantizeBinary(0.3, true), 1.0);
  EXPECT_EQ(QuantizeBinary(-0.1, true), -1.0);
  EXPECT_EQ(QuantizeBinary(0.0, true), 1.0);
  EXPECT_EQ(QuantizeBinary(-0.1, false), 0.0);
  OperandFormat t;
  t.arithmetic = Arithmetic::kTernary;
  t.width = 2;
  auto missing = QuantizeArray({0.5f}, {1}, t, true);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("profile_statistics"), std::string::npos);
  t.mean = 1.0;  // threshold 0.75
  auto q = QuantizeArray({0.8f, -0.8f, 0.5f, -0.7f}, {4}, t, true);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(*q, (std::vector<float>{1.0f, -1.0f, 0.0f, 0.0f}));
}

TEST(Formats, ValidationAndNames) {
  OperandFormat f;
  f.width = 0;
  auto s = ValidateFormat(f, "passes.quantize.linear.config.weight");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("weight_width"), std::string::npos);
  EXPECT_TRUE(ParseArithmetic("fixed").ok());
  auto bad = ParseArithmetic("integr");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("integr"), std::string::npos);
  EXPECT_NE(bad.status().message().find("minifloat_ieee"), std::string::npos);
}

}  // namespace
}  // namespace qsweep
