// Workload 6: a LeNet-5-style CNN (conv 1->6 5x5, 2x2 max-pool, conv 6->16 5x5, 2x2
// max-pool, Linear 256->120->84->10, ReLU), float32, batch 64, SGD lr 0.05: one epoch over
// the 60000 Fashion-MNIST training images in shuffled minibatches. Small convolutions:
// per-op overhead decides as much as the arithmetic.
//
// Variants (one run = one epoch from the same initial weights, the same batches):
//   xgrad      the model from xgrad::nn layers, compile({loss, grads...}) once, optim::SGD
//   LibTorch   torch::nn::Conv2d / max_pool2d / Linear, backward(), torch::optim::SGD,
//              starting from xgrad's weights (both use PyTorch's parameter layout)
//   sgemm      the matrix products of a step with xgrad's im2col shapes (per sample: both
//              convolutions forward, their weight gradients, conv2's input gradient; the
//              three dense layers forward and backward) straight on OpenBLAS: the GEMM limit
// GFLOP/s counts those products per second.
//
//   w6_cnn [IMAGES_DIR]
#include <cmath>
#include <xgrad/xgrad.hpp>
#include <xtensor-blas/xblas.hpp>

#include "harness.hpp"

namespace {

constexpr std::size_t kBatch = 64;
constexpr float kLr = 0.05f;

void sgemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const float* A,
           const float* B, float* C) {
  using I = xt::blas_index_t;
  cxxblas::gemm<I>(cxxblas::StorageOrder::RowMajor,
                   ta ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans,
                   tb ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans, static_cast<I>(m),
                   static_cast<I>(n), static_cast<I>(k), 1.0f, A, static_cast<I>(ta ? m : k), B,
                   static_cast<I>(tb ? k : n), 0.0f, C, static_cast<I>(n));
}

}  // namespace

int main(int argc, char** argv) {
  namespace nn = xgrad::nn;
  bench::setup_threads("w6_cnn");
  const std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist/";
  xgrad::data::IdxDataset<float, std::int64_t> train(dir + "train-images-idx3-ubyte.gz",
                                                     dir + "train-labels-idx1-ubyte.gz",
                                                     xgrad::data::IdxOptions().scale(1.0 / 255));
  xgrad::data::DataLoader loader(train, {.batch_size = kBatch, .shuffle = true, .seed = 1});
  const std::size_t batches = loader.num_batches();
  std::size_t epoch = 0;

  // ---- xgrad
  xgrad::Graph<float> g;
  auto images = g.input("images", {xgrad::open, 28, 28});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  nn::manual_seed(3);
  nn::Sequential<float> net(g);
  net.add<nn::Conv2d>(1, 6, std::array<std::size_t, 2>{5, 5});
  net.add<nn::ReLU>();
  net.add<nn::MaxPool2d>(std::array<xgrad::Dim, 2>{2, 2});
  net.add<nn::Conv2d>(6, 16, std::array<std::size_t, 2>{5, 5});
  net.add<nn::ReLU>();
  net.add<nn::MaxPool2d>(std::array<xgrad::Dim, 2>{2, 2});
  net.add<nn::Flatten>();
  net.add<nn::Linear>(256, 120);
  net.add<nn::ReLU>();
  net.add<nn::Linear>(120, 84);
  net.add<nn::ReLU>();
  net.add<nn::Linear>(84, 10);
  auto loss = xgrad::cross_entropy(net(xgrad::reshape(images, {-1, 1, 28, 28})), labels);
  const auto params = net.parameters();
  std::vector<xgrad::Expr<float>> outs{loss};
  for (auto gr : xgrad::grad(loss, params)) outs.push_back(gr);
  auto f = xgrad::compile(outs);
  xgrad::optim::SGD<float> sgd(params, kLr);
  std::vector<xt::xarray<float>> initial;
  for (auto p : params) initial.push_back(g.value(p));
  auto reset = [&] {
    for (std::size_t i = 0; i < params.size(); ++i) g.value(params[i]) = initial[i];
  };

  std::vector<bench::Variant> vs;
  double xg_loss = 0;
  vs.push_back({"xgrad (nn layers, Function + optim::SGD)", "xgrad", [&] {
                  reset();
                  double total = 0;
                  for (const auto& batch : loader.epoch(epoch)) {
                    const auto& out = f.run(batch.feeds(images, labels));
                    total += out[0]();
                    sgd.step(out, 1);
                  }
                  xg_loss = total / static_cast<double>(batches);
                }});

#ifdef XGRAD_BENCH_HAVE_TORCH
  double t_loss = 0;
  torch::nn::Sequential tnet(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 6, 5)), torch::nn::ReLU(),
      torch::nn::MaxPool2d(2), torch::nn::Conv2d(torch::nn::Conv2dOptions(6, 16, 5)),
      torch::nn::ReLU(), torch::nn::MaxPool2d(2), torch::nn::Flatten(), torch::nn::Linear(256, 120),
      torch::nn::ReLU(), torch::nn::Linear(120, 84), torch::nn::ReLU(), torch::nn::Linear(84, 10));
  std::vector<torch::Tensor> tparams = tnet->parameters();
  auto load_initial = [&] {
    torch::NoGradGuard ng;
    for (std::size_t i = 0; i < tparams.size(); ++i) {
      std::vector<long> s(initial[i].shape().begin(), initial[i].shape().end());
      tparams[i].copy_(torch::from_blob(initial[i].data(), s, torch::kFloat32));
    }
  };
  torch::optim::SGD tsgd(tparams, torch::optim::SGDOptions(kLr));
  auto torch_step = [&](const xgrad::data::Batch<float, std::int64_t>& batch) {
    const long n = static_cast<long>(batch.size());
    auto tx = torch::from_blob(const_cast<float*>(batch.features.data()), {n, 1, 28, 28},
                               torch::kFloat32);
    auto ty = torch::from_blob(const_cast<std::int64_t*>(batch.targets.data()), {n}, torch::kInt64);
    tsgd.zero_grad();
    auto l = torch::nn::functional::cross_entropy(tnet->forward(tx), ty);
    l.backward();
    tsgd.step();
    return l.item<double>();
  };
  vs.push_back({"LibTorch (nn modules + backward + optim::SGD)", "LibTorch", [&] {
                  load_initial();
                  double total = 0;
                  for (const auto& batch : loader.epoch(epoch)) total += torch_step(batch);
                  t_loss = total / static_cast<double>(batches);
                }});
