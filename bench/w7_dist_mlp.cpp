// Workload 7: workload 3's epoch (MLP 784-256-10, float32, SGD lr 0.1, softmax
// cross-entropy over the 60000 Fashion-MNIST training images) data-parallel over MPI at a
// fixed global batch of 128: each of R ranks trains on its shard with local batches of
// 128 / R, and one allreduce per step averages the loss and the gradients
// (xgrad::dist::GradientAverager). Every rank runs 1 thread (XGRAD_THREADS=1).
// scripts/bench.sh runs it on 1 and on 2 ranks and reports the throughput ratio.
//
//   mpirun -np R w7_dist_mlp [IMAGES_DIR]
//
// One run = one epoch from the same initial weights; the time of a run is the slowest
// rank's (every rank waits for the others at each allreduce anyway). Prints the median
// over the runs and an "MD" row for scripts/bench.sh.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <xgrad/dist/dist.hpp>
#include <xgrad/xgrad.hpp>

#include "harness.hpp"

namespace {

constexpr std::size_t kIn = 784, kHidden = 256, kOut = 10, kGlobalBatch = 128;
constexpr float kLr = 0.1f;

/// PyTorch's nn.Linear initialisation, as in workload 3.
xt::xarray<float> init(std::mt19937& rng, std::vector<std::size_t> shape, std::size_t fan_in) {
  float a = 1.0f / std::sqrt(static_cast<float>(fan_in));
  std::uniform_real_distribution<float> u(-a, a);
  xt::xarray<float> w = xt::xarray<float>::from_shape(shape);
  for (auto& v : w) v = u(rng);
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  xgrad::dist::Session mpi(argc, argv);
  return mpi.run([&] {
    const std::size_t R = mpi.size();
    if (mpi.is_root())
      bench::setup_threads("w7_dist_mlp");
    else
      openblas_set_num_threads(bench::thread_setting());
    const std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist/";
    xgrad::data::IdxDataset<float, std::int64_t> train(
        dir + "train-images-idx3-ubyte.gz", dir + "train-labels-idx1-ubyte.gz",
        xgrad::data::IdxOptions().scale(1.0 / 255).flatten(true));
    xgrad::data::DataLoader loader(train, mpi.shard({.batch_size = kGlobalBatch / R, .seed = 1}));

    std::mt19937 rng(3);
    const xt::xarray<float> W1_0 = init(rng, {kIn, kHidden}, kIn);
    const xt::xarray<float> b1_0 = init(rng, {kHidden}, kIn);
    const xt::xarray<float> W2_0 = init(rng, {kHidden, kOut}, kHidden);
    const xt::xarray<float> b2_0 = init(rng, {kOut}, kHidden);
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
    xgrad::dist::GradientAverager<float> avg(mpi);

    double mean_loss = 0;
    auto epoch = [&](std::size_t e) {
      g.value(W1) = W1_0;
      g.value(b1) = b1_0;
      g.value(W2) = W2_0;
      g.value(b2) = b2_0;
      double total = 0;
      for (const auto& batch : loader.epoch(e)) {
        const auto& mean = avg.average(f.run(batch.feeds(X, labels)));
        total += mean[0]();
        sgd.step(mean, 1);
      }
      mean_loss = total / static_cast<double>(loader.num_batches());
    };
    epoch(0);  // warm-up: plans, buffers, the page cache
    const int reps = bench::reps(5);
    std::vector<double> times;
    for (int r = 0; r < reps; ++r) {
      mpi.barrier();
      double t = bench::seconds_of([&] { epoch(r + 1); });
      MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      times.push_back(t);
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    const std::size_t images = loader.num_batches() * kGlobalBatch;  // 469 steps of 128
    auto& log = mpi.log();
    log << "w7: " << R << " rank(s) x 1 thread, local batch " << kGlobalBatch / R << ", "
        << loader.num_batches() << " steps: epoch min " << bench::human(times.front())
        << ", median " << bench::human(median) << ", max " << bench::human(times.back()) << ", "
        << images / median << " images/s (median); mean loss " << mean_loss << "\n";
    log << "W7 " << R << " " << median << " " << images / median << "\n";  // for bench.sh
    return 0;
  });
}
