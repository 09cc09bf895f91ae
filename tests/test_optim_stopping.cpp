// Stopping rules: the seed's gradient test (|f'| in 1-D, the norm in n-D) with the exact
// iteration count of the plain loop, step limits, loss plateaus, wall-clock budgets,
// composition, results and reset.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "seed_problems.hpp"
#include "test_util.hpp"

namespace {

namespace opt = xgrad::optim;
using xgrad::Graph;

using xgrad_test::contains;

// The note's first example: f(x) = x^2 + 2x + 3 from x0 ~ U[-2, 2], lr 1e-2, stop once
// |f'(x)| <= 1e-5. The count must equal the plain loop's.
TEST(StopSeed, OneVariableStopsOnAbsoluteDerivative) {
  std::mt19937 rng(7);
  const double x0 = std::uniform_real_distribution<double>(-2.0, 2.0)(rng);
  // The plain loop of the note.
  double xh = x0;
  std::size_t n_hand = 0;
  while (std::abs(2 * xh + 2) > 1e-5) {
    xh -= 1e-2 * (2 * xh + 2);
    ++n_hand;
  }

  Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>(x0));
  auto f = xgrad::pow(x, 2.0) + 2.0 * x + 3.0;
  auto fn = xgrad::compile({f, xgrad::grad(f, {x})[0]});
  opt::GradientDescent<double> o({x}, 1e-2);
  auto stop = opt::grad_norm_below(1e-5) | opt::max_steps(1000000);
  for (;;) {
    const auto& out = fn.run();
    if (stop(o.steps(), out[0](), opt::global_norm(out, 1))) break;
    o.step(out, 1);
  }
  const auto& r = stop.result();
  EXPECT_EQ(r.reason, opt::StopReason::grad_norm);
  EXPECT_EQ(r.steps, n_hand);
  EXPECT_EQ(o.steps(), n_hand);
  EXPECT_LE(r.grad_norm, 1e-5);
  EXPECT_NEAR(g.value(x)(), -1.0, 1e-5);
  EXPECT_NEAR(r.loss, 2.0, 1e-9);
  EXPECT_DOUBLE_EQ(g.value(x)(), xh);
  EXPECT_TRUE(contains(r.message, "gradient norm")) << r.message;
}

// The note's second example: f(x, y) = x^2 + 2y^2, the test uses the gradient's norm.
TEST(StopSeed, TwoVariablesStopOnTheGradientNorm) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  const double x0 = u(rng), y0 = u(rng);
  double xh = x0, yh = y0;
  std::size_t n_hand = 0;
  while (std::hypot(2 * xh, 4 * yh) > 1e-5) {
    double gx = 2 * xh, gy = 4 * yh;
    xh -= 1e-2 * gx;
    yh -= 1e-2 * gy;
    ++n_hand;
  }

  xgrad_test::SeedBowl b(x0, y0);
  opt::GradientDescent<double> o({b.x, b.y}, 1e-2);
  auto stop = opt::grad_norm_below(1e-5);
  for (;;) {
    const auto& out = b.fn.run();
    if (stop(o.steps(), out[0](), opt::global_norm(out, 1))) break;
    o.step(out, 1);
  }
  EXPECT_EQ(stop.result().reason, opt::StopReason::grad_norm);
  EXPECT_EQ(stop.result().steps, n_hand);
  EXPECT_NEAR(b.g.value(b.x)(), 0.0, 1e-5);
  EXPECT_NEAR(b.g.value(b.y)(), 0.0, 1e-5);
}

TEST(StopSeed, LinearRegressionWithinAStatedNumberOfSteps) {
  xgrad_test::SeedRegression r;
  opt::GradientDescent<double> o({r.beta}, 0.01);
  auto stop = opt::max_steps(20000) | opt::grad_norm_below(1e-8);
  for (;;) {
    const auto& out = r.run();
    if (stop(o.steps(), out[0](), opt::global_norm(out, 1))) break;
    o.step(out, 1);
  }
  EXPECT_EQ(stop.result().reason, opt::StopReason::grad_norm);
  EXPECT_LT(stop.result().steps, 7000u);  // 6786 in practice
  // The problem is ill-conditioned: a gradient norm of 1e-8 leaves errors near 3e-8.
  EXPECT_NEAR(r.g.value(r.beta)(0), 1.0, 1e-7);
  EXPECT_NEAR(r.g.value(r.beta)(1), 2.0, 1e-7);
  EXPECT_NEAR(r.g.value(r.beta)(2), 3.0, 1e-7);
}

TEST(Stop, MaxSteps) {
  auto stop = opt::max_steps(5);
  std::size_t t = 0;
  while (!stop(t)) ++t;
  EXPECT_EQ(t, 5u);
  EXPECT_EQ(stop.result().reason, opt::StopReason::max_steps);
  EXPECT_EQ(stop.result().steps, 5u);
  EXPECT_EQ(stop.result().message, "reached the maximum of 5 steps");
  EXPECT_TRUE(stop(6));  // stays stopped
}

TEST(Stop, NeverWithoutRules) {
  opt::Stopping none;
  EXPECT_EQ(none.size(), 0u);
  EXPECT_FALSE(none(1000000, 0.0, 0.0));
  EXPECT_FALSE(none.result());
}

TEST(Stop, GradNormIgnoresMissingNorms) {
  auto stop = opt::grad_norm_below(1e-3);
  EXPECT_FALSE(stop(0, 1.0));  // no norm given (NaN)
  EXPECT_FALSE(stop(1, 1.0, 1e-2));
  EXPECT_TRUE(stop(2, 1.0, 1e-3));  // at most eps
  EXPECT_EQ(stop.result().steps, 2u);
  EXPECT_DOUBLE_EQ(stop.result().grad_norm, 1e-3);
}

