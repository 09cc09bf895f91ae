// Optimizers: exact first three steps of every built-in update rule against plain
// arithmetic written from the published rule, the shared options, convergence on the
// seed's problems and Rosenbrock, bad input, a user-written optimizer, state round trips
// and the minibatch SGD demonstration of the lecture note (section 4).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "seed_problems.hpp"
#include "test_util.hpp"

namespace {

namespace opt = xgrad::optim;
using xgrad::Expr;
using xgrad::Graph;
using xgrad_test::SeedBowl;
using xgrad_test::SeedRegression;

using xgrad_test::contains;

/// The message of the exception E thrown by f (fails the test when none is thrown).
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return {};
}

// ---------------------------------------------------------------------------------------
// The small problem for exact steps: x (shape (2)) = [1.5, -0.5], y (0-d) = 0.8,
// loss = sum(x^2) + 2 y^2, so the gradients are 2x and 4y. Flattened, the three
// coordinates are p = [x0, x1, y] with gradient c * p, c = [2, 2, 4].
struct Bowl {
  Graph<double> g;
  Expr<double> x = g.parameter("x", xt::xarray<double>{1.5, -0.5});
  Expr<double> y = g.parameter("y", xt::xarray<double>(0.8));
  Expr<double> loss = xgrad::sum(xgrad::square(x)) + 2.0 * xgrad::square(y);
  std::vector<Expr<double>> grads = xgrad::grad(loss, {x, y});
  xgrad::Function<double> f = xgrad::compile({loss, grads[0], grads[1]});

  std::array<double, 3> values() { return {g.value(x)(0), g.value(x)(1), g.value(y)()}; }
};

/// One coordinate's update by hand: (coordinate, parameter, gradient, step t from 1).
using HandRule = std::function<void(int i, double& p, double g, int t)>;

/// Three steps of a rule on the bowl, by plain arithmetic: the values after each step.
std::array<std::array<double, 3>, 3> by_hand(const HandRule& rule) {
  std::array<double, 3> p = {1.5, -0.5, 0.8};
  const std::array<double, 3> c = {2, 2, 4};
  std::array<std::array<double, 3>, 3> out{};
  for (int t = 1; t <= 3; ++t) {
    std::array<double, 3> g{};
    for (int i = 0; i < 3; ++i) g[i] = c[i] * p[i];  // all gradients at the old point
    for (int i = 0; i < 3; ++i) rule(i, p[i], g[i], t);
    out[t - 1] = p;
  }
  return out;
}

/// Runs three steps of o on b and compares with the hand values.
void expect_three_steps(Bowl& b, opt::Optimizer<double>& o, const HandRule& rule) {
  auto want = by_hand(rule);
  for (int t = 0; t < 3; ++t) {
    o.step(b.f.run(), 1);
    auto got = b.values();
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(got[i], want[t][i], 1e-13 * (1 + std::abs(want[t][i])))
          << o.name() << " step " << t + 1 << " coordinate " << i;
    }
  }
  EXPECT_EQ(o.steps(), 3u);
}

TEST(OptimExact, GradientDescentFirstStepLiteral) {
  Bowl b;
  opt::GradientDescent<double> o({b.x, b.y}, 0.1);
  o.step(b.f.run(), 1);
  // x - 0.1 * 2x and y - 0.1 * 4y.
  EXPECT_DOUBLE_EQ(b.values()[0], 1.2);
  EXPECT_DOUBLE_EQ(b.values()[1], -0.4);
  EXPECT_DOUBLE_EQ(b.values()[2], 0.48);
  EXPECT_DOUBLE_EQ(o.last_lr(), 0.1);
  EXPECT_DOUBLE_EQ(o.last_grad_norm(), std::sqrt(9.0 + 1.0 + 3.2 * 3.2));
}

TEST(OptimExact, GradientDescent) {
  Bowl b;
  opt::GradientDescent<double> o({b.x, b.y}, 0.1);
  EXPECT_EQ(o.name(), "GradientDescent");
  expect_three_steps(b, o, [](int, double& p, double g, int) { p -= 0.1 * g; });
}

TEST(OptimExact, SGDIsTheSameUpdate) {
  Bowl b;
  opt::SGD<double> o({b.x, b.y}, 0.05);
  EXPECT_EQ(o.name(), "SGD");
  expect_three_steps(b, o, [](int, double& p, double g, int) { p -= 0.05 * g; });
}

TEST(OptimExact, Momentum) {
  Bowl b;
  opt::Momentum<double> o({b.x, b.y}, 0.1, {.momentum = 0.9});
  std::array<double, 3> buf{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int t) {
    buf[i] = t == 1 ? g : 0.9 * buf[i] + g;
    p -= 0.1 * buf[i];
  });
  // Step 2 of x0 by hand: g1 = 3, x1 = 1.2, g2 = 2.4, b2 = 0.9 * 3 + 2.4 = 5.1 -> 0.69.
  Bowl c;
  opt::Momentum<double> o2({c.x, c.y}, 0.1, {.momentum = 0.9});
  o2.step(c.f.run(), 1);
  o2.step(c.f.run(), 1);
  EXPECT_NEAR(c.values()[0], 0.69, 1e-15);
}

