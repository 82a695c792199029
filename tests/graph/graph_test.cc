#include "worker/core/graph/graph.h"

#include <gtest/gtest.h>

namespace qsweep {
namespace {

TEST(GraphTest, JscTinyNodesAndMaseTypes) {
  Graph g = BuildGraph(*ZooModel("jsc-tiny"), 8);
  ASSERT_EQ(g.nodes.size(), 6u);
  std::vector<std::string> names, ops, types;
  for (const auto& n : g.nodes) {
    names.push_back(n.name);
    ops.push_back(n.mase_op);
    types.push_back(n.mase_type);
  }
  // MASE.md section 6.2 table.
  EXPECT_EQ(names, (std::vector<std::string>{"x", "seq_blocks_0", "seq_blocks_1", "seq_blocks_2",
                                             "seq_blocks_3", "output"}));
  EXPECT_EQ(ops, (std::vector<std::string>{"placeholder", "batch_norm1d", "relu", "linear",
                                           "relu", "output"}));
  EXPECT_EQ(types, (std::vector<std::string>{"placeholder", "module", "module_related_func",
                                             "module_related_func", "module_related_func",
                                             "output"}));
}

TEST(GraphTest, LinearMetadataShapesAndPrecision) {
  Graph g = BuildGraph(*ZooModel("jsc-toy"), 32);
  const Node* lin = g.Find("seq_blocks_5");
  ASSERT_NE(lin, nullptr);
  EXPECT_EQ(lin->args.at("data_in_0").shape, (std::vector<int64_t>{32, 8}));
  EXPECT_EQ(lin->args.at("data_in_0").from, "seq_blocks_4");
  EXPECT_EQ(lin->args.at("weight").shape, (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(lin->args.at("bias").precision, (std::vector<int>{32}));
  EXPECT_EQ(lin->results.at("data_out_0").shape, (std::vector<int64_t>{32, 8}));
  const Node* bn = g.Find("seq_blocks_9");
  EXPECT_TRUE(bn->args.count("running_mean"));
  EXPECT_EQ(g.nodes.back().args.at("data_in_0").shape, (std::vector<int64_t>{32, 5}));
}

TEST(GraphTest, FxGraphText) {
  Graph g = BuildGraph(*ZooModel("jsc-tiny"), 1);
  std::string text = FxGraphText(g);
  EXPECT_NE(text.find("%seq_blocks_2 : [#users=1] = call_module[target=seq_blocks.2](args = "
                      "(%seq_blocks_1,), kwargs = {})"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("return seq_blocks_3"), std::string::npos);
}

}  // namespace
}  // namespace qsweep
