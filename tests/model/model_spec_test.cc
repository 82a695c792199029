#include "worker/core/model/model_spec.h"

#include <gtest/gtest.h>

namespace qsweep {
namespace {

// Parameter counts from MASE's layer lists (MASE.md section 2.1).
TEST(ModelSpecTest, ZooParameterCountsMatchMase) {
  EXPECT_EQ(ZooModel("jsc-tiny")->TrainableParams(), 117);
  EXPECT_EQ(ZooModel("jsc-toy")->TrainableParams(), 327);
  EXPECT_EQ(ZooModel("jsc-s")->TrainableParams(), 5615);
  EXPECT_EQ(ZooModel("jsc-trt")->TrainableParams(), 3231);
}

TEST(ModelSpecTest, NodeNamesFollowTorchFx) {
  auto toy = ZooModel("jsc-toy");
  ASSERT_TRUE(toy.ok());
  EXPECT_EQ(toy->NodeName(2), "seq_blocks_2");
  EXPECT_EQ(toy->ModulePath(10), "seq_blocks.10");
  auto s = ZooModel("jsc-s");
  EXPECT_EQ(s->NodeName(0), "module_list_0");
}

TEST(ModelSpecTest, EveryZooModelEndsInReluAndValidates) {
  for (const auto& name : ZooModelNames()) {
    auto m = ZooModel(name);
    ASSERT_TRUE(m.ok()) << name;
    EXPECT_EQ(m->layers.back().kind, LayerKind::kReLU) << name;
    EXPECT_TRUE(ValidateModel(*m).ok()) << name;
  }
}

TEST(ModelSpecTest, WidthsFollowTheDataset) {
  auto m = ZooModel("jsc-toy", 10, 3);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->layers[0].out, 10);
  EXPECT_EQ(m->layers[2].in, 10);
  EXPECT_EQ(m->layers[8].out, 3);
  // 20 + (10*8+8) + 16 + 72 + 16 + (8*3+3) + 6
  EXPECT_EQ(m->TrainableParams(), 20 + 88 + 16 + 72 + 16 + 27 + 6);
}

TEST(ModelSpecTest, UnknownModelListsKnownOnes) {
  auto m = ZooModel("jsc-m");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsNotFound(m.status()));
  EXPECT_NE(m.status().message().find("jsc-toy"), std::string::npos);
}

TEST(ModelSpecTest, TenTimesModelFromHiddenShorthand) {
  auto m = ModelFromToml("hidden = [64, 40, 10]\n", "x");
  ASSERT_TRUE(m.ok()) << m.status();
  // BN16 + L(16,64) + BN64 + L(64,40) + BN40 + L(40,10) + BN10 + L(10,5) + BN5
  EXPECT_EQ(m->TrainableParams(), 32 + 1088 + 128 + 2600 + 80 + 410 + 20 + 55 + 10);
  EXPECT_EQ(m->layers.size(), 14u);
}

TEST(ModelSpecTest, ExampleFilesDescribeTheSameNetwork) {
  auto a = ResolveModel(std::string(QSWEEP_SOURCE_DIR) + "/examples/models/jsc-10x.toml");
  auto b = ResolveModel(std::string(QSWEEP_SOURCE_DIR) + "/examples/models/jsc-10x-layers.toml");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->name, "jsc-10x");
  ASSERT_EQ(a->layers.size(), b->layers.size());
  for (size_t i = 0; i < a->layers.size(); ++i) {
    EXPECT_EQ(a->layers[i].kind, b->layers[i].kind) << i;
    EXPECT_EQ(a->layers[i].out, b->layers[i].out) << i;
  }
}

TEST(ModelSpecTest, LayerListWithDropout) {
  auto m = ModelFromToml(
      "layers = [{type=\"linear\", width=8}, {type=\"relu\"}, {type=\"dropout\", p=0.2},"
      " {type=\"linear\"}]\n",
      "d");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->layers[2].kind, LayerKind::kDropout);
  EXPECT_DOUBLE_EQ(m->layers[2].p, 0.2);
  EXPECT_EQ(m->TrainableParams(), 16 * 8 + 8 + 8 * 5 + 5);
}

struct BadModel {
  const char* toml;
  const char* must_mention;
};

class BadModelTest : public ::testing::TestWithParam<BadModel> {};

TEST_P(BadModelTest, ClearErrorNamingTheField) {
  auto m = ModelFromToml(GetParam().toml, "bad");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(m.status())) << m.status();
  EXPECT_NE(m.status().message().find(GetParam().must_mention), std::string::npos)
      << m.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadModelTest,
    ::testing::Values(
        BadModel{"hidden = [64, 0]\n", "hidden[1]"},
        BadModel{"hidden = [64, -3]\n", "hidden[1]"},
        BadModel{"hidden = \"64\"\n", "hidden"},
        BadModel{"layers = [{type = \"conv\"}]\n", "layers[0].type"},
        BadModel{"layers = [{width = 3}]\n", "layers[0].type"},
        BadModel{"layers = [{type = \"linear\"}, {type = \"linear\"}]\n", "layers[0].width"},
        BadModel{"layers = [{type = \"linear\", width = 7}]\n", "7 outputs"},
        BadModel{"layers = [{type = \"relu\"}]\n", "at least one linear"},
        BadModel{"layers = [{type = \"dropout\", p = 1.5}, {type = \"linear\"}]\n", "layers[0].p"},
        BadModel{"layers = []\n", "layers"},
        BadModel{"hidden = [4]\nlayers = [{type=\"linear\"}]\n", "exactly one"},
        BadModel{"hidden = [4]\nwidths = 3\n", "widths"},
        BadModel{"hidden = [4]\ncontainer = \"blocks\"\n", "container"},
        BadModel{"hidden = [4\n", "not valid TOML"}));

TEST(ModelSpecTest, MissingModelFileIsNotFound) {
  auto m = ResolveModel("/nonexistent/model.toml");
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::IsNotFound(m.status()));
  EXPECT_NE(m.status().message().find("/nonexistent/model.toml"), std::string::npos);
}

TEST(ModelSpecTest, ReprMatchesPyTorch) {
  auto tiny = ZooModel("jsc-tiny");
  EXPECT_EQ(tiny->layers[0].Repr(),
            "BatchNorm1d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
  EXPECT_EQ(tiny->layers[1].Repr(), "ReLU(inplace=True)");
  EXPECT_EQ(tiny->layers[2].Repr(), "Linear(in_features=16, out_features=5, bias=True)");
  EXPECT_EQ(ZooModel("jsc-trt")->layers[8].Repr(), "Dropout(p=0.5, inplace=False)");
}

}  // namespace
}  // namespace qsweep