TEST(OptimExact, MomentumWithDampeningSkipsItOnTheFirstStep) {
  Bowl b;
  opt::Momentum<double> o({b.x, b.y}, 0.1, {.momentum = 0.8, .dampening = 0.25});
  std::array<double, 3> buf{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int t) {
    buf[i] = t == 1 ? g : 0.8 * buf[i] + 0.75 * g;  // PyTorch: first buffer is g itself
    p -= 0.1 * buf[i];
  });
}

TEST(OptimExact, Nesterov) {
  Bowl b;
  opt::Nesterov<double> o({b.x, b.y}, 0.1, {.momentum = 0.9});
  std::array<double, 3> buf{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int t) {
    buf[i] = t == 1 ? g : 0.9 * buf[i] + g;
    p -= 0.1 * (g + 0.9 * buf[i]);
  });
}

TEST(OptimExact, AdaGrad) {
  Bowl b;
  opt::AdaGrad<double> o({b.x, b.y}, 0.5);
  std::array<double, 3> sum{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int) {
    sum[i] += g * g;
    p -= 0.5 * g / (std::sqrt(sum[i]) + 1e-10);
  });
}

TEST(OptimExact, AdaGradWithDecayAndInitialAccumulator) {
  Bowl b;
  opt::AdaGrad<double> o({b.x, b.y}, 0.5, {.lr_decay = 0.1, .initial_accumulator = 0.2});
  std::array<double, 3> sum = {0.2, 0.2, 0.2};
  expect_three_steps(b, o, [&](int i, double& p, double g, int t) {
    double clr = 0.5 / (1 + (t - 1) * 0.1);
    sum[i] += g * g;
    p -= clr * g / (std::sqrt(sum[i]) + 1e-10);
  });
}

TEST(OptimExact, RMSProp) {
  Bowl b;
  opt::RMSProp<double> o({b.x, b.y}, 0.01);
  std::array<double, 3> v{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int) {
    v[i] = 0.99 * v[i] + 0.01 * g * g;
    p -= 0.01 * g / (std::sqrt(v[i]) + 1e-8);
  });
}

TEST(OptimExact, RMSPropCenteredWithMomentum) {
  Bowl b;
  opt::RMSProp<double> o({b.x, b.y}, 0.01,
                         {.alpha = 0.9, .eps = 1e-6, .momentum = 0.5, .centered = true});
  std::array<double, 3> v{}, a{}, buf{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int) {
    v[i] = 0.9 * v[i] + 0.1 * g * g;
    a[i] = 0.9 * a[i] + 0.1 * g;
    double d = std::sqrt(v[i] - a[i] * a[i]) + 1e-6;
    buf[i] = 0.5 * buf[i] + g / d;
    p -= 0.01 * buf[i];
  });
}

TEST(OptimExact, Adam) {
  Bowl b;
  opt::Adam<double> o({b.x, b.y}, 0.1);
  std::array<double, 3> m{}, v{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int t) {
    m[i] = 0.9 * m[i] + 0.1 * g;
    v[i] = 0.999 * v[i] + 0.001 * g * g;
    double mhat = m[i] / (1 - std::pow(0.9, t)), vhat = v[i] / (1 - std::pow(0.999, t));
    p -= 0.1 * mhat / (std::sqrt(vhat) + 1e-8);
  });
}

TEST(OptimExact, AdamFirstStepMovesByTheRate) {
  // At t = 1, mhat = g and vhat = g^2: the step is lr * g / (|g| + eps), about lr.
  Bowl b;
  opt::Adam<double> o({b.x, b.y}, 0.1);
  o.step(b.f.run(), 1);
  EXPECT_NEAR(b.values()[0], 1.4, 1e-8);
  EXPECT_NEAR(b.values()[1], -0.4, 1e-8);
  EXPECT_NEAR(b.values()[2], 0.7, 1e-8);
}

TEST(OptimExact, AdamAmsgrad) {
  Bowl b;
  opt::Adam<double> o({b.x, b.y}, 0.3, {.beta1 = 0.5, .beta2 = 0.6, .amsgrad = true});
  std::array<double, 3> m{}, v{}, vmax{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int t) {
    m[i] = 0.5 * m[i] + 0.5 * g;
    v[i] = 0.6 * v[i] + 0.4 * g * g;
    vmax[i] = std::max(vmax[i], v[i]);
    double mhat = m[i] / (1 - std::pow(0.5, t)), vhat = vmax[i] / (1 - std::pow(0.6, t));
    p -= 0.3 * mhat / (std::sqrt(vhat) + 1e-8);
  });
}

TEST(OptimExact, AdamW) {
  Bowl b;
  opt::AdamW<double> o({b.x, b.y}, 0.1, {}, 0.2);
  EXPECT_EQ(o.name(), "AdamW");
  EXPECT_DOUBLE_EQ(o.options().decoupled_weight_decay, 0.2);
  std::array<double, 3> m{}, v{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int t) {
    p *= 1 - 0.1 * 0.2;  // decoupled decay first, with the gradient of the old point
    m[i] = 0.9 * m[i] + 0.1 * g;
    v[i] = 0.999 * v[i] + 0.001 * g * g;
    double mhat = m[i] / (1 - std::pow(0.9, t)), vhat = v[i] / (1 - std::pow(0.999, t));
    p -= 0.1 * mhat / (std::sqrt(vhat) + 1e-8);
  });
}

