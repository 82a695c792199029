// Quantize-pass configs the pass tests share.
#pragma once

namespace qsweep::testing {

// [passes.quantize] of MASE's configs/examples/jsc_toy_by_type.toml (Lab 2):
// every Linear in 8-bit fixed point with 4 fractional bits, nothing else.
inline constexpr char kQuantizeLinearByType[] = R"(
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
"data_in_width" = 8
"data_in_frac_width" = 4
"weight_width" = 8
"weight_frac_width" = 4
"bias_width" = 8
"bias_frac_width" = 4
)";

}  // namespace qsweep::testing
