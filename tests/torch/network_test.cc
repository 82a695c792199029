// Network, FlatOptimizer and checkpoint files, checked against Debian's
// python3-torch where an independent reference exists.
#include "worker/core/torch/network.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/torch/test_util.h"
#include "worker/core/torch/checkpoint_io.h"
#include "worker/core/torch/optimizer.h"
#include "worker/core/torch/trainer.h"

namespace qsweep {
namespace {

using ::testing::HasSubstr;
using testing_util::HelperScript;
using testing_util::kPython;
using testing_util::RunCommand;
using testing_util::TempDir;

std::shared_ptr<Network> MakeNet(const std::string& name, uint64_t seed) {
  auto spec = ZooModel(name);
  EXPECT_TRUE(spec.ok()) << spec.status();
  auto net = Network::Create(*spec, seed);
  EXPECT_TRUE(net.ok()) << net.status();
  return *net;
}

torch::Tensor LoadPickledTensor(const std::string& path) {
  std::string bytes = testing_util::ReadFile(path);
  return torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toTensor();
}

void SavePickled(const c10::IValue& v, const std::string& path) {
  std::vector<char> bytes = torch::pickle_save(v);
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Initial weights, buffers and state-dict key order equal PyTorch's for the
// same seed; trainable parameter counts equal the spec's (117/327/5615/3231).
TEST(NetworkTest, InitMatchesPyTorchAndCountsMatchSpec) {
  TempDir dir("init");
  ASSERT_EQ(
      RunCommand(std::string(kPython) + " " + HelperScript() +
                 " init --model jsc-tiny,jsc-toy,jsc-s,jsc-trt --seed 0,42 --out " + dir.path()),
      0);
  for (const std::string name : {"jsc-tiny", "jsc-toy", "jsc-s", "jsc-trt"}) {
    for (uint64_t seed : {0u, 42u}) {
      SCOPED_TRACE(name + " seed " + std::to_string(seed));
      const std::string base = dir.File(name + "_" + std::to_string(seed));
      const std::string state = base + ".pt", keys = base + ".json";
      std::string bytes = testing_util::ReadFile(state);
      c10::Dict<c10::IValue, c10::IValue> py =
          torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
      nlohmann::json py_keys = nlohmann::json::parse(testing_util::ReadFile(keys));

      auto net = MakeNet(name, seed);
      auto sd = net->StateDict();
      ASSERT_EQ(sd.size(), py_keys.size());
      for (size_t i = 0; i < sd.size(); ++i) {
        EXPECT_EQ(sd[i].first, py_keys[i].get<std::string>());
        torch::Tensor ref = py.at(sd[i].first).toTensor();
        EXPECT_TRUE(torch::equal(sd[i].second, ref)) << sd[i].first;
      }
      // Python's torch.save(dict(state_dict())) reads back as weights too.
      auto weights = ReadWeights(state);
      ASSERT_TRUE(weights.ok()) << weights.status();
      ASSERT_EQ(weights->size(), sd.size());
      for (size_t i = 0; i < sd.size(); ++i) {
        EXPECT_EQ((*weights)[i].first, sd[i].first);
        EXPECT_TRUE(torch::equal((*weights)[i].second, sd[i].second));
      }
      EXPECT_EQ(net->NumTrainableParams(), net->spec().TrainableParams());
      int64_t buffer_entries = 0;
      for (const auto& b : net->buffers()) buffer_entries += b.numel();
      EXPECT_EQ(buffer_entries, net->spec().BufferEntries());
    }
  }
  EXPECT_EQ(MakeNet("jsc-toy", 0)->NumTrainableParams(), 327);
  EXPECT_EQ(MakeNet("jsc-s", 0)->NumTrainableParams(), 5615);
}

// Each network has its own generator (issue 8 §5): its initial weights and
// its dropout masks do not depend on the process-wide default generator,
// whatever another job draws from or seeds into it meanwhile.
TEST(NetworkTest, OwnGeneratorIgnoresTheDefaultGenerator) {
  ModelSpec spec = *ZooModel("jsc-toy");
  spec.layers.push_back({LayerKind::kDropout, spec.num_classes, spec.num_classes, 0.5});
  torch::manual_seed(1);
  auto a = Network::Create(spec, 7);
  ASSERT_TRUE(a.ok()) << a.status();
  torch::manual_seed(99);
  (void)torch::rand({1000});
  auto b = Network::Create(spec, 7);
  ASSERT_TRUE(b.ok()) << b.status();
  const auto sa = (*a)->StateDict(), sb = (*b)->StateDict();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i)
    EXPECT_TRUE(sa[i].second.equal(sb[i].second)) << sa[i].first;
  const torch::Tensor x = torch::ones({64, spec.in_features});
  (*a)->train();
  (*b)->train();
  const torch::Tensor ya = (*a)->Forward(x);
  torch::manual_seed(5);
  const torch::Tensor yb = (*b)->Forward(x);
  EXPECT_TRUE(ya.equal(yb));
  // The mask is drawn: training output differs from the eval-mode one.
  (*a)->eval();
  EXPECT_FALSE(ya.equal((*a)->Forward(x)));
  // A different seed gives other weights.
  auto c = Network::Create(spec, 8);
  ASSERT_TRUE(c.ok());
  const auto sc = (*c)->StateDict();
  bool any_differs = false;
  for (size_t i = 0; i < sa.size(); ++i) any_differs |= !sc[i].second.equal(sa[i].second);
  EXPECT_TRUE(any_differs);
}

TEST(NetworkTest, FillGraphShapesRecordsRealShapes) {
  auto net = MakeNet("jsc-toy", 0);
  net->train();
  Graph g = BuildGraph(net->spec(), 1);  // wrong batch on purpose: must be overwritten
  ASSERT_TRUE(FillGraphShapes(g, *net, 7).ok());
  EXPECT_TRUE(net->is_training());  // mode restored
  EXPECT_EQ(g.nodes.front().results["data_out_0"].shape, (std::vector<int64_t>{7, 16}));
  const Node& l2 = g.LayerNode(2);  // Linear(16, 8)
  EXPECT_EQ(l2.type_name, "Linear");
  EXPECT_EQ(l2.args.at("data_in_0").shape, (std::vector<int64_t>{7, 16}));
  EXPECT_EQ(l2.args.at("weight").shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(l2.results.at("data_out_0").shape, (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(l2.results.at("data_out_0").torch_dtype, "torch.float32");
  EXPECT_EQ(g.LayerNode(3).type_name, "BatchNorm1d");
  EXPECT_EQ(g.LayerNode(3).args.at("running_var").shape, (std::vector<int64_t>{8}));
  EXPECT_EQ(g.nodes.back().args["data_in_0"].shape, (std::vector<int64_t>{7, 5}));
  EXPECT_FALSE(FillGraphShapes(g, *net, 0).ok());
  Graph other = BuildGraph(*ZooModel("jsc-tiny"), 4);
  EXPECT_FALSE(FillGraphShapes(other, *net, 4).ok());
}

// A stand-in for a transform pass's module: same parameter names as Linear.
struct ScaledLinearImpl : torch::nn::Module {
  explicit ScaledLinearImpl(const torch::nn::LinearImpl& from) : torch::nn::Module("ScaledLinear") {
    weight = register_parameter("weight", from.weight.detach().clone());
    bias = register_parameter("bias", from.bias.detach().clone());
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return 2 * torch::nn::functional::linear(x, weight, bias);
  }
  torch::Tensor weight, bias;
};

TEST(NetworkTest, ReplaceLayerKeepsNamesAndChangesForward) {
  auto net = MakeNet("jsc-tiny", 0);  // BN, ReLU, Linear, ReLU
  net->eval();
  torch::Tensor x = torch::linspace(-2, 2, 3 * 16).view({3, 16});
  torch::Tensor before = net->ForwardLayer(2, x);
  auto names_before = net->StateDict();
  auto linear = std::dynamic_pointer_cast<torch::nn::LinearImpl>(net->LayerModule(2));
  ASSERT_NE(linear, nullptr);
  auto scaled = std::make_shared<ScaledLinearImpl>(*linear);
  ASSERT_TRUE(net->ReplaceLayer(2, torch::nn::AnyModule(scaled), scaled).ok());
  EXPECT_TRUE(torch::allclose(net->ForwardLayer(2, x), 2 * before));
  auto names_after = net->StateDict();
  ASSERT_EQ(names_after.size(), names_before.size());
  for (size_t i = 0; i < names_after.size(); ++i)
    EXPECT_EQ(names_after[i].first, names_before[i].first);
  Graph g = BuildGraph(net->spec(), 2);
  ASSERT_TRUE(FillGraphShapes(g, *net, 2).ok());
  EXPECT_EQ(g.LayerNode(2).type_name, "ScaledLinear");
  EXPECT_EQ(net->ReplaceLayer(9, torch::nn::AnyModule(scaled), scaled).code(),
            absl::StatusCode::kInvalidArgument);
}

// FlatOptimizer equals torch::optim's Adam / AdamW / SGD(nesterov) step by
// step. On jsc-tiny: in jsc-toy a Linear bias feeds a BatchNorm, so its true
// gradient is zero and Adam's normalisation turns the rounding noise of two
// implementations (FlatOptimizer's loop, LibTorch's ops) into full-size steps
// of different signs; that is not a difference in the optimizer.
TEST(FlatOptimizerTest, MatchesTorchOptim) {
  struct Case {
    std::string kind;
    double wd;
  };
  for (const Case& c :
       {Case{"adam", 0.0}, Case{"adam", 1e-2}, Case{"adamw", 1e-2}, Case{"sgd", 0.0}}) {
    SCOPED_TRACE(c.kind + " wd " + std::to_string(c.wd));
    auto a = MakeNet("jsc-tiny", 5), b = MakeNet("jsc-tiny", 5);
    const double lr = 1e-2;
    std::unique_ptr<torch::optim::Optimizer> ref;
    if (c.kind == "adam") {
      ref = std::make_unique<torch::optim::Adam>(a->parameters(),
                                                 torch::optim::AdamOptions(lr).weight_decay(c.wd));
    } else if (c.kind == "adamw") {
      ref = std::make_unique<torch::optim::AdamW>(
          a->parameters(), torch::optim::AdamWOptions(lr).weight_decay(c.wd));
    } else {
      ref = std::make_unique<torch::optim::SGD>(
          a->parameters(),
          torch::optim::SGDOptions(lr).momentum(0.9).nesterov(true).weight_decay(5e-4));
    }
    auto flat = FlatOptimizer::Create(b->parameters(), {c.kind, lr, c.wd});
    ASSERT_TRUE(flat.ok()) << flat.status();
    torch::manual_seed(9);
    for (int step = 0; step < 6; ++step) {
      torch::Tensor x = torch::randn({32, 16});
      torch::Tensor y = torch::randint(0, 5, {32});
      ref->zero_grad();
      torch::nn::functional::cross_entropy(a->Forward(x), y).backward();
      ref->step();
      torch::nn::functional::cross_entropy(b->Forward(x), y).backward();
      (*flat)->Step();
      (*flat)->ZeroGrad();
    }
    auto sa = a->StateDict(), sb = b->StateDict();
    for (size_t i = 0; i < sa.size(); ++i) {
      EXPECT_TRUE(torch::allclose(sa[i].second, sb[i].second, 1e-5, 1e-7)) << sa[i].first;
    }
    // The parameters really moved.
    EXPECT_FALSE(torch::equal(sb[0].second, MakeNet("jsc-tiny", 5)->StateDict()[0].second));
  }
  auto net = MakeNet("jsc-toy", 0);
  auto bad = FlatOptimizer::Create(net->parameters(), {"rmsprop", 1e-3, 0});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("adam, adamw, sgd"));
}

// Python builds MASE's model, torch.loads the export, load_state_dict(strict)
// and gives the same outputs as the C++ network.
TEST(CheckpointTest, ExportLoadsInPyTorchWithSameOutputs) {
  TempDir dir("export");
  for (const std::string name : {"jsc-toy", "jsc-s"}) {
    SCOPED_TRACE(name);
    auto net = MakeNet(name, 3);
    {
      // Non-trivial BN statistics so that the buffers matter.
      torch::NoGradGuard no_grad;
      for (auto& [key, t] : net->StateDict()) {
        if (key.find("running_mean") != std::string::npos) t.uniform_(-1, 1);
        if (key.find("running_var") != std::string::npos) t.uniform_(0.5, 2);
        if (key.find("num_batches_tracked") != std::string::npos) t.fill_(7);
        if (key.find(".bias") != std::string::npos) t.uniform_(-0.5, 0.5);
      }
    }
    const std::string ckpt = dir.File(name + ".ckpt"), exported = dir.File(name + ".pt");
    ASSERT_TRUE(WriteCheckpoint(ckpt, *net, nullptr, {{"dataset", "none"}}).ok());
    ASSERT_TRUE(ExportStateDict(ckpt, exported).ok());
    torch::manual_seed(11);
    torch::Tensor x = torch::randn({64, 16}) * 2;
    SavePickled(x, dir.File("x.pt"));
    net->eval();
    torch::Tensor y_cpp = net->Forward(x).detach();
    ASSERT_EQ(RunCommand(std::string(kPython) + " " + HelperScript() + " run --model " + name +
                         " --state " + exported + " --inputs " + dir.File("x.pt") + " --out " +
                         dir.File("y.pt")),
              0);
    torch::Tensor y_py = LoadPickledTensor(dir.File("y.pt"));
    ASSERT_EQ(y_py.sizes(), y_cpp.sizes());
    EXPECT_TRUE(torch::allclose(y_py, y_cpp, 1e-5, 1e-6))
        << (y_py - y_cpp).abs().max().item<double>();
    EXPECT_GT(y_cpp.abs().sum().item<double>(), 0);
  }
}

TEST(CheckpointTest, RoundTripKeepsSpecMetaStateAndOptimizer) {
  TempDir dir("roundtrip");
  auto net = MakeNet("jsc-trt", 1);
  auto opt = FlatOptimizer::Create(net->parameters(), {"adam", 1e-3, 0});
  ASSERT_TRUE(opt.ok());
  torch::nn::functional::cross_entropy(net->Forward(torch::ones({4, 16})),
                                       torch::tensor({0, 1, 2, 3}))
      .backward();
  (*opt)->Step();
  nlohmann::json quant = {{"by", "type"}, {"linear", {{"name", "integer"}}}};
  const std::string path = dir.File("a.ckpt");
  ASSERT_TRUE(WriteCheckpoint(path, *net, opt->get(),
                              {{"dataset", "blobs"}, {"epoch", 3}, {"quantization", quant}})
                  .ok());
  auto info = ReadCheckpointInfo(path);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(ModelSpecToJson(info->spec), ModelSpecToJson(net->spec()));
  EXPECT_EQ(info->meta["dataset"], "blobs");
  EXPECT_EQ(info->meta["epoch"], 3);
  EXPECT_EQ(info->meta["quantization"], quant);
  EXPECT_EQ(info->meta["libtorch_version"], TORCH_VERSION);
  EXPECT_EQ(info->meta["optimizer"]["kind"], "adam");

  auto loaded = LoadCheckpointNetwork(path, torch::kCPU);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto a = net->StateDict(), b = (*loaded)->StateDict();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second));

  auto opt2 = FlatOptimizer::Create((*loaded)->parameters(), {"adam", 0.5, 0});
  ASSERT_TRUE(LoadOptimizerState(path, **opt2).ok());
  EXPECT_EQ((*opt2)->step_count(), 1);
  EXPECT_DOUBLE_EQ((*opt2)->lr(), 1e-3);
  auto sgd = FlatOptimizer::Create((*loaded)->parameters(), {"sgd", 0.5, 0});
  EXPECT_EQ(LoadOptimizerState(path, **sgd).code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(WriteCheckpoint(dir.File("noopt.ckpt"), *net, nullptr, {}).ok());
  EXPECT_EQ(LoadOptimizerState(dir.File("noopt.ckpt"), **opt2).code(), absl::StatusCode::kNotFound);
}

// EvaluateCheckpoint (chunked forward) equals a plain per-batch loop: loss =
// mean of batch-mean losses, accuracy = micro, with a partial last batch.
TEST(CheckpointTest, EvaluateMatchesPerBatchLoop) {
  TempDir dir("eval");
  auto net = MakeNet("jsc-toy", 4);
  {
    torch::NoGradGuard no_grad;
    for (auto& [key, t] : net->StateDict()) {
      if (key.find("running_mean") != std::string::npos) t.uniform_(-0.5, 0.5);
      if (key.find("bias") != std::string::npos) t.uniform_(0, 1);
    }
  }
  ASSERT_TRUE(WriteCheckpoint(dir.File("e.ckpt"), *net, nullptr, {}).ok());
  Dataset d = testing_util::BlobDataset(10, 40000 + 37);
  for (int64_t bs : {100, 4096, 50000}) {
    SCOPED_TRACE(bs);
    auto r = EvaluateCheckpoint(dir.File("e.ckpt"), d, "test", bs, "cpu");
    ASSERT_TRUE(r.ok()) << r.status();
    torch::NoGradGuard no_grad;
    net->eval();
    const int64_t n = d.test.rows;
    torch::Tensor x = torch::from_blob(d.test.x.data(), {n, 16}, torch::kFloat);
    torch::Tensor y = torch::from_blob(d.test.y.data(), {n}, torch::kLong);
    double loss_sum = 0;
    int64_t batches = 0, correct = 0;
    for (int64_t s = 0; s < n; s += bs) {
      const int64_t len = std::min(bs, n - s);
      torch::Tensor out = net->Forward(x.narrow(0, s, len));
      loss_sum += torch::nn::functional::cross_entropy(out, y.narrow(0, s, len)).item<double>();
      correct += out.argmax(1).eq(y.narrow(0, s, len)).sum().item<int64_t>();
      ++batches;
    }
    EXPECT_EQ(r->rows, n);
    EXPECT_NEAR(r->loss, loss_sum / static_cast<double>(batches), 1e-6 * r->loss);
    EXPECT_DOUBLE_EQ(r->accuracy, static_cast<double>(correct) / static_cast<double>(n));
  }
}

TEST(CheckpointTest, BadFilesGiveClearErrors) {
  TempDir dir("bad");
  const std::string missing = dir.File("missing.ckpt");
  EXPECT_EQ(ReadCheckpointInfo(missing).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ReadCheckpointInfo(missing).status().message()), HasSubstr(missing));
  EXPECT_EQ(ExportStateDict(missing, dir.File("x.pt")).code(), absl::StatusCode::kNotFound);

  const std::string garbage = dir.File("garbage.ckpt");
  std::ofstream(garbage) << "this is not a checkpoint\n";
  auto g = ReadCheckpointInfo(garbage);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(g.status().message()), HasSubstr(garbage));

