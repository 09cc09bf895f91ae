// Checks of xgrad::dist under mpirun (tests/dist/CMakeLists.txt runs them on 2 and 3 ranks):
//   dist_checks all     allreduce of known values, reductions, broadcast, and N SGD steps of
//                       an MLP on R ranks (local batch B / R) against one process with batch
//                       B, computed on every rank; parameters bit-identical across ranks
//   dist_checks throw   rank 1 throws during training while the others wait in the allreduce
//   dist_checks nan     the last rank's loss turns NaN
// Exit code 0 when every check passed; each failed check prints "CHECK FAILED".
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>
#include <xgrad/dist/dist.hpp>
#include <xgrad/xgrad.hpp>

namespace data = xgrad::data;
namespace dist = xgrad::dist;

namespace {

int failures = 0;

void check(const dist::Session& mpi, bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::cout << "rank " << mpi.rank() << ": CHECK FAILED: " << what << std::endl;
  }
}

constexpr std::size_t kN = 96, kIn = 4, kHidden = 8, kGlobalBatch = 12, kEpochs = 3;

// The regression data: every rank builds the same set (the sampler picks its shard).
data::TensorDataset<double> make_data() {
  std::mt19937 rng(7);
  std::normal_distribution<double> u(0.0, 1.0);
  xt::xarray<double> X = xt::zeros<double>({kN, kIn}), y = xt::zeros<double>({kN});
  for (std::size_t i = 0; i < kN; ++i) {
    double t = 0.3;
    for (std::size_t j = 0; j < kIn; ++j) {
      X(i, j) = u(rng);
      t += std::sin(double(j + 1) * X(i, j));
    }
    y(i) = t;
  }
  return data::TensorDataset<double>(X, y);
}

// A 4-8-1 tanh MLP with weights drawn from seed.
struct Mlp {
  xgrad::Graph<double> g;
  xgrad::Expr<double> X, y;
  std::vector<xgrad::Expr<double>> params;
  std::optional<xgrad::Function<double>> step;

  explicit Mlp(unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> u(0.0, 0.5);
    auto draw = [&](std::vector<std::size_t> shape) {
      xt::xarray<double> a = xt::zeros<double>(shape);
      for (auto& v : a) v = u(rng);
      return a;
    };
    X = g.input("X", {xgrad::open, static_cast<xgrad::Dim>(kIn)});
    y = g.input("y", {xgrad::open});
    auto W1 = g.parameter("W1", draw({kIn, kHidden}));
    auto b1 = g.parameter("b1", draw({kHidden}));
    auto W2 = g.parameter("W2", draw({kHidden}));
    auto b2 = g.parameter("b2", xt::xarray<double>(0.0));
    params = {W1, b1, W2, b2};
    auto h = xgrad::tanh(xgrad::matmul(X, W1) + b1);
    auto loss = xgrad::mse(xgrad::matmul(h, W2) + b2, y);
    std::vector<xgrad::Expr<double>> outs{loss};
    for (auto d : xgrad::grad(loss, params)) outs.push_back(d);
    step.emplace(xgrad::compile(outs));
  }
};

void check_collectives(const dist::Session& mpi) {
  const int R = mpi.size(), r = mpi.rank();
  std::vector<double> v{double(r + 1), double(10 * r), 0.5};
  mpi.sum(v);
  check(mpi, v[0] == R * (R + 1) / 2.0 && v[1] == 10.0 * R * (R - 1) / 2 && v[2] == 0.5 * R,
        "sum of (r + 1, 10 r, 0.5)");
  check(mpi, mpi.mean(double(r)) == (R - 1) / 2.0, "mean of the ranks");

  // The averager on known values: outputs (r, [r, 2r, 3r]) average to the mean rank times that.
  dist::GradientAverager<double> avg(mpi);
  std::vector<xt::xarray<double>> outs{xt::xarray<double>(double(r)),
                                       xt::xarray<double>({1.0 * r, 2.0 * r, 3.0 * r})};
  const auto& a = avg.average(outs);
  const double m = (R - 1) / 2.0;
  check(mpi, a.size() == 2 && a[0]() == m && a[1](0) == m && a[1](1) == 2 * m && a[1](2) == 3 * m,
        "GradientAverager of (r, [r, 2r, 3r])");
  check(mpi, avg.packed_size() == 4, "one packed buffer of 4 values");

  bool threw = false;
  try {
    mpi.check_same("the rank", std::size_t(r));
  } catch (const xgrad::ValueError& e) {
    threw = std::string(e.what()).find("the rank differs between ranks: from 0 to " +
                                       std::to_string(R - 1)) != std::string::npos;
  }
  check(mpi, threw == (R > 1), "check_same names the minimum and the maximum");
}

