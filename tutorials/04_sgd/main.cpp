// Tutorial 4: stochastic gradient descent on minibatches.
//
// The lecture note's section 4, measured: (1) the DataLoader's minibatches, disjoint within
// an epoch and covering the data; (2) a non-convex objective where full-batch descent stops
// in a local minimum from some starts, and how often minibatch SGD ends in the global one
// instead, over many seeds; (3) SGD oscillating around the minimum with a constant rate, and
// settling with learning-rate decay (both loss curves plotted); (4) training from a .npy
// file larger than the memory the process is allowed to use, with the peak memory printed.
// README.md walks through this file step by step.
//
// Usage: 04_sgd [--starts N] [--rows N]
//   --starts N  starts compared in part 2 (default 200)
//   --rows N    rows of the .npy file in part 4 (default 4194304: 256 MiB)
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <new>
#include <random>
#include <set>
#include <string>
#include <vector>
#include <xgrad/io.hpp>  // prints arrays with operator<<
#include <xgrad/xgrad.hpp>

#include "cli.hpp"
#include "figures.hpp"

namespace data = xgrad::data;
namespace optim = xgrad::optim;

// [memory]
// The process's memory, from /proc/self/status: "VmData" (the heap and other private
// writable memory, what RLIMIT_DATA limits) or "VmHWM" (the peak resident memory), in MiB.
double memory_mib(const std::string& key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024;
  }
  return 0;
}
// [end]