  // A valid LibTorch archive that is not a qsweep checkpoint.
  const std::string foreign = dir.File("foreign.pt");
  torch::save(torch::ones({3}), foreign);
  EXPECT_EQ(ReadCheckpointInfo(foreign).status().code(), absl::StatusCode::kDataLoss);

  // A truncated real checkpoint.
  auto net = MakeNet("jsc-toy", 0);
  const std::string good = dir.File("good.ckpt"), cut = dir.File("cut.ckpt");
  ASSERT_TRUE(WriteCheckpoint(good, *net, nullptr, {}).ok());
  std::string bytes = testing_util::ReadFile(good);
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_EQ(ReadCheckpointInfo(cut).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(LoadCheckpointNetwork(cut, torch::kCPU).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadCheckpointInfo(dir.path()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckpointTest, ReadWeightsAcceptsPrefixedDictsAndRejectsOthers) {
  TempDir dir("weights");
  auto net = MakeNet("jsc-tiny", 2);
  c10::Dict<std::string, torch::Tensor> prefixed;
  for (const auto& [k, t] : net->StateDict()) prefixed.insert("model." + k, t);
  SavePickled(prefixed, dir.File("lightning_style.pt"));
  auto w = ReadWeights(dir.File("lightning_style.pt"));
  ASSERT_TRUE(w.ok()) << w.status();
  auto other = MakeNet("jsc-tiny", 99);
  ASSERT_TRUE(other->LoadStateDict(*w, "test").ok());
  auto a = net->StateDict(), b = other->StateDict();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second));

  EXPECT_EQ(ReadWeights(dir.File("none.pt")).status().code(), absl::StatusCode::kNotFound);
  std::ofstream(dir.File("junk.pt")) << "junk";
  auto junk = ReadWeights(dir.File("junk.pt"));
  EXPECT_EQ(junk.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(junk.status().message()), HasSubstr("junk.pt"));
  SavePickled(torch::ones({2}), dir.File("tensor.pt"));
  EXPECT_EQ(ReadWeights(dir.File("tensor.pt")).status().code(), absl::StatusCode::kDataLoss);
}

TEST(CheckpointTest, ModelSpecJsonRejectsBadInput) {
  auto toy = *ZooModel("jsc-toy");
  auto back = ModelSpecFromJson(ModelSpecToJson(toy));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ModelSpecToJson(*back), ModelSpecToJson(toy));
  EXPECT_EQ(back->TrainableParams(), 327);
  nlohmann::json j = ModelSpecToJson(toy);
  j["layers"][2]["type"] = "conv2d";
  auto bad = ModelSpecFromJson(j);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("layers[2]"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("linear, batch_norm1d"));
  j = ModelSpecToJson(toy);
  j["layers"][2]["out"] = 9;  // width mismatch with the following BN(8)
  EXPECT_FALSE(ModelSpecFromJson(j).ok());
  EXPECT_FALSE(ModelSpecFromJson(nlohmann::json::array()).ok());
}

TEST(DeviceTest, ResolvesAndRejects) {
  EXPECT_TRUE(ResolveDevice("", "auto")->is_cpu());
  EXPECT_TRUE(ResolveDevice("cpu", "gpu")->is_cpu());
  EXPECT_EQ(ResolveDevice("tpu", "auto").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ResolveDevice("tpu", "auto").status().message()), HasSubstr("cpu, cuda"));
  if (!torch::cuda::is_available()) {
    EXPECT_TRUE(ResolveDevice("", "gpu")->is_cpu());
    EXPECT_EQ(ResolveDevice("cuda", "auto").status().code(), absl::StatusCode::kFailedPrecondition);
  } else {
    EXPECT_TRUE(ResolveDevice("", "gpu")->is_cuda());
    EXPECT_TRUE(ResolveDevice("cuda:0", "auto")->is_cuda());
  }
}

}  // namespace
}  // namespace qsweep