// N SGD steps on R ranks against one process with the global batch, on every rank.
void check_training(const dist::Session& mpi) {
  const auto set = make_data();
  const std::size_t R = mpi.size();

  Mlp reference(0);  // one process: the global batch, rank 0's initial weights
  {
    xgrad::optim::SGD<double> opt(reference.params, 0.1);
    data::DataLoader<double> loader(set, {.batch_size = kGlobalBatch, .seed = 5, .prefetch = 0});
    for (std::size_t e = 0; e < kEpochs; ++e)
      for (const auto& b : loader.epoch(e))
        opt.step(reference.step->run(b.feeds(reference.X, reference.y)), 1);
  }

  Mlp model(mpi.rank());  // a different start on every rank: the broadcast makes them equal
  dist::broadcast_parameters(mpi, model.params);
  xgrad::optim::SGD<double> opt(model.params, 0.1);
  dist::GradientAverager<double> avg(mpi);
  data::DataLoader<double> loader(set, mpi.shard({.batch_size = kGlobalBatch / R, .seed = 5}));
  std::size_t steps = 0;
  for (std::size_t e = 0; e < kEpochs; ++e) {
    for (const auto& b : loader.epoch(e)) {
      opt.step(avg.average(model.step->run(b.feeds(model.X, model.y))), 1);
      ++steps;
    }
  }
  check(mpi, steps == kEpochs * kN / kGlobalBatch, "steps per rank");

  double max_diff = 0;
  for (std::size_t i = 0; i < model.params.size(); ++i) {
    const auto& a = model.g.value(model.params[i]);
    const auto& b = reference.g.value(reference.params[i]);
    max_diff = std::max(max_diff, double(xt::amax(xt::abs(a - b))()));
  }
  double worst = max_diff;
  MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  mpi.log() << "max |parameter difference| after " << steps << " SGD steps, " << R
            << " ranks (local batch " << kGlobalBatch / R << ") vs 1 process (batch "
            << kGlobalBatch << "): " << worst << "\n";
  check(mpi, worst < 1e-13, "R ranks equal one process with the global batch to rounding");

  // Bit-identical across ranks: every rank's bytes against rank 0's.
  bool same = true;
  for (const auto& p : model.params) {
    auto v = model.g.value(p);
    std::vector<double> root(v.begin(), v.end());
    MPI_Bcast(root.data(), static_cast<int>(root.size()), MPI_DOUBLE, 0, MPI_COMM_WORLD);
    same = same && std::memcmp(root.data(), v.data(), root.size() * sizeof(double)) == 0;
  }
  int all_same = same;
  MPI_Allreduce(MPI_IN_PLACE, &all_same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  mpi.log() << "parameters bit-identical on all " << R << " ranks: " << (all_same ? "yes" : "no")
            << "\n";
  check(mpi, all_same == 1, "parameters bit-identical across ranks");
}

// Training in which one rank fails at step 3 (an exception, or a NaN loss) while the
// others go on into the next allreduce.
void fail_in_training(const dist::Session& mpi, bool nan) {
  const auto set = make_data();
  Mlp model(0);
  xgrad::optim::SGD<double> opt(model.params, 0.1);
  dist::GradientAverager<double> avg(mpi);
  data::DataLoader<double> loader(set, mpi.shard({.batch_size = 4, .seed = 5}));
  const int bad = nan ? mpi.size() - 1 : 1;
  std::size_t s = 0;
  for (std::size_t e = 0; e < 100; ++e) {
    for (const auto& b : loader.epoch(e)) {
      xt::xarray<double> y = b.targets;
      if (++s == 3 && mpi.rank() == bad) {
        if (!nan) throw std::runtime_error("failed on purpose at step 3");
        y(0) = std::nan("");
      }
      opt.step(avg.average(model.step->run({{model.X, b.features}, {model.y, y}})), 1);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "all";
  int rc = 0;
  bool root = false;
  {
    dist::Session mpi(argc, argv);
    root = mpi.is_root();
    rc = mpi.run([&] {
      if (mode == "throw" || mode == "nan") {
        fail_in_training(mpi, mode == "nan");
        mpi.log() << "completed normally\n";
        return 0;
      }
      check_collectives(mpi);
      check_training(mpi);
      return mpi.sum(double(failures)) == 0 ? 0 : 1;
    });
  }
  // After MPI_Finalize, so that nothing of the job follows it; the exit code decides.
  if (root) std::cout << (rc == 0 ? "all checks passed" : "SOME CHECKS FAILED") << std::endl;
  std::fflush(stdout);
  return rc;
}
