// The LibTorch quantized modules: MASE's integer semantics against the
// reference quantizer, straight-through gradients, unchanged state dict.
#include "worker/core/torch/quantized_modules.h"

#include <gtest/gtest.h>

#include "worker/core/config/toml_json.h"

namespace qsweep {
namespace {

std::vector<float> Values(const torch::Tensor& t) {
  torch::Tensor c = t.detach().contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

torch::Tensor Reference(const torch::Tensor& t, const OperandFormat& f, bool is_signed) {
  auto q = QuantizeArray(Values(t), std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), f,
                         is_signed);
  EXPECT_TRUE(q.ok());
  return torch::tensor(*q).reshape(t.sizes());
}

NodeQuantConfig LinearConfig(const char* toml) {
  auto j = ParseTomlToJson(toml, "t.toml");
  EXPECT_TRUE(j.ok());
  auto n = NormalizeNodeConfig(*j, "linear", "test");
  EXPECT_TRUE(n.ok()) << n.status();
  return *n;
}

constexpr char k84[] =
    "name = \"integer\"\ndata_in_width = 8\ndata_in_frac_width = 4\nweight_width = 8\n"
    "weight_frac_width = 4\nbias_width = 8\nbias_frac_width = 4\n";

TEST(QuantizedModules, FakeQuantizeValuesAndStraightThroughGradient) {
  OperandFormat f;  // integer 8/4
  f.frac_width = 4;
  torch::Tensor x = torch::tensor({0.09375f, 0.03125f, 100.0f, -100.0f, 0.15625f}).requires_grad_();
  torch::Tensor q = FakeQuantize(x, f, true);
  EXPECT_EQ(Values(q), (std::vector<float>{0.125f, 0.0f, 7.9375f, -8.0f, 0.125f}));
  (q * torch::arange(5).to(torch::kFloat)).sum().backward();
  // Identity gradient everywhere, clamped values included (no mask).
  EXPECT_EQ(Values(x.grad()), (std::vector<float>{0, 1, 2, 3, 4}));
}

TEST(QuantizedModules, LinearIntegerForwardBackwardAndNames) {
  torch::manual_seed(0);
  NodeQuantConfig cfg = LinearConfig(k84);
  QuantLinearImpl lin(16, 5, cfg);
  {
    torch::NoGradGuard g;
    lin.weight.uniform_(-1, 1);
    lin.bias.uniform_(-1, 1);
  }
  EXPECT_EQ(lin.name(), "LinearInteger");
  std::vector<std::string> names;
  for (const auto& p : lin.named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias"}));
  torch::Tensor x = torch::randn({8, 16}) * 3;
  const OperandFormat& fmt = cfg.Operand("weight")->format;
  torch::Tensor qx = Reference(x, fmt, true);
  torch::Tensor expected = torch::nn::functional::linear(qx, Reference(lin.weight, fmt, true),
                                                         Reference(lin.bias, fmt, true));
  torch::Tensor out = lin.forward(x);
  EXPECT_TRUE(torch::allclose(out, expected, 1e-6, 1e-6));
  // The output is not quantized: some values are off the 1/16 grid.
  EXPECT_GT((out * 16 - torch::round(out * 16)).abs().max().item<float>(), 1e-3f);
  // Stored weights stay full precision.
  EXPECT_GT((lin.weight - Reference(lin.weight, fmt, true)).abs().max().item<float>(), 1e-3f);
  out.sum().backward();
  // d(sum)/dW[o][i] = sum_n q(x)[n][i] through the straight-through estimator.
  EXPECT_TRUE(torch::allclose(lin.weight.grad(), qx.sum(0).expand({5, 16}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(lin.bias.grad(), torch::full({5}, 8.0f)));
}

TEST(QuantizedModules, ReluIntegerIsUnsigned) {
  auto j = ParseTomlToJson("name = \"integer\"\ndata_in_width = 8\ndata_in_frac_width = 4\n", "t");
  auto cfg = NormalizeNodeConfig(*j, "relu", "test");
  ASSERT_TRUE(cfg.ok());
  QuantReLUImpl relu(*cfg);
  EXPECT_EQ(relu.name(), "ReLUInteger");
  EXPECT_EQ(Values(relu.forward(torch::tensor({-1.0f, 20.0f, 0.09375f}))),
            (std::vector<float>{0.0f, 15.9375f, 0.125f}));
}

TEST(QuantizedModules, NetworkStateDictUnchangedAndMetaErrors) {
  auto net = Network::Create(*ZooModel("jsc-toy"), 0);
  ASSERT_TRUE(net.ok());
  auto before = (*net)->StateDict();
  auto j = ParseTomlToJson(std::string("[q]\nby = \"type\"\n[q.default.config]\nname = \"NA\"\n"
                                       "[q.linear.config]\n") +
                               k84,
                           "t");
  Graph g = BuildGraph((*net)->spec(), 4);
  auto q = QuantizeGraph(g, (*j)["q"]);
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(ApplyQuantizationToNetwork(**net, q->second).ok());
  auto after = (*net)->StateDict();
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(before[i].first, after[i].first);
    EXPECT_TRUE(torch::equal(before[i].second, after[i].second)) << before[i].first;
  }
  EXPECT_TRUE(std::dynamic_pointer_cast<QuantLinearImpl>((*net)->LayerModule(5)) != nullptr);
  auto fresh = Network::Create(*ZooModel("jsc-toy"), 0);
  auto meta = QuantizationMeta(q->second, (*j)["q"], (*net)->spec());
  ASSERT_TRUE(ApplyQuantizationMeta(**fresh, meta).ok());
  torch::Tensor x = torch::randn({4, 16});
  (*net)->eval();
  (*fresh)->eval();
  EXPECT_TRUE(torch::equal((*net)->Forward(x), (*fresh)->Forward(x)));
  auto bad = ApplyQuantizationMeta(**fresh, nlohmann::json{{"format", "other"}});
  EXPECT_EQ(bad.code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace qsweep
