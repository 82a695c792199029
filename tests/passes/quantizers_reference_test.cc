// Every non-integer arithmetic against an independent numpy computation of
// MASE's formulas (tests/passes/quantizer_reference.py, Debian's
// /usr/bin/python3 with python3-numpy), on inputs chosen from each format's own
// grid: ties, +-1 ulp, saturation, underflow, zero, -0, negatives, subnormals.
// Without numpy the test fails: it carries the independent goldens.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/common/subprocess.h"
#include "worker/core/passes/quantizers.h"

namespace qsweep {
namespace {

struct Case {
  std::string header;
  OperandFormat format;
  std::vector<int64_t> shape;
  std::vector<float> input, expected;
};

std::optional<int> OptInt(const std::string& v) {
  return v == "-" ? std::nullopt : std::optional<int>(std::stoi(v));
}
std::optional<double> OptDouble(const std::string& v) {
  return v == "-" ? std::nullopt : std::optional<double>(std::stod(v));
}

std::vector<float> Floats(const std::string& line) {
  std::vector<float> out;
  std::istringstream in(line);
  std::string tok;
  while (in >> tok) out.push_back(static_cast<float>(std::strtod(tok.c_str(), nullptr)));
  return out;
}

// Parses "case ARITH key=value ... shape=A,B" and the two value lines.
Case ParseCase(const std::string& header, const std::string& in, const std::string& expected) {
  Case c;
  c.header = header;
  std::istringstream h(header);
  std::string word, arith;
  h >> word >> arith;
  auto a = ParseArithmetic(arith);
  EXPECT_TRUE(a.ok()) << a.status();
  c.format.arithmetic = a.value_or(Arithmetic::kInteger);
  while (h >> word) {
    const std::string key = word.substr(0, word.find('='));
    const std::string v = word.substr(word.find('=') + 1);
    if (key == "width")
      c.format.width = std::stoi(v);
    else if (key == "exponent_width")
      c.format.exponent_width = OptInt(v);
    else if (key == "exponent_bias")
      c.format.exponent_bias = OptInt(v);
    else if (key == "block")
      c.format.block_size = {std::stoi(v)};
    else if (key == "bipolar")
      c.format.bipolar = v == "1";
    else if (key == "scaling_factor")
      c.format.scaling_factor = v == "1";
    else if (key == "mean")
      c.format.mean = OptDouble(v);
    else if (key == "median")
      c.format.median = OptDouble(v);
    else if (key == "max")
      c.format.max = OptDouble(v);
    else if (key == "shape") {
      std::istringstream s(v);
      std::string d;
      while (std::getline(s, d, ',')) c.shape.push_back(std::stoll(d));
    } else {
      ADD_FAILURE() << "unknown field '" << key << "' in " << header;
    }
  }
  c.input = Floats(in);
  c.expected = Floats(expected);
  return c;
}

std::string Hex(float v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a (%.9g)", static_cast<double>(v), static_cast<double>(v));
  return buf;
}

TEST(QuantizersReference, EveryArithmeticMatchesNumpyOnEdgeValues) {
  const auto out = std::filesystem::temp_directory_path() /
                   ("qsweep_quantizer_reference_" + std::to_string(::getpid()) + ".txt");
  auto py = testing::RunProcess(
      {"/usr/bin/python3", QSWEEP_SOURCE_DIR "/tests/passes/quantizer_reference.py", out.string()});
  ASSERT_EQ(py.code, 0) << "the numpy reference did not run (python3-numpy is required): " << py.out
                        << py.err;
  std::ifstream in(out);
  std::string header, inputs, expected;
  std::vector<Case> cases;
  while (std::getline(in, header) && std::getline(in, inputs) && std::getline(in, expected))
    cases.push_back(ParseCase(header, inputs, expected));
  std::filesystem::remove(out);
  ASSERT_EQ(cases.size(), 24u) << py.out;

  std::set<Arithmetic> covered;
  size_t values = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.header);
    ASSERT_EQ(c.input.size(), c.expected.size());
    ASSERT_FALSE(c.input.empty());
    covered.insert(c.format.arithmetic);
    values += c.input.size();
    ASSERT_TRUE(ValidateFormat(c.format, "case").ok());
    auto got = QuantizeArray(c.input, c.shape, c.format, /*is_signed=*/true);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), c.input.size());
    int mismatches = 0;
    for (size_t i = 0; i < c.input.size(); ++i) {
      if ((*got)[i] == c.expected[i]) continue;
      if (++mismatches <= 8)
        ADD_FAILURE() << "x = " << Hex(c.input[i]) << ": qsweep " << Hex((*got)[i])
                      << ", MASE formula " << Hex(c.expected[i]);
    }
    EXPECT_EQ(mismatches, 0) << "values that differ, of " << c.input.size();
  }
  EXPECT_EQ(covered.size(),
            6u);  // all but integer (checked by quant_reference.py)
  EXPECT_GT(values, 20000u);
}

}  // namespace
}  // namespace qsweep
