// Graph reports, FLOPs/BitOPs against MASE.md §10, Python-style rendering.
#include <gtest/gtest.h>

#include "worker/core/config/toml_json.h"
#include "worker/core/passes/graph_reports.h"
#include "worker/core/passes/pyrepr.h"
#include "worker/core/passes/quant_reports.h"

namespace qsweep {
namespace {

constexpr char kW8A8[] = R"(
[passes.quantize]
by = "type"
[passes.quantize.default.config]
name = "NA"
[passes.quantize.linear.config]
name = "integer"
data_in_width = 8
data_in_frac_width = 4
weight_width = 8
weight_frac_width = 4
bias_width = 8
bias_frac_width = 4
)";

Graph Quantized(const Graph& g) {
  auto j = ParseTomlToJson(kW8A8, "w8a8.toml");
  EXPECT_TRUE(j.ok());
  auto q = QuantizeGraph(g, (*j)["passes"]["quantize"]);
  EXPECT_TRUE(q.ok()) << q.status();
  return q->first;
}

TEST(ReportGraph, JscTinyMatchesMase) {
  Graph g = BuildGraph(*ZooModel("jsc-tiny"), 8);
  std::string text = ReportGraph(g).Text();
  EXPECT_NE(text.find("\nNetwork overview:\n{'placeholder': 1, 'get_attr': 0, 'call_function': 0, "
                      "'call_method': 0, 'call_module': 4, 'output': 1}\nLayer types:\n"
                      "[BatchNorm1d(16, eps=1e-05, momentum=0.1, affine=True, "
                      "track_running_stats=True), ReLU(inplace=True), Linear(in_features=16, "
                      "out_features=5, bias=True), ReLU(inplace=True)]"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.rfind("graph():\n", 0), 0u);
  std::string q = ReportGraph(Quantized(g)).Text();
  EXPECT_NE(q.find("LinearInteger(in_features=16, out_features=5, bias=True)"), std::string::npos);
}

TEST(ReportGraph, JscToyCounts) {
  GraphReport r = ReportGraph(BuildGraph(*ZooModel("jsc-toy"), 8));
  EXPECT_EQ(r.op_counts[0], std::make_pair(std::string("placeholder"), int64_t{1}));
  EXPECT_EQ(r.op_counts[4], std::make_pair(std::string("call_module"), int64_t{11}));
  EXPECT_EQ(r.op_counts[5], std::make_pair(std::string("output"), int64_t{1}));
  EXPECT_EQ(r.layer_types.size(), 11u);
}

struct CostCase {
  std::string model;  // zoo name or inline TOML
  int64_t params, macs, bitops_w8a8, bitops_fp32;
};

TEST(FlopsBitops, EveryModelMatchesMaseTable) {
  const CostCase cases[] = {
      {"jsc-tiny", 117, 80, 5120, 81920},
      {"jsc-toy", 327, 232, 14848, 237568},
      {"jsc-s", 5615, 5280, 337920, 5406720},
      {"jsc-trt", 3231, 2896, 185344, 2965504},
      {"layers = [{type = \"batch_norm\"}, {type = \"relu\"}, {type = \"linear\", width = 16},"
       " {type = \"linear\", width = 16}, {type = \"linear\"}, {type = \"relu\"}]",
       661, 592, 37888, 606208},
      {"layers = [{type = \"linear\", width = 64}, {type = \"relu\"}, {type = \"linear\", width = "
       "32},"
       " {type = \"relu\"}, {type = \"linear\", width = 32}, {type = \"relu\"}, {type = "
       "\"linear\"}]",
       4389, 4256, 272384, 4358144},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.model);
    auto spec =
        c.model.rfind("jsc-", 0) == 0 ? ZooModel(c.model) : ModelFromToml(c.model, "custom");
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->TrainableParams(), c.params);
    Graph g = BuildGraph(*spec, 8);
    FlopsBitopsReport fp = FlopsBitops(g);
    EXPECT_EQ(fp.macs, c.macs);
    EXPECT_EQ(fp.bitops, c.bitops_fp32);
    FlopsBitopsReport q = FlopsBitops(Quantized(g));
    EXPECT_EQ(q.macs, c.macs);
    EXPECT_EQ(q.bitops, c.bitops_w8a8);
  }
  // MASE's flop estimator on jsc-tiny: Linear 80 + ReLU 16 + ReLU 5.
  EXPECT_EQ(FlopsBitops(BuildGraph(*ZooModel("jsc-tiny"), 8)).computations, 101);
}

