// Workload 3: an MLP 784-256-10 with ReLU and softmax cross-entropy, float32, SGD lr 0.1,
// batch 128: one epoch over the 60000 Fashion-MNIST training images (Debian package
// dataset-fashion-mnist), shuffled minibatches from xgrad::data::DataLoader. GEMM-bound.
//
// Variants (one run = one epoch from the same initial weights, batches from the same
// loader: its worker thread gathers ahead while the training thread computes):
//   xgrad      compile({loss, dW1, db1, dW2, db2}) once; run per batch + optim::SGD; the
//              same epoch through train::Trainer::fit (its overhead over the loop)
//   LibTorch   addmm/relu/addmm, cross_entropy, backward(), torch::optim::SGD
//   sgemm      the five matrix products of a step (two forward, dW2, dh, dW1) straight on
//              OpenBLAS, same shapes, no other work: the GEMM limit
// GFLOP/s counts the five products (what the matrix units must do) per second.
//
//   w3_mlp [IMAGES_DIR]
#include <array>
#include <cmath>
#include <random>
#include <xgrad/xgrad.hpp>
#include <xtensor-blas/xblas.hpp>

#include "harness.hpp"

namespace {

constexpr std::size_t kIn = 784, kHidden = 256, kOut = 10, kBatch = 128;
constexpr float kLr = 0.1f;

/// PyTorch's nn.Linear initialisation: uniform in +-1/sqrt(fan_in).
xt::xarray<float> init(std::mt19937& rng, std::vector<std::size_t> shape, std::size_t fan_in) {
  float a = 1.0f / std::sqrt(static_cast<float>(fan_in));
  std::uniform_real_distribution<float> u(-a, a);
  xt::xarray<float> w = xt::xarray<float>::from_shape(shape);
  for (auto& v : w) v = u(rng);
  return w;
}

void sgemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const float* A,
           std::size_t lda, const float* B, std::size_t ldb, float* C) {
  using I = xt::blas_index_t;
  cxxblas::gemm<I>(cxxblas::StorageOrder::RowMajor,
                   ta ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans,
                   tb ? cxxblas::Transpose::Trans : cxxblas::Transpose::NoTrans, static_cast<I>(m),
                   static_cast<I>(n), static_cast<I>(k), 1.0f, A, static_cast<I>(lda), B,
                   static_cast<I>(ldb), 0.0f, C, static_cast<I>(n));
}

}  // namespace