TEST(OptimExact, FloatInstantiation) {
  Graph<float> g;
  auto x = g.parameter("x", xt::xarray<float>{1.5f, -0.5f});
  auto loss = xgrad::sum(xgrad::square(x));
  auto f = xgrad::compile({loss, xgrad::grad(loss, {x})[0]});
  opt::Adam<float> o({x}, 0.1f);
  o.step(f.run(), 1);
  EXPECT_NEAR(g.value(x)(0), 1.4f, 1e-6f);
  EXPECT_NEAR(g.value(x)(1), -0.4f, 1e-6f);
  opt::Momentum<float> m({x}, 0.1f);
  m.step(f.run()[0](), f.run(), 1);
  EXPECT_EQ(m.steps(), 1u);
}

// ---------------------------------------------------------------------------------------
// Options shared by every optimizer.

TEST(OptimOptions, MaximizeIsGradientAscent) {
  Bowl b;
  opt::GradientDescent<double> o({b.x, b.y}, 0.1, {.maximize = true});
  expect_three_steps(b, o, [](int, double& p, double g, int) { p += 0.1 * g; });
}

TEST(OptimOptions, MaximizeAdamNegatesTheGradient) {
  Bowl b;
  opt::Adam<double> o({b.x, b.y}, 0.1, {}, {.maximize = true});
  std::array<double, 3> m{}, v{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int t) {
    g = -g;
    m[i] = 0.9 * m[i] + 0.1 * g;
    v[i] = 0.999 * v[i] + 0.001 * g * g;
    double mhat = m[i] / (1 - std::pow(0.9, t)), vhat = v[i] / (1 - std::pow(0.999, t));
    p -= 0.1 * mhat / (std::sqrt(vhat) + 1e-8);
  });
}

TEST(OptimOptions, MaximizeFindsTheMaximum) {
  // The note: adding the derivative climbs to a maximum. f(x) = -(x - 3)^2 + 1.
  Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>(-1.0));
  auto f = 1.0 - xgrad::square(x - 3.0);
  auto fn = xgrad::compile({f, xgrad::grad(f, {x})[0]});
  opt::GradientDescent<double> o({x}, 0.1, {.maximize = true});
  for (int i = 0; i < 200; ++i) o.step(fn.run(), 1);
  EXPECT_NEAR(g.value(x)(), 3.0, 1e-12);
}

TEST(OptimOptions, L2WeightDecayAddsToTheGradient) {
  Bowl b;
  opt::Momentum<double> o({b.x, b.y}, 0.1, {.momentum = 0.5}, {.weight_decay = 0.3});
  std::array<double, 3> buf{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int t) {
    g += 0.3 * p;
    buf[i] = t == 1 ? g : 0.5 * buf[i] + g;
    p -= 0.1 * buf[i];
  });
}

TEST(OptimOptions, DecoupledWeightDecayShrinksTheParameter) {
  Bowl b;
  opt::GradientDescent<double> o({b.x, b.y}, 0.1, {.decoupled_weight_decay = 0.5});
  expect_three_steps(b, o, [](int, double& p, double g, int) {
    p *= 1 - 0.1 * 0.5;
    p -= 0.1 * g;
  });
}

TEST(OptimOptions, ClipByGlobalNorm) {
  Bowl b;
  opt::GradientDescent<double> o({b.x, b.y}, 0.1, {.clip_norm = 1.0});
  // The hand rule needs all coordinates at once, so run by_hand's loop inline.
  std::array<double, 3> p = {1.5, -0.5, 0.8};
  const std::array<double, 3> c = {2, 2, 4};
  for (int t = 1; t <= 3; ++t) {
    std::array<double, 3> g{};
    double sq = 0;
    for (int i = 0; i < 3; ++i) {
      g[i] = c[i] * p[i];
      sq += g[i] * g[i];
    }
    double norm = std::sqrt(sq), scale = std::min(1.0, 1.0 / (norm + 1e-6));
    for (int i = 0; i < 3; ++i) p[i] -= 0.1 * scale * g[i];
    o.step(b.f.run(), 1);
    EXPECT_NEAR(o.last_grad_norm(), norm, 1e-13);  // reported before clipping
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(b.values()[i], p[i], 1e-14) << t << " " << i;
  }
}

TEST(OptimOptions, ClipNormLeavesSmallGradientsAlone) {
  Bowl b;
  opt::GradientDescent<double> o({b.x, b.y}, 0.1, {.clip_norm = 100.0});
  expect_three_steps(b, o, [](int, double& p, double g, int) { p -= 0.1 * g; });
}

TEST(OptimOptions, ClipByValue) {
  Bowl b;
  opt::GradientDescent<double> o({b.x, b.y}, 0.1, {.clip_value = 1.5});
  expect_three_steps(b, o,
                     [](int, double& p, double g, int) { p -= 0.1 * std::clamp(g, -1.5, 1.5); });
}

TEST(OptimOptions, SetOptionsAndScheduleAreValidated) {
  Bowl b;
  opt::SGD<double> o({b.x, b.y}, 0.1);
  auto msg = message_of<xgrad::ValueError>([&] { o.set_options({.clip_norm = -1}); });
  EXPECT_TRUE(contains(msg, "SGD")) << msg;
  EXPECT_TRUE(contains(msg, "clip_norm")) << msg;
  msg = message_of<xgrad::ValueError>(
      [&] { o.set_schedule(opt::custom([](auto, auto) { return -1.0; })); });
  EXPECT_TRUE(contains(msg, "negative")) << msg;
  EXPECT_DOUBLE_EQ(o.lr(), 0.1);  // the old schedule stays on failure
  o.set_schedule(0.2);
  EXPECT_DOUBLE_EQ(o.lr(), 0.2);
}

