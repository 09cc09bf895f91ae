// Workload 1: the seed's linear regression. X 4x3 (x1, x2, a column of ones), y = X @ [1, 2, 3],
// loss = sum((y - X beta)^2) / 2, 5000 gradient-descent steps from beta = [10.1, 15.1, -6.5]
// with lr 0.01, float64. Overhead-dominated: what is timed is the framework, not the math.
//
// Variants (one run = 5000 steps from the initial beta):
//   xgrad + GradientDescent  compile once, then f.run(feeds) and optim::GradientDescent::step
//   xgrad + hand update      f.run(feeds), then beta -= lr * grad by hand
//   LibTorch                 eager ops + backward() + torch::optim::SGD (zero_grad, step)
//   hand-written loop        the same step in plain C++ (the limit)
// Targets (issue 14): LibTorch / xgrad >= 400, xgrad / hand-written loop <= 4.
#include <algorithm>
#include <cmath>
#include <xgrad/xgrad.hpp>

#include "harness.hpp"

namespace {

constexpr int kSteps = 5000;
constexpr double kLr = 0.01;
const double kBeta0[3] = {10.1, 15.1, -6.5};
const double kX[4][3] = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {2, 3, 1}};
const double kY[4] = {6, 8, 9, 11};

void check(const char* who, const double* b) {
  double err = std::max({std::abs(b[0] - 1), std::abs(b[1] - 2), std::abs(b[2] - 3)});
  if (!(err < 1e-3)) {
    std::fprintf(stderr, "%s: beta did not converge (error %g)\n", who, err);
    std::exit(1);
  }
}

}  // namespace

int main() {
  bench::setup_threads("w1_seed_linreg");
  std::vector<bench::Variant> vs;

  // ---- xgrad
  xt::xarray<double> X = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {2, 3, 1}};
  xt::xarray<double> y = {6, 8, 9, 11};
  xgrad::Graph<double> g;
  auto Xi = g.input("X", {xgrad::open, 3});
  auto yi = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::xarray<double>{kBeta0[0], kBeta0[1], kBeta0[2]});
  auto loss = xgrad::sum(xgrad::square(yi - xgrad::matmul(Xi, beta))) / 2.0;
  auto f = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});
  auto reset = [&] {
    auto& b = g.value(beta);
    for (int j = 0; j < 3; ++j) b(j) = kBeta0[j];
  };

  xgrad::optim::GradientDescent<double> gd({beta}, kLr);
  auto xgrad_gd = [&](int steps) {
    for (int i = 0; i < steps; ++i) gd.step(f.run({{Xi, X}, {yi, y}}), 1);
  };
  vs.push_back({"xgrad + optim::GradientDescent", "xgrad", [&] {
                  reset();
                  xgrad_gd(kSteps);
                  check("xgrad + GradientDescent", g.value(beta).data());
                }});
  vs.back().steps = xgrad_gd;
  auto xgrad_hand = [&](int steps) {
    auto& b = g.value(beta);
    double* pb = b.data();
    for (int i = 0; i < steps; ++i) {
      const double* gr = f.run({{Xi, X}, {yi, y}})[1].data();
      for (int j = 0; j < 3; ++j) pb[j] -= kLr * gr[j];
    }
  };
  vs.push_back({"xgrad + hand update", "xgrad", [&] {
                  reset();
                  xgrad_hand(kSteps);
                  check("xgrad + hand update", g.value(beta).data());
                }});
  vs.back().steps = xgrad_hand;

  // ---- LibTorch
#ifdef XGRAD_BENCH_HAVE_TORCH
  auto tX = torch::from_blob(const_cast<double*>(&kX[0][0]), {4, 3}, torch::kFloat64).clone();
  auto ty = torch::from_blob(const_cast<double*>(kY), {4}, torch::kFloat64).clone();
  auto tb = torch::zeros({3}, torch::dtype(torch::kFloat64).requires_grad(true));
  torch::optim::SGD sgd({tb}, torch::optim::SGDOptions(kLr));
  auto torch_steps = [&](int steps) {
    for (int i = 0; i < steps; ++i) {
      sgd.zero_grad();
      auto l = (ty - tX.mv(tb)).square().sum() / 2;
      l.backward();
      sgd.step();
    }
  };
  vs.push_back({"LibTorch (eager + backward + optim::SGD)", "LibTorch", [&] {
                  {
                    torch::NoGradGuard ng;
                    for (int j = 0; j < 3; ++j) tb[j] = kBeta0[j];
                  }
                  torch_steps(kSteps);
                  check("LibTorch", tb.data_ptr<double>());
                }});
  vs.back().steps = torch_steps;
#endif

  // ---- the limit: the step by hand
  double hb[3];
  vs.push_back({"hand-written loop", "limit", [&] {
                  for (int j = 0; j < 3; ++j) hb[j] = kBeta0[j];
                  for (int it = 0; it < kSteps; ++it) {
                    double gr[3] = {0, 0, 0}, l = 0;
                    for (int i = 0; i < 4; ++i) {
                      double r = kY[i] - (kX[i][0] * hb[0] + kX[i][1] * hb[1] + kX[i][2] * hb[2]);
                      l += 0.5 * r * r;
                      for (int j = 0; j < 3; ++j) gr[j] -= kX[i][j] * r;
                    }
                    bench::keep(l);
                    for (int j = 0; j < 3; ++j) hb[j] -= kLr * gr[j];
                  }
                  bench::keep(hb);
                  check("hand", hb);
                }});

  bench::compare(vs, bench::reps(21));
  // Steady-state allocations, counted over 1000 steps after the runs above planned them.
  bench::count_step_allocations(vs, 1000);
  bench::report("1. seed linreg 4x3, 5000 GD steps, f64", vs, kSteps, "step");

  auto limit = std::find_if(vs.begin(), vs.end(), [](const auto& v) { return v.kind == "limit"; });
  for (const auto& v : vs) {
    if (limit == vs.end()) break;
    const double hand = limit->median();
    if (v.kind == "xgrad")
      bench::note("%s / hand-written loop: %.1fx (target <= 4x)", v.name.c_str(),
                  v.median() / hand);
  }
  std::printf("ops per xgrad run: %zu\n", f.num_steps());
  return 0;
}
