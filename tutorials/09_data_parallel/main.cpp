// Tutorial 9: the lecture note's minibatch SGD on several processes (data parallelism).
//
// Run with mpirun: each process (rank) computes the gradient on its share of every
// minibatch, the shares' gradients are averaged in one allreduce, and every rank takes the
// same step. (1) the sampler's shards: one epoch's order, cut among the ranks; (2) SGD on
// R ranks with local batches of B / R equals SGD in one process with batches of B, to
// rounding; (3) what changes when the number of ranks changes at a fixed local batch: the
// global batch, the steps per epoch and the learning rate; (4) the same training through
// train::Trainer::fit, with one option. README.md walks through it.
//
// Usage: mpirun -np 2 ./09_data_parallel   (any number of ranks that divides 16)
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>
#include <xgrad/dist/dist.hpp>
#include <xgrad/io.hpp>  // prints arrays with operator<<
#include <xgrad/xgrad.hpp>

namespace data = xgrad::data;
namespace dist = xgrad::dist;
namespace optim = xgrad::optim;
namespace train = xgrad::train;

int main(int argc, char** argv) {
  // [session]
  dist::Session mpi(argc, argv);  // MPI_Init now, MPI_Finalize at the end of main
  return mpi.run([&] {            // an exception on any rank ends all ranks with its message
    const std::size_t R = mpi.size();
    auto& log = mpi.log();  // std::cout on rank 0, nothing elsewhere
    log << std::setprecision(6) << "ranks: " << R << "\n";
    // [end]
    if (16 % R != 0) {
      log << "run with a number of ranks that divides 16 (1, 2, 4, 8 or 16)\n";
      return 2;
    }

    // [shards]
    {
      data::TensorDataset<double> tiny(xt::arange<double>(10.0), xt::zeros<double>({10}));
      for (std::size_t r = 0; r < R; ++r) {  // every rank's shard, computed here on rank 0
        data::DataLoader<double> loader(tiny,
                                        {.batch_size = 2, .seed = 3, .shards = R, .shard = r});
        log << "epoch 0, rank " << r << ":";
        for (const auto& batch : loader.epoch(0)) log << " " << batch.features;
        log << "\n";
      }
      data::DataLoader<double> one(tiny, {.batch_size = 2 * R, .seed = 3});
      log << "epoch 0, one process with batches of " << 2 * R << ":";
      for (const auto& batch : one.epoch(0)) log << " " << batch.features;
      log << "\n";
    }
    // [end]

    // [data]
    // The note's section 4 regression: y = 1 x1 + 2 x2 + 3 + noise, 256 examples. Every
    // rank builds the same data set; the sampler decides which rows a rank reads.
    const std::size_t rows = 256;
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> uniform(0.0, 3.0);
    std::normal_distribution<double> noise(0.0, 0.5);
    xt::xarray<double> X = xt::ones<double>({rows, std::size_t{3}}), y = xt::zeros<double>({rows});
    for (std::size_t i = 0; i < rows; ++i) {
      X(i, 0) = uniform(rng);
      X(i, 1) = uniform(rng);
      y(i) = X(i, 0) + 2 * X(i, 1) + 3 + noise(rng);
    }
    data::TensorDataset<double> regression(X, y);

    xgrad::Graph<double> g;
    auto Xi = g.input("X", {xgrad::open, 3});
    auto yi = g.input("y", {xgrad::open});
    auto beta = g.parameter("beta", xt::zeros<double>({3}));
    auto mse = xgrad::mse(xgrad::matmul(Xi, beta), yi);
    auto step = xgrad::compile({mse, xgrad::grad(mse, {beta})[0]});
    // [end]

    // [train]
    // SGD over `epochs` epochs with local batches of local_batch on every rank; returns the
    // last epoch's mean loss. Each rank starts from its own random beta: the broadcast
    // replaces it with rank 0's.
    auto train = [&](std::size_t local_batch, double lr, std::size_t epochs) {
      std::mt19937 init(100 + mpi.rank());
      std::normal_distribution<double> start(0.0, 1.0);
      for (auto& v : g.value(beta)) v = start(init);
      dist::broadcast_parameters(mpi, std::vector{beta});
      optim::SGD<double> sgd({beta}, lr);
      dist::GradientAverager<double> avg(mpi);
      data::DataLoader<double> loader(regression,
                                      mpi.shard({.batch_size = local_batch, .seed = 5}));
      double epoch_loss = 0;
      for (std::size_t epoch = 0; epoch < epochs; ++epoch) {
        epoch_loss = 0;
        for (const auto& batch : loader.epoch(epoch)) {
          const auto& mean = avg.average(step.run(batch.feeds(Xi, yi)));  // loss and gradient
          sgd.step(mean, 1);  // the same step on every rank
          epoch_loss += mean[0]() / loader.num_batches();
        }
      }
      return epoch_loss;
    };
    // [end]

    // [equal]
    const std::size_t B = 16;
    const double loss_r = train(B / R, 0.05, 20);
    const xt::xarray<double> beta_r = g.value(beta);
    // The same run in one process, batches of B: every rank can compute it alone, with
    // data::DataLoader's plain settings and rank 0's start.
    std::mt19937 init(100);
    std::normal_distribution<double> start(0.0, 1.0);
    for (auto& v : g.value(beta)) v = start(init);
    optim::SGD<double> sgd({beta}, 0.05);
    data::DataLoader<double> loader(regression, {.batch_size = B, .seed = 5});
    for (std::size_t epoch = 0; epoch < 20; ++epoch)
      for (const auto& batch : loader.epoch(epoch)) sgd.step(step.run(batch.feeds(Xi, yi)), 1);
    const double diff = xt::amax(xt::abs(beta_r - g.value(beta)))();
    log << "20 epochs, " << R << " ranks x batch " << B / R << ": beta = " << beta_r
        << ", last epoch's loss " << loss_r << "\n"
        << "1 process x batch " << B << ":  beta = " << g.value(beta) << "\n"
        << "max |difference| = " << diff << "\n";
    // [end]

    // [scaling]
    // A fixed local batch of 8: R ranks make a global batch of 8 R and 256 / (8 R) steps
    // per epoch. The rate 0.02 suits batches of 8; at a global batch of 8 R the linear
    // scaling rule multiplies it by R.
    const double loss_same_lr = train(8, 0.02, 5);
    const double loss_scaled_lr = train(8, 0.02 * R, 5);
    log << "local batch 8 on " << R << " ranks: global batch " << 8 * R << ", " << rows / (8 * R)
        << " steps per epoch\n"
        << "  5 epochs at lr 0.02:           last epoch's loss " << loss_same_lr << "\n"
        << "  5 epochs at lr 0.02 x " << R << " ranks:  last epoch's loss " << loss_scaled_lr
        << "\n";
    // [end]

    // [fit]
    // Part 2's run through the Trainer: DataParallel broadcasts rank 0's start and
    // averages each step's loss and gradient over the ranks, as the explicit loop did.
    std::mt19937 init_fit(100 + mpi.rank());  // each rank its own start again, as in train()
    std::normal_distribution<double> start_fit(0.0, 1.0);
    for (auto& v : g.value(beta)) v = start_fit(init_fit);
    optim::SGD<double> fit_sgd({beta}, 0.05);
    train::Trainer<double> trainer(
        train::Task<double>{.x = Xi, .y = yi, .loss = mse, .output = xgrad::matmul(Xi, beta)},
        fit_sgd,
        {.metrics = {train::rmse<double>()},
         .replicas = std::make_shared<dist::DataParallel<double>>(mpi)});    // the one line
    trainer.add(std::make_shared<train::CsvLogger<double>>("history.csv"));  // rank 0 writes
    data::DataLoader<double> shards(regression, mpi.shard({.batch_size = B / R, .seed = 5}));
    const train::History& history = trainer.fit(shards, {.epochs = 20});
    const double fit_diff = xt::amax(xt::abs(g.value(beta) - beta_r))();
    log << "fit(), 20 epochs on " << R << " ranks: beta = " << g.value(beta) << ", loss "
        << history.last("loss") << ", rmse " << history.last("rmse") << "\n"
        << "max |difference| to the explicit loop = " << fit_diff << "\n";
    // [end]

    // [checks]
    const bool ok = diff < 1e-12 && fit_diff < 1e-12 && std::abs(beta_r(0) - 1) < 0.2 &&
                    std::abs(beta_r(1) - 2) < 0.2 && std::abs(beta_r(2) - 3) < 0.3 &&
                    (R == 1 || loss_scaled_lr < loss_same_lr);
    // Every rank returns the same verdict: the checks read values all ranks share.
    log << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
    return ok ? 0 : 1;
    // [end]
  });
}