// A constant rate without options takes a shorter path through step(); options and
// schedules set later must still take effect from the next step on.
TEST(OptimOptions, OptionsAndSchedulesSetLaterTakeEffect) {
  Bowl b;
  opt::GradientDescent<double> o({b.x, b.y}, 0.1);
  o.step(b.f.run(), 1);  // x: 1.5 - 0.1 * 3 = 1.2
  EXPECT_DOUBLE_EQ(b.values()[0], 1.2);
  o.set_options({.weight_decay = 0.5});  // gradient 2x + 0.5x
  o.step(b.f.run(), 1);
  EXPECT_DOUBLE_EQ(b.values()[0], 1.2 - 0.1 * 2.5 * 1.2);
  o.set_options({});
  o.set_schedule(opt::step_decay(0.2, 1, 0.5));  // step 3 (t = 2): 0.2 * 0.25
  const double x2 = b.values()[0];
  o.step(b.f.run(), 1);
  EXPECT_DOUBLE_EQ(b.values()[0], x2 - 0.05 * 2 * x2);
  EXPECT_DOUBLE_EQ(o.last_lr(), 0.05);
  o.set_schedule(0.3);
  o.set_options({.maximize = true});
  const double x3 = b.values()[0];
  o.step(b.f.run(), 1);
  EXPECT_DOUBLE_EQ(b.values()[0], x3 + 0.3 * 2 * x3);
  EXPECT_DOUBLE_EQ(o.last_lr(), 0.3);
  EXPECT_TRUE(opt::Schedule(0.3).constant());
  EXPECT_FALSE(opt::step_decay(0.2, 1, 0.5).constant());
  EXPECT_FALSE(opt::custom([](auto, auto) { return 0.1; }).constant());
}

// ---------------------------------------------------------------------------------------
// Step forms: spans of gradients, run outputs with an offset, with or without the loss.

TEST(OptimStep, AcceptsGradientsOutputsAndLoss) {
  Bowl b1, b2, b3;
  opt::SGD<double> o1({b1.x, b1.y}, 0.1), o2({b2.x, b2.y}, 0.1), o3({b3.x, b3.y}, 0.1);
  for (int i = 0; i < 3; ++i) {
    const auto& out = b1.f.run();
    std::vector<xt::xarray<double>> grads(out.begin() + 1, out.end());
    o1.step(grads);  // a vector of gradients
    o2.step(b2.f.run(), 1);
    const auto& out3 = b3.f.run();
    o3.step(out3[0](), out3, 1);  // with the loss
  }
  EXPECT_EQ(b1.values(), b2.values());
  EXPECT_EQ(b1.values(), b3.values());
}

TEST(OptimStep, ExtraOutputsAfterTheGradientsAreIgnored) {
  Bowl b;
  auto f = xgrad::compile({b.loss, b.grads[0], b.grads[1], b.loss * 2.0});
  opt::SGD<double> o({b.x, b.y}, 0.1);
  o.step(f.run(), 1);
  EXPECT_DOUBLE_EQ(b.values()[2], 0.48);
}

TEST(OptimStep, SteadyStateStepsKeepBuffersInPlace) {
  Bowl b;
  opt::Adam<double> o({b.x, b.y}, 0.01, {.amsgrad = true}, {.weight_decay = 0.1, .clip_norm = 1});
  o.step(b.f.run(), 1);
  const double* px = b.g.value(b.x).data();
  const double* pm = o.param_state(0).tensors.at("exp_avg").data();
  const double* pv = o.param_state(1).tensors.at("max_exp_avg_sq").data();
  for (int i = 0; i < 10; ++i) o.step(b.f.run(), 1);
  EXPECT_EQ(b.g.value(b.x).data(), px);
  EXPECT_EQ(o.param_state(0).tensors.at("exp_avg").data(), pm);
  EXPECT_EQ(o.param_state(1).tensors.at("max_exp_avg_sq").data(), pv);
}

// ---------------------------------------------------------------------------------------
// Convergence on the seed's problems.

using Params = std::vector<Expr<double>>;

std::unique_ptr<opt::Optimizer<double>> make(const std::string& kind, Params ps, opt::Schedule lr) {
  if (kind == "GradientDescent") return std::make_unique<opt::GradientDescent<double>>(ps, lr);
  if (kind == "SGD") return std::make_unique<opt::SGD<double>>(ps, lr);
  if (kind == "Momentum") return std::make_unique<opt::Momentum<double>>(ps, lr);
  if (kind == "Nesterov") return std::make_unique<opt::Nesterov<double>>(ps, lr);
  if (kind == "AdaGrad") return std::make_unique<opt::AdaGrad<double>>(ps, lr);
  if (kind == "RMSProp") return std::make_unique<opt::RMSProp<double>>(ps, lr);
  if (kind == "Adam") return std::make_unique<opt::Adam<double>>(ps, lr);
  // Decay pulls the optimum towards 0; convergence to the exact minimum uses none.
  if (kind == "AdamW") return std::make_unique<opt::AdamW<double>>(ps, lr, opt::AdamConfig{}, 0);
  return nullptr;
}

struct Case {
  const char* kind;
  opt::Schedule lr;
  int steps;   // the stated budget
  double tol;  // max |coordinate - minimum| after it
};