TEST(ReportNodeMetaParam, ColumnsAndErrors) {
  Graph g = BuildGraph(*ZooModel("jsc-tiny"), 8);
  auto t = ReportNodeMetaParam(g, {"software"});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->headers, (std::vector<std::string>{"Node name", "Fx Node op", "Mase type", "Mase op",
                                                  "Software Param"}));
  EXPECT_EQ(t->rows[2][4],
            "{'args': {'data_in_0': {'stat': {}}}, 'results': {'data_out_0': {'stat': {}}}}");
  auto all = ReportNodeMetaParam(g, {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->headers.size(), 7u);
  EXPECT_EQ(all->headers[4], "Common Param");
  EXPECT_EQ(all->headers[5], "Hardware Param");
  auto bad = ReportNodeMetaParam(g, {"everything"});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'everything'"), std::string::npos);
  std::string grid = RenderTable(*all, TableStyle::kGrid);
  EXPECT_EQ(grid.rfind("+-", 0), 0u);
  EXPECT_NE(grid.find("\n+==="), std::string::npos);
}

TEST(NodeMetaParamToml, RoundTripsThroughTheTomlReader) {
  Graph g = Quantized(BuildGraph(*ZooModel("jsc-tiny"), 8));
  g.Find("seq_blocks_2")->args["weight"].stat["variance_online"] = {{"count", 1},
                                                                    {"variance", nullptr}};
  auto j = ParseTomlToJson(NodeMetaParamToml(g), "node_meta_param.toml");
  ASSERT_TRUE(j.ok()) << j.status();
  const auto& lin = (*j)["seq_blocks_2"];
  EXPECT_EQ(lin["common"]["mase_op"], "linear");
  EXPECT_EQ(lin["common"]["args"]["weight"]["precision"], nlohmann::ordered_json::array({8, 4}));
  EXPECT_EQ(lin["common"]["args"]["weight"]["shape"], nlohmann::ordered_json::array({5, 16}));
  EXPECT_TRUE(lin["software"]["args"]["weight"]["stat"]["variance_online"]["variance"].is_null());
  EXPECT_EQ((*j)["x"]["common"]["mase_type"], "placeholder");
}

TEST(ReportNodeType, SimpleTable) {
  Graph g = Quantized(BuildGraph(*ZooModel("jsc-tiny"), 8));
  Table t = ReportNodeType(g);
  EXPECT_EQ(t.rows[0][4], "NA");       // placeholder has no data_in_0
  EXPECT_EQ(t.rows[3][4], "integer");  // seq_blocks_2
  EXPECT_EQ(t.rows[1][4], "float");
  std::string shape = ReportNodeShape(g);
  EXPECT_NE(shape.find("name: seq_blocks_2\nin:\ndata_in_0 = [8, 16]\nout:\ndata_out_0 = [8, 5]"),
            std::string::npos)
      << shape;
}

TEST(PyRepr, FloatsAndPformat) {
  EXPECT_EQ(PyFloatRepr(0.1), "0.1");
  EXPECT_EQ(PyFloatRepr(1e-05), "1e-05");
  EXPECT_EQ(PyFloatRepr(0.0001), "0.0001");
  EXPECT_EQ(PyFloatRepr(100.0), "100.0");
  EXPECT_EQ(PyFloatRepr(1e16), "1e+16");
  EXPECT_EQ(PyFloatRepr(-2.5e-7), "-2.5e-07");
  EXPECT_EQ(PyFloatRepr(static_cast<double>(0.1f)), "0.10000000149011612");
  EXPECT_EQ(PyStrRepr("it's"), "\"it's\"");
  PyValue d = PyValue::Dict();
  d.Set("b", PyValue::Str(std::string(50, 'y')));
  d.Set("a", PyValue::Str(std::string(50, 'x')));
  // pprint sorts keys and breaks after each item once the line exceeds 80.
  EXPECT_EQ(PyPformat(d),
            "{'a': '" + std::string(50, 'x') + "',\n 'b': '" + std::string(50, 'y') + "'}");
  EXPECT_EQ(PyRepr(d),
            "{'b': '" + std::string(50, 'y') + "', 'a': '" + std::string(50, 'x') + "'}");
  PyValue small = PyValue::Dict();
  small.Set("count", PyValue::Int(5));
  small.Set("mean", PyValue::Float(0.5));
  small.Set("x", PyValue::None());
  EXPECT_EQ(PyPformat(small), "{'count': 5, 'mean': 0.5, 'x': None}");
}

TEST(Table, GridMultilineMatchesTabulate) {
  Table t;
  t.headers = {"h1", "h2"};
  t.rows = {{"a", "x\ny"}};
  EXPECT_EQ(RenderTable(t, TableStyle::kGrid),
            "+------+------+\n"
            "| h1   | h2   |\n"
            "+======+======+\n"
            "| a    | x    |\n"
            "|      | y    |\n"
            "+------+------+");
}

}  // namespace
}  // namespace qsweep