#endif

  // ---- the products of each step, with im2col's shapes, straight on OpenBLAS
  std::vector<float> a(64 * 600), b(64 * 600), c(64 * 600);
  vs.push_back({"sgemm only (the products of a step)", "limit", [&] {
                  for (const auto& batch : loader.epoch(epoch)) {
                    const std::size_t n = batch.size();
                    for (std::size_t s = 0; s < n; ++s) {
                      sgemm(false, false, 6, 576, 25, a.data(), b.data(), c.data());   // conv1
                      sgemm(false, true, 6, 25, 576, c.data(), b.data(), a.data());    // dW1
                      sgemm(false, false, 16, 64, 150, a.data(), b.data(), c.data());  // conv2
                      sgemm(false, true, 16, 150, 64, c.data(), b.data(), a.data());   // dW2
                      sgemm(true, false, 150, 64, 16, a.data(), c.data(), b.data());   // dX2
                    }
                    for (auto [in, out] : {std::pair{256, 120}, {120, 84}, {84, 10}}) {
                      const auto i = static_cast<std::size_t>(in),
                                 o = static_cast<std::size_t>(out);
                      sgemm(false, true, n, o, i, b.data(), a.data(), c.data());   // forward
                      sgemm(true, false, o, i, n, c.data(), b.data(), a.data());   // dW
                      sgemm(false, false, n, i, o, c.data(), a.data(), b.data());  // dX
                    }
                  }
                }});

  for (auto& v : vs) {
    auto run = v.run;
    v.run = [run, &epoch, &vs, &v] {
      run();
      if (&v == &vs.back()) ++epoch;
    };
  }
  bench::compare(vs, bench::reps(3));

  std::vector<xgrad::data::Batch<float, std::int64_t>> pre;
  for (std::size_t i = 0; i < 10; ++i) pre.push_back(loader.batch(0, i));
  sgd.step(f.run(pre[0].feeds(images, labels)), 1);
  vs[0].steps = [&](int k) {
    for (int i = 0; i < k; ++i) sgd.step(f.run(pre[i % pre.size()].feeds(images, labels)), 1);
  };
#ifdef XGRAD_BENCH_HAVE_TORCH
  for (auto& v : vs) {
    if (v.kind == "LibTorch") {
      v.steps = [&](int k) {
        for (int i = 0; i < k; ++i) torch_step(pre[i % pre.size()]);
      };
    }
  }
#endif
  bench::count_step_allocations(vs, 10);

  double flops = 0;  // the products listed above, per epoch
  for (std::size_t bi = 0; bi < batches; ++bi) {
    const double n = static_cast<double>(std::min(kBatch, train.size() - bi * kBatch));
    const double conv = 2.0 * (6 * 576 * 25) * 2 + 2.0 * (16 * 64 * 150) * 3;
    const double dense = 2.0 * 3 * (256 * 120 + 120 * 84 + 84 * 10);
    flops += n * (conv + dense);
  }
  bench::report("6. LeNet-5 CNN f32, batch 64, 1 epoch (938 steps)", vs,
                static_cast<double>(batches), "step", {"GFLOP/s", flops / 1e9});
  std::printf("mean training loss of the last epoch: xgrad %.4f", xg_loss);
#ifdef XGRAD_BENCH_HAVE_TORCH
  std::printf(", LibTorch %.4f", t_loss);
  if (std::abs(xg_loss - t_loss) > 2e-3 * std::max(1.0, t_loss)) {
    std::fprintf(stderr, "\nthe two trainings disagree\n");
    return 1;
  }
#endif
  std::printf("\nops per xgrad step: %zu, workspace %zu bytes\n", f.num_steps(),
              f.workspace_bytes());
  return 0;
}