// The seed's bowl f = x^2 + 2y^2 from a start drawn uniformly in [-2, 2]^2 (seeded).
TEST(OptimConverge, SeedBowlReachesTheOrigin) {
  std::mt19937 rng(2024);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  const double x0 = u(rng), y0 = u(rng);
  const std::vector<Case> cases = {
      {"GradientDescent", 0.01, 1000, 1e-8},
      {"SGD", 0.01, 1000, 1e-8},
      {"Momentum", 0.01, 300, 1e-6},
      {"Nesterov", 0.01, 300, 1e-6},
      {"AdaGrad", 0.5, 1000, 1e-12},
      {"RMSProp", opt::cosine(0.1, 1000), 1000, 1e-12},
      {"Adam", 0.01, 1000, 1e-8},
      {"AdamW", 0.01, 1000, 1e-8},
  };
  for (const auto& c : cases) {
    SeedBowl b(x0, y0);
    auto o = make(c.kind, {b.x, b.y}, c.lr);
    for (int i = 0; i < c.steps; ++i) o->step(b.fn.run(), 1);
    EXPECT_NEAR(b.g.value(b.x)(), 0.0, c.tol) << c.kind;
    EXPECT_NEAR(b.g.value(b.y)(), 0.0, c.tol) << c.kind;
  }
}

TEST(OptimConverge, SeedLinearRegressionReachesOneTwoThree) {
  // The seed's own run: 5000 steps of lr 0.01 gradient descent.
  const std::vector<Case> cases = {
      {"GradientDescent", 0.01, 5000, 1e-5},
      {"SGD", 0.01, 5000, 1e-5},
      {"Momentum", 0.01, 5000, 1e-12},
      {"Nesterov", 0.01, 5000, 1e-12},
      {"AdaGrad", 5.0, 5000, 1e-10},
      {"RMSProp", opt::cosine(0.1, 5000), 5000, 1e-10},
      {"Adam", 0.5, 5000, 1e-12},
      {"AdamW", 0.5, 5000, 1e-12},
  };
  for (const auto& c : cases) {
    SeedRegression r;
    auto o = make(c.kind, {r.beta}, c.lr);
    for (int i = 0; i < c.steps; ++i) o->step(r.run(), 1);
    EXPECT_LT(r.error(), c.tol) << c.kind;
  }
}

TEST(OptimConverge, SeedLinearRegressionFirstStepMatchesTheNote) {
  // beta1 = beta0 + 0.01 * X^T (y - X beta0), by hand.
  SeedRegression r;
  double res[4], b0[3] = {10.1, 15.1, -6.5}, want[3];
  for (int i = 0; i < 4; ++i) {
    res[i] = r.y(i);
    for (int j = 0; j < 3; ++j) res[i] -= r.X(i, j) * b0[j];
  }
  for (int j = 0; j < 3; ++j) {
    want[j] = b0[j];
    for (int i = 0; i < 4; ++i) want[j] += 0.01 * r.X(i, j) * res[i];
  }
  opt::GradientDescent<double> o({r.beta}, 0.01);
  o.step(r.run(), 1);
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(r.g.value(r.beta)(j), want[j], 1e-13);
}

// Rosenbrock (1 - x)^2 + 100 (y - x^2)^2 from the classic start (-1.2, 1).
TEST(OptimConverge, RosenbrockAdaptiveOnesReachOneOne) {
  const std::vector<Case> cases = {
      {"AdaGrad", 0.5, 20000, 1e-5},
      {"RMSProp", opt::cosine(0.005, 20000), 20000, 1e-5},
      {"Adam", 0.05, 5000, 1e-8},
      {"AdamW", 0.05, 5000, 1e-8},
  };
  for (const auto& c : cases) {
    Graph<double> g;
    auto x = g.parameter("x", xt::xarray<double>(-1.2));
    auto y = g.parameter("y", xt::xarray<double>(1.0));
    auto f = xgrad::square(1.0 - x) + 100.0 * xgrad::square(y - xgrad::square(x));
    auto gr = xgrad::grad(f, {x, y});
    auto fn = xgrad::compile({f, gr[0], gr[1]});
    auto o = make(c.kind, {x, y}, c.lr);
    for (int i = 0; i < c.steps; ++i) o->step(fn.run(), 1);
    EXPECT_NEAR(g.value(x)(), 1.0, c.tol) << c.kind;
    EXPECT_NEAR(g.value(y)(), 1.0, c.tol) << c.kind;
  }
}

// ---------------------------------------------------------------------------------------
// Bad input.

TEST(OptimErrors, EmptyParameterList) {
  auto msg = message_of<xgrad::ValueError>([] { opt::Adam<double> o({}, 0.1); });
  EXPECT_TRUE(contains(msg, "Adam")) << msg;
  EXPECT_TRUE(contains(msg, "empty")) << msg;
}