TEST(Stop, LossChangeOverAWindow) {
  auto stop = opt::loss_change_below(0.11, 3);
  const std::vector<double> losses = {10, 5, 3, std::nan(""), 2.95, 2.9, 2.89};
  std::size_t t = 0;
  for (; t < losses.size(); ++t) {
    if (stop(t, losses[t])) break;
  }
  // Window [3, 2.95, 2.9] (the NaN is skipped) spans 0.1 <= 0.11 at the check of step 5.
  EXPECT_EQ(t, 5u);
  EXPECT_EQ(stop.result().reason, opt::StopReason::loss_plateau);
  EXPECT_EQ(stop.result().steps, 5u);
  EXPECT_DOUBLE_EQ(stop.result().loss, 2.9);
  EXPECT_TRUE(contains(stop.result().message, "last 3 checks")) << stop.result().message;
}

TEST(Stop, TimeBudget) {
  auto zero = opt::time_budget(std::chrono::seconds(0));
  EXPECT_TRUE(zero(0));
  EXPECT_EQ(zero.result().reason, opt::StopReason::time_budget);

  auto stop = opt::time_budget(std::chrono::milliseconds(30)) | opt::max_steps(100000);
  auto start = std::chrono::steady_clock::now();
  std::size_t t = 0;
  while (!stop(t)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    ++t;
  }
  auto used = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(stop.result().reason, opt::StopReason::time_budget);
  EXPECT_GE(used, std::chrono::milliseconds(30));
  EXPECT_GE(t, 2u);
  EXPECT_LE(t, 15u);
}

TEST(Stop, FirstRuleThatHoldsIsReported) {
  auto a = opt::max_steps(3) | opt::grad_norm_below(1.0);
  EXPECT_TRUE(a(3, 0.0, 0.5));
  EXPECT_EQ(a.result().reason, opt::StopReason::max_steps);
  auto b = opt::any({opt::grad_norm_below(1.0), opt::max_steps(3)});
  EXPECT_EQ(b.size(), 2u);
  EXPECT_TRUE(b(3, 0.0, 0.5));
  EXPECT_EQ(b.result().reason, opt::StopReason::grad_norm);
  EXPECT_STREQ(opt::reason_name(b.result().reason), "grad_norm");
}

TEST(Stop, UserRule) {
  auto stop = opt::stop_if("loss below 1", [](const opt::Progress& p) { return p.loss < 1; });
  EXPECT_FALSE(stop(0, 3.0));
  EXPECT_TRUE(stop(1, 0.5));
  EXPECT_EQ(stop.result().reason, opt::StopReason::custom);
  EXPECT_EQ(stop.result().message, "loss below 1 after 1 steps");
}

TEST(Stop, ResetAndIndependentCopies) {
  auto stop = opt::loss_change_below(0.0, 2);
  EXPECT_FALSE(stop(0, 1.0));
  auto copy = stop;  // carries the window [1.0]
  EXPECT_TRUE(stop(1, 1.0));
  EXPECT_FALSE(copy(1, 2.0));  // its own window: [1.0, 2.0]
  stop.reset();
  EXPECT_FALSE(stop.result());
  EXPECT_FALSE(stop(2, 1.0));  // window cleared: one loss only
  EXPECT_TRUE(stop(3, 1.0));
  EXPECT_EQ(stop.result().steps, 3u);
}

TEST(Stop, BadArguments) {
  EXPECT_THROW(opt::grad_norm_below(-1), xgrad::ValueError);
  EXPECT_THROW(opt::grad_norm_below(std::nan("")), xgrad::ValueError);
  EXPECT_THROW(opt::loss_change_below(0.1, 1), xgrad::ValueError);
  EXPECT_THROW(opt::loss_change_below(-0.1, 5), xgrad::ValueError);
  EXPECT_THROW(opt::time_budget(std::chrono::seconds(-1)), xgrad::ValueError);
  EXPECT_THROW(opt::stop_if("x", nullptr), xgrad::ValueError);
}

TEST(Stop, GlobalNorm) {
  std::vector<xt::xarray<double>> v = {xt::xarray<double>(99.0), xt::xarray<double>{3, 0},
                                       xt::xarray<double>(-4.0)};
  EXPECT_DOUBLE_EQ(opt::global_norm(v, 1), 5.0);
  EXPECT_DOUBLE_EQ(opt::global_norm(v, 3), 0.0);
  EXPECT_DOUBLE_EQ(opt::global_norm(v), std::sqrt(99.0 * 99.0 + 25.0));
  std::vector<xt::xarray<float>> f = {xt::xarray<float>{-2.0f}};
  EXPECT_DOUBLE_EQ(opt::global_norm(std::span<const xt::xarray<float>>(f)), 2.0);
}

// The partial sums cover every element whatever the length's remainder by 4, in float
// (accumulated in double) and double.
TEST(Stop, SumOfSquaresEveryLength) {
  for (std::size_t n = 0; n < 19; ++n) {
    std::vector<double> d(n);
    std::vector<float> f(n);
    double want = 0;
    for (std::size_t i = 0; i < n; ++i) {
      d[i] = static_cast<double>(i + 1) * (i % 2 ? -0.5 : 1.0);
      f[i] = static_cast<float>(d[i]);  // exact: halves of small integers
      want += d[i] * d[i];
    }
    EXPECT_DOUBLE_EQ(opt::sum_of_squares(d.data(), n), want) << "n = " << n;
    EXPECT_DOUBLE_EQ(opt::sum_of_squares(f.data(), n), want) << "n = " << n;
  }
}

}  // namespace
