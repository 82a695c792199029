// The quantize pass config: by type / name / regex_name, default, "NA",
// bypass, normalisation, metadata, MASE's summary histogram and the errors.
#include "worker/core/passes/quantize_config.h"

#include <gtest/gtest.h>

#include "tests/passes/quantize_examples.h"
#include "worker/core/config/toml_json.h"
#include "worker/core/passes/quant_reports.h"

namespace qsweep {
namespace {

using ojson = nlohmann::ordered_json;

ojson QuantArgs(const std::string& toml) {
  auto j = ParseTomlToJson(toml, "test.toml");
  EXPECT_TRUE(j.ok()) << j.status();
  return (*j)["passes"]["quantize"];
}

Graph ZooGraph(const std::string& name) {
  auto spec = ZooModel(name);
  EXPECT_TRUE(spec.ok());
  return BuildGraph(*spec, 8);
}

std::pair<Graph, QuantizePlan> Quantize(const Graph& g, const std::string& toml) {
  auto r = QuantizeGraph(g, QuantArgs(toml));
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

std::string ErrorOf(const Graph& g, const std::string& toml) {
  auto r = QuantizeGraph(g, QuantArgs(toml));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

TEST(QuantizeConfig, JscTinyByTypeHistogramMatchesMase) {
  Graph g = ZooGraph("jsc-tiny");
  auto [q, plan] = Quantize(g, testing::kQuantizeLinearByType);
  // Copied from MASE.md §5.5 (the LAB notebook's recorded output).
  const std::string expected =
      "| Original type   | OP           |   Total |   Changed |   Unchanged |\n"
      "|-----------------+--------------+---------+-----------+-------------|\n"
      "| BatchNorm1d     | batch_norm1d |       1 |         0 |           1 |\n"
      "| Linear          | linear       |       1 |         1 |           0 |\n"
      "| ReLU            | relu         |       2 |         0 |           2 |\n"
      "| output          | output       |       1 |         0 |           1 |\n"
      "| x               | placeholder  |       1 |         0 |           1 |";
  EXPECT_EQ(SummarizeQuantization(g, q).HistogramText(), expected);
  ASSERT_EQ(plan.nodes.size(), 1u);
  EXPECT_EQ(plan.nodes[0].node, "seq_blocks_2");
  EXPECT_EQ(plan.skipped, (std::vector<std::string>{"seq_blocks_1", "seq_blocks_3"}));
}

TEST(QuantizeConfig, JscToyCountsAndCsv) {
  Graph g = ZooGraph("jsc-toy");
  auto [q, plan] = Quantize(g, testing::kQuantizeLinearByType);
  auto s = SummarizeQuantization(g, q);
  ASSERT_EQ(s.histogram.size(), 5u);
  auto expect_row = [&](size_t i, const char* type, int total, int changed, int unchanged) {
    EXPECT_EQ(s.histogram[i].original_type, type);
    EXPECT_EQ(s.histogram[i].total, total);
    EXPECT_EQ(s.histogram[i].changed, changed);
    EXPECT_EQ(s.histogram[i].unchanged, unchanged);
  };
  expect_row(0, "BatchNorm1d", 4, 0, 4);
  expect_row(1, "Linear", 3, 3, 0);
  expect_row(2, "ReLU", 4, 0, 4);
  expect_row(3, "output", 1, 0, 1);
  expect_row(4, "x", 1, 0, 1);
  EXPECT_EQ(s.HistogramCsv(),
            "Original type,OP,Total,Changed,Unchanged\n"
            "BatchNorm1d,batch_norm1d,4,0,4\nLinear,linear,3,3,0\nReLU,relu,4,0,4\n"
            "output,output,1,0,1\nx,placeholder,1,0,1\n");
  std::string table = s.TableCsv();
  EXPECT_EQ(table.substr(0, table.find('\n')),
            ",Ori name,New name,MASE_TYPE,Mase_OP,Original type,Quantized type,Changed");
  EXPECT_NE(table.find("\n0,x,x,placeholder,placeholder,x,x,False\n"), std::string::npos);
  EXPECT_NE(table.find("\n3,seq_blocks_2,seq_blocks_2,module_related_func,linear,Linear,"
                       "LinearInteger,True\n"),
            std::string::npos);
}

TEST(QuantizeConfig, MetadataAndAverageBits) {
  Graph g = ZooGraph("jsc-tiny");
  auto [q, plan] = Quantize(g, testing::kQuantizeLinearByType);
  const Node* lin = q.Find("seq_blocks_2");
  ASSERT_NE(lin, nullptr);
  EXPECT_EQ(lin->type_name, "LinearInteger");
  for (const char* arg : {"data_in_0", "weight", "bias"}) {
    EXPECT_EQ(lin->args.at(arg).type, "integer") << arg;
    EXPECT_EQ(lin->args.at(arg).precision, (std::vector<int>{8, 4})) << arg;
  }
  EXPECT_EQ(q.Find("seq_blocks_0")->args.at("weight").type, "float");  // BN stays float
  auto bits = CalculateAvgBits(q);
  ASSERT_TRUE(bits.ok());
  EXPECT_EQ(bits->data_avg_bit, 12.0);  // MASE sums [8, 4]
  EXPECT_EQ(bits->w_avg_bit, 12.0);
  EXPECT_EQ(CalculateAvgBits(g)->w_avg_bit, 32.0);
  EXPECT_EQ(AverageBitwidth(q, plan), 8.0);
  EXPECT_EQ(AverageBitwidth(g, QuantizePlan{}), 32.0);
}

TEST(QuantizeConfig, ByNameRegexReluBypassAndFracDefault) {
  Graph g = ZooGraph("jsc-toy");
  auto [q, plan] = Quantize(g, R"(
[passes.quantize]
by = "name"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.seq_blocks_5.config]
name = "fixed"
data_in_width = 4
data_in_frac_width = "NA"
weight_width = 6
weight_frac_width = 3
bias_width = 8
bias_frac_width = 4
[passes.quantize.seq_blocks_4.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
)");
  ASSERT_EQ(plan.nodes.size(), 2u);
  const auto* relu = plan.Find("seq_blocks_4");
  ASSERT_NE(relu, nullptr);
  EXPECT_FALSE(relu->operands.at(0).is_signed);  // ReLU input quantizer is unsigned
  EXPECT_EQ(q.Find("seq_blocks_4")->type_name, "ReLUInteger");
  const auto* lin = plan.Find("seq_blocks_5");
  EXPECT_EQ(lin->Operand("data_in")->format.FracWidth(), 2);  // "NA" -> 4 // 2
  EXPECT_TRUE(lin->Operand("weight")->is_signed);
  EXPECT_EQ(q.Find("seq_blocks_5")->args.at("data_in_0").precision, (std::vector<int>{4, 2}));
  EXPECT_EQ(q.Find("seq_blocks_2")->type_name, "Linear");

  auto [q2, plan2] = Quantize(g, R"toml(
[passes.quantize]
by = "regex_name"
[passes.quantize.default.config]
name = "NA"
[passes.quantize."seq_blocks_(2|8)".config]
name = "integer"
bypass = true
)toml");
  ASSERT_EQ(plan2.nodes.size(), 2u);
  EXPECT_TRUE(plan2.nodes[0].bypass);
  EXPECT_EQ(q2.Find("seq_blocks_8")->type_name, "LinearInteger");
  EXPECT_EQ(q2.Find("seq_blocks_8")->args.at("weight").type, "float");  // bypass: no quantization
}

TEST(QuantizeConfig, Errors) {
  Graph g = ZooGraph("jsc-tiny");
  std::string head =
      "[passes.quantize]\nby = \"type\"\n[passes.quantize.default.config]\nname = \"NA\"\n";
  std::string e = ErrorOf(g, head + "[passes.quantize.linear.config]\nname = \"integr\"\n");
  EXPECT_NE(e.find("'integr'"), std::string::npos) << e;
  EXPECT_NE(e.find("allowed"), std::string::npos) << e;

  e = ErrorOf(g, head +
                     "[passes.quantize.linear.config]\nname = \"integer\"\ndata_in_width = 8\n"
                     "bias_width = 8\n");
  EXPECT_NE(e.find("missing required field 'weight_width'"), std::string::npos) << e;

  e = ErrorOf(g, head +
                     "[passes.quantize.linear.config]\nname = \"integer\"\ndata_in_width = 0\n"
                     "weight_width = 8\nbias_width = 8\n");
  EXPECT_NE(e.find("data_in_width must be > 0"), std::string::npos) << e;

  e = ErrorOf(g, head + "[passes.quantize.Linear.config]\nname = \"integer\"\n");
  EXPECT_NE(e.find("did you mean 'linear'"), std::string::npos) << e;

  e = ErrorOf(g,
              "[passes.quantize]\nby = \"regex_name\"\n[passes.quantize.\"seq_(\".config]\n"
              "name = \"NA\"\n");
  EXPECT_NE(e.find("regex 'seq_('"), std::string::npos) << e;
  EXPECT_NE(e.find("does not compile"), std::string::npos) << e;

  e = ErrorOf(g,
              "[passes.quantize]\nby = \"name\"\n[passes.quantize.seq_blocks_9.config]\n"
              "name = \"NA\"\n");
  EXPECT_NE(e.find("'seq_blocks_9'"), std::string::npos) << e;
  EXPECT_NE(e.find("x, seq_blocks_0, seq_blocks_1, seq_blocks_2, seq_blocks_3, output"),
            std::string::npos)
      << e;

  e = ErrorOf(g, "[passes.quantize]\nby = \"kind\"\n");
  EXPECT_NE(e.find("by"), std::string::npos) << e;
  e = ErrorOf(g, "[passes.quantize]\n[passes.quantize.linear.config]\nname = \"integer\"\n");
  EXPECT_NE(e.find("passes.quantize.by is required"), std::string::npos) << e;

  e = ErrorOf(g,
              "[passes.quantize]\nby = \"type\"\n[passes.quantize.linear.config]\nname = \"NA\"\n");
  EXPECT_NE(e.find("no [passes.quantize.default.config]"), std::string::npos) << e;
}

}  // namespace
}  // namespace qsweep