int stream(const std::string& path);  // part 4's second half, defined after main()

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--stream") return stream(argv[2]);
  std::size_t starts = 200, big_rows = std::size_t{1} << 22;
  if (!cli::parse(
          argc, argv,
          {{"--starts", "N", [&](const char* v) { starts = std::max(1, std::atoi(v)); }},
           {"--rows", "N", [&](const char* v) { big_rows = std::max(1L, std::atol(v)); }}})) {
    return 2;
  }
  bool ok = true;
  const auto check = cli::checker(ok);
  std::cout << std::setprecision(4);

  // [batches]
  {
    data::TensorDataset<double> tiny(xt::arange<double>(10.0), xt::zeros<double>({10}));
    data::DataLoader<double> loader(tiny, {.batch_size = 4, .shuffle = true, .seed = 3});
    for (std::size_t epoch = 0; epoch < 2; ++epoch) {
      std::cout << "epoch " << epoch << ":";
      for (const auto& batch : loader.epoch(epoch)) std::cout << " " << batch.features;
      std::cout << "\n";
    }
  }
  // [end]

  // [cover]
  {
    const std::size_t n = 1000, batch_size = 64;
    data::TensorDataset<double> set(xt::arange<double>(double(n)), xt::zeros<double>({n}));
    data::DataLoader<double> loader(set, {.batch_size = batch_size, .shuffle = true, .seed = 11});
    bool all_good = true;
    for (std::size_t epoch = 0; epoch < 5; ++epoch) {
      std::set<std::size_t> seen;
      std::size_t visits = 0, batches = 0;
      for (const auto& batch : loader.epoch(epoch)) {
        seen.insert(batch.indices.begin(), batch.indices.end());
        visits += batch.size();
        ++batches;
      }
      all_good = all_good && seen.size() == n && visits == n;
      std::cout << "epoch " << epoch << ": " << batches << " batches, " << visits
                << " examples visited, " << seen.size() << " distinct\n";
    }
    check(all_good, "each epoch's batches are disjoint and cover the data");
  }
  // [end]

  // [landscape]
  // Data a_i (n = 1000, mean 0, standard deviation 10) and one parameter w with the loss
  //   L(w) = mean_i (w - a_i)^2 / 2 + c (1 - cos(k w)):
  // a bowl around the data's mean with ripples: local minima about every 2 pi / k.
  const double c = 1.0, k = 3.0;
  const std::size_t n = 1000;
  std::mt19937 data_rng(5);
  std::normal_distribution<double> spread(0.0, 10.0);
  xt::xarray<double> a_values = xt::zeros<double>({n});
  for (auto& v : a_values) v = spread(data_rng);
  a_values -= xt::mean(a_values)();  // mean exactly 0: the global minimum is w = 0
  data::TensorDataset<double> points(a_values, xt::zeros<double>({n}));

  xgrad::Graph<double> g;
  auto a = g.input("a", {xgrad::open});
  auto w = g.parameter("w", xt::xarray<double>(0.0));
  auto loss = xgrad::mean(xgrad::square(w - a)) / 2.0 + c * (1.0 - xgrad::cos(k * w));
  auto step = xgrad::compile({loss, xgrad::grad(loss, {w})[0]});
  std::cout << "\nL(w) = " << xgrad::to_string(loss) << "\n";
  // [end]

  // [gd-vs-sgd]
  // 20 epochs with the rate 0.1 / (1 + 0.2 epoch). Full-batch descent gets 100 steps per
  // epoch, as many as SGD with batches of 10.
  const std::size_t epochs = 20;
  auto descend = [&](double w0, std::size_t batch_size, std::uint64_t seed) {
    g.value(w)() = w0;
    optim::SGD<double> opt({w}, optim::by_epoch(optim::inverse_time(0.1, 0.2)));
    data::DataLoader<double> loader(
        points, {.batch_size = batch_size, .shuffle = true, .seed = seed, .prefetch = 0});
    for (std::size_t epoch = 0; epoch < epochs; ++epoch) {
      opt.set_epoch(epoch);
      if (batch_size == n) {  // full batch: the exact gradient, every step the same data
        for (std::size_t s = 0; s < 100; ++s) opt.step(step.run({{a, a_values}}), 1);
      } else {
        for (const auto& batch : loader.epoch(epoch)) opt.step(step.run({{a, batch.features}}), 1);
      }
    }
    return g.value(w)();
  };
  const std::vector<std::size_t> batch_sizes{n, 50, 10};
  std::vector<std::size_t> global(batch_sizes.size(), 0);
  std::vector<std::vector<double>> ends(batch_sizes.size());
  std::vector<double> starts_axis;
  std::mt19937 start_rng(17);
  for (std::size_t s = 0; s < starts; ++s) {
    const double w0 = -6.0 + 12.0 * (start_rng() / 4294967296.0);  // uniform in [-6, 6)
    starts_axis.push_back(w0);
    for (std::size_t b = 0; b < batch_sizes.size(); ++b) {
      ends[b].push_back(descend(w0, batch_sizes[b], s));
      global[b] += std::abs(ends[b].back()) < 0.5;  // in the global minimum's basin
    }
  }
  std::cout << "ended in the global minimum (|w| < 0.5), from " << starts
            << " starts in [-6, 6]:\n";
  for (std::size_t b = 0; b < batch_sizes.size(); ++b) {
    std::cout << "  "
              << (batch_sizes[b] == n ? "full batch (1000)"
                                      : "minibatches of " + std::to_string(batch_sizes[b]))
              << ": " << global[b] << " (" << 100.0 * global[b] / starts << "%)\n";
  }
  // [end]

  // [oscillation]
  // Linear regression with noise: y = 1 x1 + 2 x2 + 3 + noise, 256 examples.
  const std::size_t rows = 256;
  std::mt19937 reg_rng(11);
  std::uniform_real_distribution<double> uniform(0.0, 3.0);
  std::normal_distribution<double> noise(0.0, 0.5);
  xt::xarray<double> X = xt::ones<double>({rows, std::size_t{3}}), y = xt::zeros<double>({rows});
  for (std::size_t i = 0; i < rows; ++i) {
    X(i, 0) = uniform(reg_rng);
    X(i, 1) = uniform(reg_rng);
    y(i) = X(i, 0) + 2 * X(i, 1) + 3 + noise(reg_rng);
  }
  data::TensorDataset<double> regression(X, y);
  xgrad::Graph<double> rg;
  auto Xi = rg.input("X", {xgrad::open, 3});
  auto yi = rg.input("y", {xgrad::open});
  auto beta = rg.parameter("beta", xt::zeros<double>({3}));
  auto mse = xgrad::mse(xgrad::matmul(Xi, beta), yi);
  auto mse_step = xgrad::compile({mse, xgrad::grad(mse, {beta})[0]});
  auto mse_full = xgrad::compile({mse});
  auto train = [&](optim::Schedule schedule, std::vector<double>& curve) {
    rg.value(beta) = xt::zeros<double>({3});
    optim::SGD<double> sgd({beta}, std::move(schedule));
    data::DataLoader<double> loader(regression, {.batch_size = 8, .shuffle = true, .seed = 5});
    for (std::size_t epoch = 0; epoch < 100; ++epoch) {
      sgd.set_epoch(epoch);
      for (const auto& batch : loader.epoch(epoch)) {
        sgd.step(mse_step.run(batch.feeds(Xi, yi)), 1);
        curve.push_back(mse_full.run({{Xi, X}, {yi, y}})[0]());  // loss on all the data
      }
    }
  };
  std::vector<double> constant_curve, decayed_curve;
  train(0.05, constant_curve);
  train(optim::by_epoch(optim::inverse_time(0.05, 0.1)), decayed_curve);
  auto tail_stats = [](const std::vector<double>& curve) {  // over the last 10 epochs
    const std::vector<double> tail(curve.end() - 320, curve.end());
    const auto [lo, hi] = std::minmax_element(tail.begin(), tail.end());
    return std::pair{*hi - *lo, tail.back()};
  };
  const auto [constant_spread, constant_last] = tail_stats(constant_curve);
  const auto [decayed_spread, decayed_last] = tail_stats(decayed_curve);
  std::cout << "\nfull-data loss of minibatch SGD over its last 10 epochs (batch 8):\n"
            << "  constant rate 0.05:             final " << constant_last << ", range "
            << constant_spread << "\n"
            << "  0.05 / (1 + 0.1 epoch) (decay): final " << decayed_last << ", range "
            << decayed_spread << "\n";
  // [end]

  // [big-file]
  const std::string path = "big.npy";
  const std::size_t columns = 8;  // 7 features and the target
  {
    data::NpyWriter writer(path, data::Stored::float64, {big_rows, columns});
    std::mt19937 file_rng(3);
    std::normal_distribution<double> gauss(0.0, 1.0);
    std::vector<double> chunk;
    for (std::size_t r = 0; r < big_rows; ++r) {
      double target = 0.5;  // y = 0.5 + sum_j (j + 1) x_j / 10 + noise
      for (std::size_t j = 0; j + 1 < columns; ++j) {
        const double x = gauss(file_rng);
        chunk.push_back(x);
        target += double(j + 1) * x / 10;
      }
      chunk.push_back(target + 0.1 * gauss(file_rng));
      if (chunk.size() >= (std::size_t{1} << 16) || r + 1 == big_rows) {
        writer.write(std::span<const double>(chunk));  // written in pieces
        chunk.clear();
      }
    }
    writer.commit();  // flushed and renamed into place: readers never see half a file
  }
  std::cout << "\nwrote " << path << ": " << big_rows << " rows, "
            << double(std::filesystem::file_size(path)) / (1 << 20) << " MiB\n";
  // [end]

  // [run-child]
  std::cout << std::flush;
  // One OpenBLAS thread: each extra one reserves a 128 MiB buffer when the program starts.
  const std::string child = "OPENBLAS_NUM_THREADS=1 " + std::string(argv[0]) + " --stream " + path;
  const int child_status = std::system(child.c_str());
  std::filesystem::remove(path);
  check(child_status == 0, "training from the file in a memory-limited process");
  // [end]

  // [plots]
  std::vector<double> step_axis(constant_curve.size());
  for (std::size_t i = 0; i < step_axis.size(); ++i) step_axis[i] = double(i + 1) / 32;  // epochs
  figures::Plot curves{
      .name = "sgd_loss",
      .settings = {"set xlabel 'epoch'", "set ylabel 'loss on all the data (mse)'",
                   "set yrange [0.24:0.5]", "set title 'Minibatch SGD: constant rate vs decay'"},
      .series = {{"constant rate 0.05", step_axis, constant_curve},
                 {"0.05 / (1 + 0.1 epoch)", step_axis, decayed_curve}}};
  figures::Plot endings{
      .name = "local_minima",
      .settings = {"set xlabel 'start w0'", "set ylabel 'final w'", "set key top left",
                   "set title 'Where descent ends (global minimum: w = 0)'"}};
  const std::vector<std::string> styles{"points pt 7 ps 0.7", "points pt 6 ps 1.0",
                                        "points pt 2 ps 0.8"};
  for (std::size_t b = 0; b < batch_sizes.size(); ++b) {
    endings.series.push_back(
        {batch_sizes[b] == n ? "full batch" : "batches of " + std::to_string(batch_sizes[b]),
         starts_axis, ends[b], styles[b]});
  }
  check(figures::draw(curves) && figures::draw(endings), "plots drawn");
  // [end]

  // [checks]
  check(global[0] > 0 && global[0] < starts, "full-batch descent gets stuck from some starts");
  check(global[2] > global[0], "SGD with batches of 10 ends in the global minimum more often");
  check(decayed_spread < constant_spread / 10, "decay calms the oscillation 10 times");
  check(decayed_last < constant_last, "decay ends lower");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}

