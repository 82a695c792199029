// The BatchNorm1d training loops (batch_norm.h) against LibTorch's own
// native_batch_norm / native_batch_norm_backward, and packed channels against
// each trial alone.
#include "worker/core/torch/batch_norm.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "worker/core/model/model_spec.h"
#include "worker/core/torch/network.h"

namespace qsweep {
namespace {

constexpr double kMomentum = 0.1, kEps = 1e-5;

struct BnRun {
  torch::Tensor y, running_mean, running_var, grad_x, grad_weight, grad_bias;
};

// The loops on x [n, K·C] with parameters a row of `params` [K, P] apart
// (columns `offset` .. offset + C of each row), gradient g [n, K·C].
BnRun Loops(const torch::Tensor& x, const torch::Tensor& g, const torch::Tensor& weights,
            const torch::Tensor& biases, int64_t k, int64_t c, torch::Tensor running_mean,
            torch::Tensor running_var) {
  const int64_t n = x.size(0);
  const BatchNormShape shape{n, k, c, weights.stride(0)};
  BnRun r;
  r.y = torch::empty({n, k * c});
  torch::Tensor mean = torch::empty({k * c}, torch::kDouble);
  torch::Tensor invstd = torch::empty({k * c}, torch::kDouble);
  BatchNormTrainForward(shape, x.data_ptr<float>(), weights.data_ptr<float>(),
                        biases.data_ptr<float>(), kMomentum, kEps, running_mean.data_ptr<float>(),
                        running_var.data_ptr<float>(), r.y.data_ptr<float>(),
                        mean.data_ptr<double>(), invstd.data_ptr<double>());
  r.running_mean = running_mean;
  r.running_var = running_var;
  r.grad_x = torch::empty({n, k * c});
  // Gradient rows laid out as the parameters' ([K, stride], the first C
  // columns used); the rest must stay untouched.
  const int64_t stride = k > 1 ? weights.stride(0) : c;
  torch::Tensor gw = torch::full({k, stride}, 99.0f), gb = torch::full({k, stride}, 99.0f);
  BatchNormTrainBackward(shape, g.data_ptr<float>(), x.data_ptr<float>(), weights.data_ptr<float>(),
                         mean.data_ptr<double>(), invstd.data_ptr<double>(),
                         r.grad_x.data_ptr<float>(), gw.data_ptr<float>(), gb.data_ptr<float>());
  EXPECT_TRUE(torch::equal(gw.narrow(1, c, stride - c), torch::full({k, stride - c}, 99.0f)));
  EXPECT_TRUE(torch::equal(gb.narrow(1, c, stride - c), torch::full({k, stride - c}, 99.0f)));
  r.grad_weight = gw.narrow(1, 0, c);
  r.grad_bias = gb.narrow(1, 0, c);
  return r;
}

TEST(BatchNormTest, LoopsMatchLibTorchsKernels) {
  torch::Generator gen = at::detail::createCPUGenerator(7);
  const int64_t n = 50, c = 12;
  const torch::Tensor x = (torch::randn({n, c}, gen) * 3 + 2).contiguous();
  const torch::Tensor g = torch::randn({n, c}, gen);
  const torch::Tensor w = torch::rand({1, c}, gen) + 0.5, b = torch::randn({1, c}, gen);
  torch::Tensor rm = torch::randn({c}, gen), rv = torch::rand({c}, gen) + 0.5;
  torch::Tensor rm_ref = rm.clone(), rv_ref = rv.clone();
  const BnRun got = Loops(x, g, w, b, 1, c, rm, rv);

  auto [y, mean, invstd] = at::native_batch_norm(x, w.view({c}), b.view({c}), rm_ref, rv_ref,
                                                 /*training=*/true, kMomentum, kEps);
  auto [gx, gw, gb] =
      at::native_batch_norm_backward(g, x, w.view({c}), rm_ref, rv_ref, mean, invstd,
                                     /*train=*/true, kEps, {true, true, true});
  auto close = [](const torch::Tensor& a, const torch::Tensor& e) {
    return torch::allclose(a, e, /*rtol=*/1e-5, /*atol=*/1e-5);
  };
  EXPECT_TRUE(close(got.y, y)) << (got.y - y).abs().max();
  EXPECT_TRUE(close(got.running_mean, rm_ref)) << (got.running_mean - rm_ref).abs().max();
  EXPECT_TRUE(close(got.running_var, rv_ref)) << (got.running_var - rv_ref).abs().max();
  EXPECT_TRUE(close(got.grad_x, gx)) << (got.grad_x - gx).abs().max();
  EXPECT_TRUE(close(got.grad_weight.view({c}), gw)) << (got.grad_weight.view({c}) - gw).abs().max();
  EXPECT_TRUE(close(got.grad_bias.view({c}), gb)) << (got.grad_bias.view({c}) - gb).abs().max();
}

TEST(BatchNormTest, PackedChannelsEqualEachTrialAloneBitForBit) {
  torch::Generator gen = at::detail::createCPUGenerator(8);
  const int64_t n = 33, k = 3, c = 5, p = 17, offset = 4;  // parameters: row stride 17
  const torch::Tensor x = torch::randn({n, k * c}, gen).contiguous();
  const torch::Tensor g = torch::randn({n, k * c}, gen).contiguous();
  const torch::Tensor params = torch::randn({k, p}, gen), biases = torch::randn({k, p}, gen);
  const torch::Tensor rm = torch::randn({k * c}, gen), rv = torch::rand({k * c}, gen) + 0.5;
  const BnRun packed = Loops(x, g, params.narrow(1, offset, c), biases.narrow(1, offset, c), k, c,
                             rm.clone(), rv.clone());
  for (int64_t t = 0; t < k; ++t) {
    const auto cols = [&](const torch::Tensor& v) { return v.narrow(1, t * c, c).contiguous(); };
    const BnRun alone =
        Loops(cols(x), cols(g), params.narrow(0, t, 1).narrow(1, offset, c).contiguous(),
              biases.narrow(0, t, 1).narrow(1, offset, c).contiguous(), 1, c,
              rm.narrow(0, t * c, c).clone(), rv.narrow(0, t * c, c).clone());
    EXPECT_TRUE(torch::equal(cols(packed.y), alone.y)) << "trial " << t;
    EXPECT_TRUE(torch::equal(cols(packed.grad_x), alone.grad_x)) << "trial " << t;
    EXPECT_TRUE(torch::equal(packed.running_mean.narrow(0, t * c, c), alone.running_mean));
    EXPECT_TRUE(torch::equal(packed.running_var.narrow(0, t * c, c), alone.running_var));
    EXPECT_TRUE(torch::equal(packed.grad_weight.narrow(0, t, 1), alone.grad_weight))
        << "trial " << t;
    EXPECT_TRUE(torch::equal(packed.grad_bias.narrow(0, t, 1), alone.grad_bias)) << "trial " << t;
  }
}

// A Network's BatchNorm1d in training mode (which runs the loops) against a
// LibTorch BatchNorm1d module on the same input, over two steps: output,
// gradients, running statistics and the batch count.
TEST(BatchNormTest, NetworkTrainingForwardMatchesLibTorchsModule) {
  ModelSpec spec;
  spec.name = "bn";
  LayerSpec bn_layer, linear;
  bn_layer.kind = LayerKind::kBatchNorm1d;
  bn_layer.in = bn_layer.out = 6;
  linear.kind = LayerKind::kLinear;
  linear.in = 6;
  linear.out = 3;
  spec.layers = {bn_layer, linear};
  spec.in_features = 6;
  spec.num_classes = 3;
  auto made = Network::Create(spec, 0);
  ASSERT_TRUE(made.ok()) << made.status();
  Network& net = **made;
  auto lin = std::dynamic_pointer_cast<torch::nn::LinearImpl>(net.LayerModule(1));
  ASSERT_TRUE(lin);
  torch::nn::BatchNorm1d ref(torch::nn::BatchNorm1dOptions(6).eps(kEps).momentum(kMomentum));
  torch::Generator gen = at::detail::createCPUGenerator(9);
  const torch::Tensor x = torch::randn({40, 6}, gen) * 2 + 1;
  net.train();
  ref->train();
  for (int step = 0; step < 2; ++step) {
    const torch::Tensor a = x.clone().requires_grad_(true), e = x.clone().requires_grad_(true);
    const torch::Tensor ya = net.Forward(a);
    const torch::Tensor ye =
        torch::nn::functional::linear(ref->forward(e), lin->weight.detach(), lin->bias.detach());
    EXPECT_TRUE(torch::allclose(ya, ye, 1e-5, 1e-5)) << (ya - ye).abs().max();
    (ya * ya).sum().backward();
    (ye * ye).sum().backward();
    EXPECT_TRUE(torch::allclose(a.grad(), e.grad(), 1e-4, 1e-5))
        << (a.grad() - e.grad()).abs().max();
  }
  auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm1dImpl>(net.LayerModule(0));
  ASSERT_TRUE(bn);
  EXPECT_TRUE(torch::allclose(bn->running_mean, ref->running_mean));
  EXPECT_TRUE(torch::allclose(bn->running_var, ref->running_var));
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 2);
  EXPECT_TRUE(torch::allclose(bn->weight.grad(), ref->weight.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(bn->bias.grad(), ref->bias.grad(), 1e-4, 1e-5));
}

}  // namespace
}  // namespace qsweep
