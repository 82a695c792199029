// The cross-entropy loops (cross_entropy.h) against LibTorch's own
// log_softmax / cross_entropy / argmax on the same logits.
#include "worker/core/torch/cross_entropy.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

namespace qsweep {
namespace {

namespace F = torch::nn::functional;

// [rows, K, classes] logits with large, small, negative and tied values.
torch::Tensor Logits(int64_t rows, int64_t k, int64_t classes, uint64_t seed) {
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  torch::Tensor x = torch::randn({rows, k, classes}, gen) * 4;
  x.index_put_({0}, 0.0f);              // all tied: argmax is the first class
  x.index_put_({1, 0, 2}, 60.0f);       // one large logit
  x.index_put_({2, 0}, -30.0f);         // all very negative
  x.index_put_({3, 0, 1}, x[3][0][3]);  // a tie in the middle
  return x.contiguous();
}

TEST(CrossEntropyTest, StepMatchesTorchsLossAndGradient) {
  const int64_t rows = 37, K = 3, C = 5;
  const torch::Tensor x = Logits(rows, K, C, 1);
  torch::Generator gen = at::detail::createCPUGenerator(2);
  const torch::Tensor y = torch::randint(0, C, {rows, K}, gen, torch::kLong).contiguous();
  const float scale = 0.5f / static_cast<float>(rows);
  torch::Tensor grad = torch::full({rows, K, C}, 99.0f);
  std::vector<float> picked(K, 99.0f);
  ASSERT_TRUE(CrossEntropyStep(x.data_ptr<float>(), y.data_ptr<int64_t>(), rows, K, C, scale,
                               grad.data_ptr<float>(), picked.data()));
  for (int64_t k = 0; k < K; ++k) {
    const torch::Tensor xk = x.select(1, k).clone().requires_grad_(true);
    const torch::Tensor yk = y.select(1, k);
    const torch::Tensor logp = torch::log_softmax(xk, 1);
    EXPECT_NEAR(picked[k], logp.gather(1, yk.unsqueeze(1)).sum().item<float>(),
                1e-5 * std::abs(picked[k]))
        << "trial " << k;
    (F::cross_entropy(xk, yk) * 0.5).backward();
    EXPECT_TRUE(torch::allclose(grad.select(1, k), xk.grad(), /*rtol=*/1e-5, /*atol=*/1e-7))
        << "trial " << k << "\n"
        << (grad.select(1, k) - xk.grad()).abs().max();
  }
  // Either output alone gives the same values.
  torch::Tensor grad_only = torch::zeros({rows, K, C});
  std::vector<float> picked_only(K);
  ASSERT_TRUE(CrossEntropyStep(x.data_ptr<float>(), y.data_ptr<int64_t>(), rows, K, C, scale,
                               grad_only.data_ptr<float>(), nullptr));
  ASSERT_TRUE(CrossEntropyStep(x.data_ptr<float>(), y.data_ptr<int64_t>(), rows, K, C, scale,
                               nullptr, picked_only.data()));
  EXPECT_TRUE(torch::equal(grad_only, grad));
  EXPECT_EQ(picked_only, picked);
}

TEST(CrossEntropyTest, StepRefusesALabelOutOfRangeAndWritesNothing) {
  const torch::Tensor x = Logits(4, 2, 5, 3);
  for (int64_t bad : {int64_t{-1}, int64_t{5}}) {
    torch::Tensor y = torch::zeros({4, 2}, torch::kLong);
    y[3][1] = bad;
    torch::Tensor grad = torch::full({4, 2, 5}, 7.0f);
    std::vector<float> picked(2, 7.0f);
    EXPECT_FALSE(CrossEntropyStep(x.data_ptr<float>(), y.data_ptr<int64_t>(), 4, 2, 5, 1.0f,
                                  grad.data_ptr<float>(), picked.data()))
        << bad;
    EXPECT_TRUE(torch::equal(grad, torch::full({4, 2, 5}, 7.0f))) << bad;
    EXPECT_EQ(picked, std::vector<float>(2, 7.0f)) << bad;
  }
}

// MASE's metrics written out with torch ops: per-row losses, the mean of each
// batch of `bs` rows (the last one short), their mean; argmax accuracy.
EvalResult TorchMetrics(const torch::Tensor& x2, const torch::Tensor& y, int64_t bs) {
  const int64_t n = x2.size(0);
  const torch::Tensor losses = F::cross_entropy(
      x2.to(torch::kDouble), y, F::CrossEntropyFuncOptions().reduction(torch::kNone));
  double sum = 0;
  int64_t batches = 0;
  for (int64_t s = 0; s < n; s += bs, ++batches) {
    sum += losses.narrow(0, s, std::min(bs, n - s)).mean().item<double>();
  }
  EvalResult r;
  r.rows = n;
  r.loss = sum / static_cast<double>(batches);
  r.accuracy = x2.argmax(1).eq(y).sum().item<double>() / static_cast<double>(n);
  return r;
}

TEST(CrossEntropyTest, MetricsMatchTorchPerTrialInAnyBlocking) {
  const int64_t rows = 1000, K = 4, C = 5, bs = 64;  // 15 full batches and one of 40 rows
  torch::Tensor x = Logits(rows, K, C, 4);
  x.index_put_({5, 1, 3}, std::numeric_limits<float>::quiet_NaN());  // argmax takes a NaN
  x.index_put_({6, 2, 0}, std::numeric_limits<float>::quiet_NaN());
  x = x.contiguous();
  torch::Generator gen = at::detail::createCPUGenerator(5);
  torch::Tensor y = torch::randint(0, C, {rows}, gen, torch::kLong).contiguous();
  y[0] = 0;  // row 0 is all ties: a hit only for the first largest logit
  for (int64_t block : {int64_t{rows}, bs, 3 * bs}) {
    CrossEntropyMetrics m(K, C, bs);
    for (int64_t s = 0; s < rows; s += block) {
      const int64_t len = std::min(block, rows - s);
      ASSERT_TRUE(m.Add(x.data_ptr<float>() + s * K * C, y.data_ptr<int64_t>() + s, len));
    }
    for (int64_t k = 0; k < K; ++k) {
      const torch::Tensor xk = x.select(1, k);
      const EvalResult got = m.Result(k);
      EXPECT_EQ(got.rows, rows);
      EXPECT_EQ(got.accuracy, xk.argmax(1).eq(y).sum().item<double>() / rows)
          << "block " << block << " trial " << k;
      if (k == 1 || k == 2) {  // a NaN logit makes its row's loss NaN
        EXPECT_TRUE(std::isnan(got.loss)) << "block " << block << " trial " << k;
        continue;
      }
      const EvalResult want = TorchMetrics(xk, y, bs);
      EXPECT_NEAR(got.loss, want.loss, 1e-6 * want.loss) << "block " << block << " trial " << k;
      EXPECT_EQ(got.accuracy, want.accuracy);
    }
  }
  CrossEntropyMetrics none(2, C, bs);
  EXPECT_EQ(none.Result(0).rows, 0);
  EXPECT_TRUE(std::isnan(none.Result(0).loss));
  EXPECT_TRUE(std::isnan(none.Result(0).accuracy));
}

TEST(CrossEntropyTest, MetricsRefuseALabelOutOfRange) {
  const torch::Tensor x = Logits(8, 1, 5, 6);
  torch::Tensor y = torch::zeros({8}, torch::kLong);
  y[7] = 5;
  CrossEntropyMetrics m(1, 5, 4);
  EXPECT_FALSE(m.Add(x.data_ptr<float>(), y.data_ptr<int64_t>(), 8));
  EXPECT_EQ(m.Result(0).rows, 0);
}

}  // namespace
}  // namespace qsweep