// [limit]
// Part 4 in a fresh process: limit its memory, show that the whole file does not fit, then
// train on it one minibatch at a time.
int stream(const std::string& path) {
  const double file_mib = double(std::filesystem::file_size(path)) / (1 << 20);
  const double allowed_mib = memory_mib("VmData") + 48;  // what it holds now, plus 48 MiB
  rlimit limit{};
  limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(allowed_mib * (1 << 20));
  setrlimit(RLIMIT_DATA, &limit);  // from now on, allocations past it fail
  std::cout << "memory this process may use: " << allowed_mib << " MiB, the file: " << file_mib
            << " MiB\n";
  try {
    const auto whole = data::load_npy<double>(path);  // what full-batch descent would need
    std::cout << "loaded the whole file?! (" << whole.size() << " numbers)\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cout << "full batch: loading the whole file fails (std::bad_alloc)\n";
  }
  // [end]

  // [stream]
  data::NpyDataset<double> big(path, {0, 1, 2, 3, 4, 5, 6}, {7});  // feature, target columns
  data::DataLoader<double> loader(big, {.batch_size = 4096, .shuffle = true, .seed = 1});
  xgrad::Graph<double> g;
  auto X = g.input("X", {xgrad::open, 7});
  auto y = g.input("y", {xgrad::open});
  auto w = g.parameter("w", xt::zeros<double>({7}));
  auto b = g.parameter("b", xt::xarray<double>(0.0));
  // sum(X * w, axis 1) is X @ w without BLAS: OpenBLAS reserves a 128 MiB work buffer per
  // thread at its first call, which would count against the limit (it is mostly never
  // touched, so it would not show in the resident memory, but the limit counts it).
  auto loss = xgrad::mse(xgrad::sum(X * w, {1}) + b, y);
  auto grads = xgrad::grad(loss, {w, b});
  auto step = xgrad::compile({loss, grads[0], grads[1]});
  optim::Adam<double> adam({w, b}, 0.05);
  double last_loss = 0;
  for (const auto& batch : loader.epoch(0)) {  // one pass over the file
    const auto& out = step.run(batch.feeds(X, y));
    adam.step(out, 1);
    last_loss = out[0]();
  }
  const double peak_mib = memory_mib("VmHWM");
  std::cout << "SGD, one epoch of " << loader.num_batches() << " batches of 4096 rows: last loss "
            << last_loss << "\n  w = " << g.value(w) << ", b = " << g.value(b)()
            << "\npeak memory (resident): " << peak_mib << " MiB for a " << file_mib
            << " MiB file\n";
  const xt::xarray<double> truth = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7};
  const bool ok = xt::amax(xt::abs(g.value(w) - truth))() < 0.01 &&
                  std::abs(g.value(b)() - 0.5) < 0.01 && peak_mib < allowed_mib &&
                  file_mib > allowed_mib;
  if (!ok) std::cout << "CHECK FAILED: streamed SGD within the memory limit\n";
  return ok ? 0 : 1;
  // [end]
}