TEST(OptimErrors, NonParameterNodes) {
  Graph<double> g;
  auto w = g.parameter("w", xt::xarray<double>{1, 2});
  auto in = g.input("data", {2});
  auto c = g.constant(xt::xarray<double>{1, 2}, "k");
  auto msg = message_of<xgrad::GraphError>([&] { opt::SGD<double> o({w, in}, 0.1); });
  EXPECT_TRUE(contains(msg, "SGD")) << msg;
  EXPECT_TRUE(contains(msg, "'data'")) << msg;
  EXPECT_TRUE(contains(msg, "not a parameter")) << msg;
  msg = message_of<xgrad::GraphError>([&] { opt::Adam<double> o({c}, 0.1); });
  EXPECT_TRUE(contains(msg, "'k'")) << msg;
  msg = message_of<xgrad::GraphError>([&] { opt::Adam<double> o({w * 2.0}, 0.1); });
  EXPECT_TRUE(contains(msg, "not a parameter")) << msg;
  msg = message_of<xgrad::GraphError>([&] { opt::Adam<double> o({Expr<double>()}, 0.1); });
  EXPECT_TRUE(contains(msg, "invalid")) << msg;
}

TEST(OptimErrors, ParametersOfTwoGraphsOrTwice) {
  Graph<double> g1, g2;
  auto a = g1.parameter("a", xt::xarray<double>(1.0));
  auto b = g2.parameter("b", xt::xarray<double>(1.0));
  auto msg = message_of<xgrad::GraphError>([&] { opt::Momentum<double> o({a, b}, 0.1); });
  EXPECT_TRUE(contains(msg, "Momentum")) << msg;
  EXPECT_TRUE(contains(msg, "another graph")) << msg;
  msg = message_of<xgrad::ValueError>([&] { opt::Momentum<double> o({a, a}, 0.1); });
  EXPECT_TRUE(contains(msg, "twice")) << msg;
}

TEST(OptimErrors, GradientShapeMismatchNamesOptimizerParameterAndShapes) {
  Graph<double> g;
  auto w = g.parameter("weights", xt::xarray<double>::from_shape({2, 3}));
  opt::RMSProp<double> o({w}, 0.1);
  std::vector<xt::xarray<double>> grads = {xt::xarray<double>::from_shape({3})};
  auto msg = message_of<xgrad::ShapeError>([&] { o.step(grads); });
  EXPECT_TRUE(contains(msg, "RMSProp")) << msg;
  EXPECT_TRUE(contains(msg, "'weights'")) << msg;
  EXPECT_TRUE(contains(msg, "(3)")) << msg;
  EXPECT_TRUE(contains(msg, "(2, 3)")) << msg;
  EXPECT_EQ(o.steps(), 0u);
}

TEST(OptimErrors, WrongNumberOfGradients) {
  Bowl b;
  opt::SGD<double> o({b.x, b.y}, 0.1);
  auto msg = message_of<xgrad::ValueError>([&] { o.step(b.f.run(), 2); });
  EXPECT_TRUE(contains(msg, "only 3 outputs")) << msg;
  std::vector<xt::xarray<double>> one = {xt::xarray<double>{1, 1}};
  msg = message_of<xgrad::ValueError>([&] { o.step(one); });
  EXPECT_TRUE(contains(msg, "1 gradients for 2 parameters")) << msg;
}

TEST(OptimErrors, NegativeOrNaNLearningRate) {
  Bowl b;
  auto msg = message_of<xgrad::ValueError>([&] { opt::Adam<double> o({b.x}, -0.1); });
  EXPECT_TRUE(contains(msg, "-0.1")) << msg;
  msg = message_of<xgrad::ValueError>([&] { opt::Adam<double> o({b.x}, std::nan("")); });
  EXPECT_TRUE(contains(msg, "nan")) << msg;
  // A user schedule that turns NaN later is caught at that step, naming optimizer and step.
  opt::Nesterov<double> o({b.x, b.y}, opt::custom([](std::size_t t, std::size_t) {
                            return t < 2 ? 0.1 : std::nan("");
                          }));
  o.step(b.f.run(), 1);
  o.step(b.f.run(), 1);
  auto before = b.values();
  msg = message_of<xgrad::ValueError>([&] { o.step(b.f.run(), 1); });
  EXPECT_TRUE(contains(msg, "Nesterov")) << msg;
  EXPECT_TRUE(contains(msg, "for step 3")) << msg;
  EXPECT_EQ(b.values(), before);
}

TEST(OptimErrors, BadHyperParameters) {
  Bowl b;
  auto msg = message_of<xgrad::ValueError>([&] { opt::Adam<double> o({b.x}, 0.1, {.beta1 = 1}); });
  EXPECT_TRUE(contains(msg, "Adam: beta1 = 1 must lie in [0, 1)")) << msg;
  EXPECT_THROW(opt::Momentum<double>({b.x}, 0.1, {.momentum = -0.5}), xgrad::ValueError);
  EXPECT_THROW(opt::Nesterov<double>({b.x}, 0.1, {.dampening = 0.1}), xgrad::ValueError);
  EXPECT_THROW(opt::RMSProp<double>({b.x}, 0.1, {.alpha = 1.5}), xgrad::ValueError);
  EXPECT_THROW(opt::AdaGrad<double>({b.x}, 0.1, {.eps = -1}), xgrad::ValueError);
  EXPECT_THROW(opt::SGD<double>({b.x}, 0.1, {.weight_decay = std::nan("")}), xgrad::ValueError);
  EXPECT_THROW(opt::AdamW<double>({b.x}, 0.1, {}, -0.01), xgrad::ValueError);
}