int main(int argc, char** argv) {
  bench::setup_threads("w3_mlp");
  const std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist/";
  xgrad::data::IdxDataset<float, std::int64_t> train(
      dir + "train-images-idx3-ubyte.gz", dir + "train-labels-idx1-ubyte.gz",
      xgrad::data::IdxOptions().scale(1.0 / 255).flatten(true));
  xgrad::data::DataLoader loader(train, {.batch_size = kBatch, .shuffle = true, .seed = 1});
  const std::size_t batches = loader.num_batches();
  std::size_t epoch = 0;  // each run takes the next epoch's shuffle (same for every variant)

  std::mt19937 rng(3);
  const xt::xarray<float> W1_0 = init(rng, {kIn, kHidden}, kIn);
  const xt::xarray<float> b1_0 = init(rng, {kHidden}, kIn);
  const xt::xarray<float> W2_0 = init(rng, {kHidden, kOut}, kHidden);
  const xt::xarray<float> b2_0 = init(rng, {kOut}, kHidden);

  std::vector<bench::Variant> vs;
  double xg_loss = 0;  // mean training loss of the last run
#ifdef XGRAD_BENCH_HAVE_TORCH
  double t_loss = 0;
#endif

  // ---- xgrad
  xgrad::Graph<float> g;
  auto X = g.input("X", {xgrad::open, static_cast<xgrad::Dim>(kIn)});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto W1 = g.parameter("W1", W1_0);
  auto b1 = g.parameter("b1", b1_0);
  auto W2 = g.parameter("W2", W2_0);
  auto b2 = g.parameter("b2", b2_0);
  auto h = xgrad::relu(xgrad::matmul(X, W1) + b1);
  auto loss = xgrad::cross_entropy(xgrad::matmul(h, W2) + b2, labels);
  auto grads = xgrad::grad(loss, {W1, b1, W2, b2});
  auto f = xgrad::compile({loss, grads[0], grads[1], grads[2], grads[3]});
  xgrad::optim::SGD<float> sgd({W1, b1, W2, b2}, kLr);
  auto xgrad_epoch = [&](std::size_t e) {
    double total = 0;
    for (const auto& batch : loader.epoch(e)) {
      const auto& out = f.run(batch.feeds(X, labels));
      total += out[0]();
      sgd.step(out, 1);
    }
    xg_loss = total / static_cast<double>(batches);
  };
  auto reset = [&] {
    g.value(W1) = W1_0;
    g.value(b1) = b1_0;
    g.value(W2) = W2_0;
    g.value(b2) = b2_0;
  };
  vs.push_back({"xgrad (Function + optim::SGD)", "xgrad", [&] {
                  reset();
                  xgrad_epoch(epoch);
                }});
  // The same epoch through train::Trainer: fit's per-step overhead over the loop above.
  xgrad::optim::SGD<float> fit_sgd({W1, b1, W2, b2}, kLr);
  xgrad::train::Trainer<float> trainer({.x = X, .y = labels, .loss = loss}, fit_sgd);
  vs.push_back({"xgrad (train::Trainer::fit)", "xgrad", [&] {
                  reset();
                  trainer.set_position(epoch, 0);
                  trainer.fit(loader, {.epochs = epoch + 1});
                }});
  // The same steps with the update p -= lr g written out: optim::SGD also checks the
  // gradients for NaN/Inf and records their global norm every step.
  std::array<xt::xarray<float>*, 4> params{&g.value(W1), &g.value(b1), &g.value(W2), &g.value(b2)};
  vs.push_back({"xgrad (Function + plain p -= lr g)", "xgrad", [&] {
                  reset();
                  double total = 0;
                  for (const auto& batch : loader.epoch(epoch)) {
                    const auto& out = f.run(batch.feeds(X, labels));
                    total += out[0]();
                    for (std::size_t i = 0; i < 4; ++i) {
                      float* p = params[i]->data();
                      const float* gr = out[i + 1].data();
                      for (std::size_t j = 0, m = params[i]->size(); j < m; ++j)
                        p[j] -= kLr * gr[j];
                    }
                  }
                  xg_loss = total / static_cast<double>(batches);
                }});

#ifdef XGRAD_BENCH_HAVE_TORCH
  auto tensor = [](const xt::xarray<float>& a) {
    std::vector<long> s(a.shape().begin(), a.shape().end());
    return torch::from_blob(const_cast<float*>(a.data()), s, torch::kFloat32).clone();
  };
  auto tW1 = tensor(W1_0).requires_grad_(true), tb1 = tensor(b1_0).requires_grad_(true);
  auto tW2 = tensor(W2_0).requires_grad_(true), tb2 = tensor(b2_0).requires_grad_(true);
  torch::optim::SGD tsgd({tW1, tb1, tW2, tb2}, torch::optim::SGDOptions(kLr));
  auto torch_step = [&](const xgrad::data::Batch<float, std::int64_t>& batch) {
    long n = static_cast<long>(batch.size());
    auto tx = torch::from_blob(const_cast<float*>(batch.features.data()), {n, (long)kIn},
                               torch::kFloat32);
    auto ty = torch::from_blob(const_cast<std::int64_t*>(batch.targets.data()), {n}, torch::kInt64);
    tsgd.zero_grad();
    auto hh = torch::relu(torch::addmm(tb1, tx, tW1));
    auto l = torch::nn::functional::cross_entropy(torch::addmm(tb2, hh, tW2), ty);
    l.backward();
    tsgd.step();
    return l.item<double>();
  };
  auto torch_epoch = [&](std::size_t e) {
    double total = 0;
    for (const auto& batch : loader.epoch(e)) total += torch_step(batch);
    t_loss = total / static_cast<double>(batches);
  };
  vs.push_back({"LibTorch (eager + backward + optim::SGD)", "LibTorch", [&] {
                  torch::NoGradGuard ng;
                  tW1.copy_(tensor(W1_0));
                  tb1.copy_(tensor(b1_0));
                  tW2.copy_(tensor(W2_0));
                  tb2.copy_(tensor(b2_0));
                  torch::AutoGradMode on(true);
                  torch_epoch(epoch);
                }});
#endif

  // ---- the five products of each step, straight on OpenBLAS (same loader, same shapes)
  std::vector<float> H(kBatch * kHidden), L(kBatch * kOut), dW2(kHidden * kOut),
      dH(kBatch * kHidden), dW1(kIn * kHidden);
  xt::xarray<float> w1 = W1_0, w2 = W2_0;
  vs.push_back(
      {"sgemm only (5 products per step)", "limit", [&] {
         for (const auto& batch : loader.epoch(epoch)) {
           std::size_t n = batch.size();
           const float* x = batch.features.data();
           sgemm(false, false, n, kHidden, kIn, x, kIn, w1.data(), kHidden, H.data());
           sgemm(false, false, n, kOut, kHidden, H.data(), kHidden, w2.data(), kOut, L.data());
           sgemm(true, false, kHidden, kOut, n, H.data(), kHidden, L.data(), kOut, dW2.data());
           sgemm(false, true, n, kHidden, kOut, L.data(), kOut, w2.data(), kOut, dH.data());
           sgemm(true, false, kIn, kHidden, n, x, kIn, dH.data(), kHidden, dW1.data());
         }
       }});

  // Every run of a variant trains one epoch; the epoch number advances per round so that
  // all variants see the same shuffles.
  for (auto& v : vs) {
    auto run = v.run;
    v.run = [run, &epoch, &vs, &v] {
      run();
      if (&v == &vs.back()) ++epoch;
    };
  }
  bench::compare(vs, bench::reps(5));

  // Steady-state allocations: batches gathered beforehand, so the loader's own allocations
  // do not count, and one step first (the epoch's last batch was smaller: a new plan).
  std::vector<xgrad::data::Batch<float, std::int64_t>> pre;
  for (std::size_t b = 0; b < 20; ++b) pre.push_back(loader.batch(0, b));
  sgd.step(f.run(pre[0].feeds(X, labels)), 1);
  vs[0].steps = [&](int k) {
    for (int i = 0; i < k; ++i) sgd.step(f.run(pre[i % pre.size()].feeds(X, labels)), 1);
  };
#ifdef XGRAD_BENCH_HAVE_TORCH
  for (auto& v : vs) {
    if (v.kind == "LibTorch") {
      v.steps = [&](int k) {
        torch::AutoGradMode on(true);
        for (int i = 0; i < k; ++i) torch_step(pre[i % pre.size()]);
      };
    }
  }
#endif
  bench::count_step_allocations(vs, 20);

  // FLOPs of the products per epoch (the last batch is smaller).
  double flops = 0;
  for (std::size_t b = 0; b < batches; ++b) {
    double n = static_cast<double>(std::min(kBatch, train.size() - b * kBatch));
    flops += 2 * n * (2.0 * kIn * kHidden + 3.0 * kHidden * kOut);
  }
  bench::report("3. MLP 784-256-10 f32, batch 128, 1 epoch (469 steps)", vs,
                static_cast<double>(batches), "step", {"GFLOP/s", flops / 1e9});
  std::printf("mean training loss of the last epoch: xgrad %.4f", xg_loss);
#ifdef XGRAD_BENCH_HAVE_TORCH
  std::printf(", LibTorch %.4f", t_loss);
  if (std::abs(xg_loss - t_loss) > 1e-3 * std::max(1.0, t_loss)) {
    std::fprintf(stderr, "\nthe two trainings disagree\n");
    return 1;
  }
#endif
  std::printf("\nops per xgrad step: %zu, workspace %zu bytes\n", f.num_steps(),
              f.workspace_bytes());

  return 0;
}