TEST(OptimErrors, NonFiniteLossStopsTrainingNamingTheStep) {
  // log(x) with x driven below 0 by a large step: the loss becomes NaN.
  Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>(1.0));
  auto loss = xgrad::log(x) + x;  // gradient 1/x + 1 > 0, descent walks x down past 0
  auto fn = xgrad::compile({loss, xgrad::grad(loss, {x})[0]});
  opt::GradientDescent<double> o({x}, 1.0);
  const auto& out = fn.run();
  o.step(out[0](), out, 1);  // x: 1 -> -1
  EXPECT_DOUBLE_EQ(g.value(x)(), -1.0);
  const auto& out2 = fn.run();
  auto msg = message_of<xgrad::ValueError>([&] { o.step(out2[0](), out2, 1); });
  EXPECT_TRUE(contains(msg, "GradientDescent")) << msg;
  EXPECT_TRUE(contains(msg, "nan")) << msg;
  EXPECT_TRUE(contains(msg, "step 2")) << msg;
  EXPECT_DOUBLE_EQ(g.value(x)(), -1.0);  // unchanged
  EXPECT_EQ(o.steps(), 1u);

  // Opt-in: continue anyway.
  opt::GradientDescent<double> go_on({x}, 1.0, {.allow_nonfinite = true});
  const auto& out3 = fn.run();
  EXPECT_NO_THROW(go_on.step(out3[0](), out3, 1));
  EXPECT_EQ(go_on.steps(), 1u);
}

TEST(OptimErrors, InfiniteGradientIsCaughtToo) {
  Bowl b;
  opt::SGD<double> o({b.x, b.y}, 0.1);
  std::vector<xt::xarray<double>> grads = {xt::xarray<double>{1, INFINITY},
                                           xt::xarray<double>(0.0)};
  auto msg = message_of<xgrad::ValueError>([&] { o.step(grads); });
  EXPECT_TRUE(contains(msg, "gradient norm is inf")) << msg;
}

// ---------------------------------------------------------------------------------------
// A user-written optimizer outside the library: Lion (Chen et al. 2023, "Symbolic
// Discovery of Optimization Algorithms"), with its state and the shared options.

template <class T>
class Lion : public opt::Optimizer<T> {
 public:
  Lion(std::vector<Expr<T>> params, opt::Schedule lr, T beta1 = 0.9, T beta2 = 0.99,
       opt::Options o = {})
      : opt::Optimizer<T>("Lion", std::move(params), std::move(lr), o), b1_(beta1), b2_(beta2) {}

 protected:
  void update(xt::xarray<T>& p, const xt::xarray<T>& g, opt::ParamState<T>& s,
              const opt::StepContext<T>& c) override {
    xt::xarray<T>& m = s.tensor("exp_avg", g);
    xt::noalias(p) -= c.lr * xt::sign(b1_ * m + (1 - b1_) * g);
    xt::noalias(m) = b2_ * m + (1 - b2_) * g;
  }

 private:
  T b1_, b2_;
};

TEST(OptimUser, LionExactSteps) {
  Bowl b;
  Lion<double> o({b.x, b.y}, 0.1, 0.9, 0.99);
  std::array<double, 3> m{};
  expect_three_steps(b, o, [&](int i, double& p, double g, int) {
    double c = 0.9 * m[i] + 0.1 * g;
    p -= 0.1 * (c > 0 ? 1 : c < 0 ? -1 : 0);
    m[i] = 0.99 * m[i] + 0.01 * g;
  });
}

TEST(OptimUser, LionTrainsTheSeedRegression) {
  SeedRegression r;
  Lion<double> o({r.beta}, opt::linear_warmup(100, opt::cosine(0.05, 9900)));
  for (int i = 0; i < 10000; ++i) o.step(r.run(), 1);
  EXPECT_LT(r.error(), 1e-4);
}

// ---------------------------------------------------------------------------------------
// Checkpoints: copy the state out, continue, put it back, repeat: identical values.

TEST(OptimState, SaveRestoreRoundTrip) {
  SeedRegression r;
  opt::Adam<double> o({r.beta}, opt::reduce_on_plateau(0.3, {.patience = 2}));
  for (int i = 0; i < 10; ++i) {
    const auto& out = r.run();
    o.step(out[0](), out, 1);
  }
  const auto saved = o.state();
  const xt::xarray<double> saved_beta = r.g.value(r.beta);
  EXPECT_EQ(saved.steps, 10u);
  EXPECT_TRUE(saved.params[0].has("exp_avg"));
  EXPECT_TRUE(saved.params[0].has("exp_avg_sq"));
  EXPECT_EQ(saved.schedule.count("best"), 1u);

  auto five = [&] {
    std::vector<xt::xarray<double>> trail;
    for (int i = 0; i < 5; ++i) {
      const auto& out = r.run();
      o.step(out[0](), out, 1);
      trail.push_back(r.g.value(r.beta));
    }
    return trail;
  };
  auto first = five();
  auto after_first = o.state();
  r.g.value(r.beta) = saved_beta;
  o.load_state(saved);
  EXPECT_EQ(o.steps(), 10u);
  auto second = five();
  ASSERT_EQ(first.size(), second.size());
  for (std::size_t i = 0; i < first.size(); ++i) EXPECT_EQ(first[i], second[i]) << i;
  EXPECT_EQ(o.state().params[0].tensors.at("exp_avg"), after_first.params[0].tensors.at("exp_avg"));
  EXPECT_EQ(o.state().schedule, after_first.schedule);
}

TEST(OptimState, ExposedTensorsAndScalarsAndReset) {
  Bowl b;
  opt::Momentum<double> o({b.x, b.y}, 0.1);
  o.step(b.f.run(), 1);
  auto& s = o.param_state(0);
  ASSERT_TRUE(s.has("momentum_buffer"));
  EXPECT_EQ(s.tensors.at("momentum_buffer"), (xt::xarray<double>{3, -1}));
  s.scalar("note", 2.5);
  EXPECT_DOUBLE_EQ(o.param_state(0).scalars.at("note"), 2.5);
  EXPECT_THROW(o.param_state(2), xgrad::ValueError);
  opt::OptimizerState<double> wrong;
  EXPECT_THROW(o.load_state(wrong), xgrad::ValueError);
  o.reset();
  EXPECT_EQ(o.steps(), 0u);
  EXPECT_FALSE(o.param_state(0).has("momentum_buffer"));
}

TEST(OptimState, StateTensorOfAnotherShapeIsAShapeError) {
  opt::ParamState<double> s;
  s.tensor("m", xt::xarray<double>{1, 2});
  auto msg = message_of<xgrad::ShapeError>([&] { s.tensor("m", xt::xarray<double>{1, 2, 3}); });
  EXPECT_TRUE(contains(msg, "'m'")) << msg;
  EXPECT_TRUE(contains(msg, "(2)")) << msg;
  EXPECT_TRUE(contains(msg, "(3)")) << msg;
}

// ---------------------------------------------------------------------------------------
// The note's SGD: minibatches from a shuffled data set (non-overlapping within an epoch).
// With a constant rate SGD keeps oscillating near the minimum; with decay it settles.

struct NoisyRegression {
  static constexpr std::size_t n = 64, batch = 8;
  xt::xarray<double> X = xt::xarray<double>::from_shape({n, 3});
  xt::xarray<double> y = xt::xarray<double>::from_shape({n});
  NoisyRegression() {
    std::mt19937 rng(11);
    std::uniform_real_distribution<double> u(0.0, 3.0);
    std::normal_distribution<double> noise(0.0, 0.5);
    for (std::size_t i = 0; i < n; ++i) {
      X(i, 0) = u(rng);
      X(i, 1) = u(rng);
      X(i, 2) = 1;
      y(i) = X(i, 0) + 2 * X(i, 1) + 3 + noise(rng);
    }
  }
};

/// Full-data losses at the end of each of the last epochs of minibatch SGD.
std::vector<double> sgd_final_losses(const NoisyRegression& d, opt::Schedule lr, int epochs,
                                     int last) {
  Graph<double> g;
  auto Xi = g.input("X", {xgrad::open, 3});
  auto yi = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::xarray<double>{0, 0, 0});
  auto loss = xgrad::mse(xgrad::matmul(Xi, beta), yi);
  auto f = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});
  auto full = xgrad::compile({loss});
  opt::SGD<double> o({beta}, std::move(lr));

  std::mt19937 rng(5);
  std::vector<std::size_t> order(d.n);
  std::iota(order.begin(), order.end(), 0);
  xt::xarray<double> Xb = xt::xarray<double>::from_shape({d.batch, 3});
  xt::xarray<double> yb = xt::xarray<double>::from_shape({d.batch});
  std::vector<double> losses;
  for (int e = 0; e < epochs; ++e) {
    o.set_epoch(static_cast<std::size_t>(e));
    std::shuffle(order.begin(), order.end(), rng);  // once per epoch
    for (std::size_t start = 0; start < d.n; start += d.batch) {
      for (std::size_t k = 0; k < d.batch; ++k) {  // consecutive, non-overlapping batches
        std::size_t row = order[start + k];
        for (std::size_t j = 0; j < 3; ++j) Xb(k, j) = d.X(row, j);
        yb(k) = d.y(row);
      }
      o.step(f.run({{Xi, Xb}, {yi, yb}}), 1);
    }
    if (e >= epochs - last) losses.push_back(full.run({{Xi, d.X}, {yi, d.y}})[0]());
  }
  return losses;
}

TEST(OptimSGDDemo, DecayingRateSettlesWhereConstantRateOscillates) {
  NoisyRegression d;
  const int epochs = 300, last = 20;
  auto constant = sgd_final_losses(d, 0.05, epochs, last);
  auto decayed = sgd_final_losses(d, opt::by_epoch(opt::inverse_time(0.05, 0.05)), epochs, last);
  auto mean = [](const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  auto spread = [](const std::vector<double>& v) {
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return *hi - *lo;
  };
  // The least-squares loss, by full-batch gradient descent.
  Graph<double> g;
  auto Xi = g.input("X", {xgrad::open, 3});
  auto yi = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::xarray<double>{0, 0, 0});
  auto loss = xgrad::mse(xgrad::matmul(Xi, beta), yi);
  auto f = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});
  opt::GradientDescent<double> gd({beta}, 0.1);
  for (int i = 0; i < 20000; ++i) gd.step(f.run({{Xi, d.X}, {yi, d.y}}), 1);
  const double best = f.run({{Xi, d.X}, {yi, d.y}})[0]();

  // Constant rate: near the minimum but bouncing around it. Decay: settled on it.
  EXPECT_GT(mean(constant) - best, 3e-3);
  EXPECT_GT(spread(constant), 5e-3);
  EXPECT_LT(mean(decayed) - best, 1e-4);
  EXPECT_LT(spread(decayed), 1e-2 * spread(constant))
      << "constant spread " << spread(constant) << ", decayed " << spread(decayed);
}

}  // namespace
