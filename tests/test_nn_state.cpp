// State that changes per run: Function updates (written after the run, every read seeing
// the old values), the dropout op and layer (masks from a seed and a step buffer), and
// batch normalisation (batch statistics in training, running statistics in evaluation).
#include <gtest/gtest.h>

#include <cmath>
#include <xgrad/nn/nn.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace nn = xgrad::nn;
using xgrad::Expr;
using xgrad::Graph;
using xgrad::Update;
using xgrad_test::contains;

namespace {

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const xgrad::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---------------------------------------------------------------- Function updates

TEST(FunctionUpdate, WritesAfterTheRunAndEveryReadSeesTheOldValue) {
  Graph<double> g;
  auto a = g.parameter("a", xt::xarray<double>{1, 2});
  auto c = g.parameter("c", xt::xarray<double>(0.0));
  auto total = xgrad::sum(a);
  auto f = xgrad::compile({total, a, 3.0 * a}, {}, {{a, 2.0 * a}, {c, c + 1.0}});
  EXPECT_EQ(f.updates().size(), 2u);
  const auto& r = f.run();
  ASSERT_EQ(r.size(), 3u);  // the update values are not among the results
  EXPECT_EQ(r[0](), 3.0);
  EXPECT_EQ(r[1], (xt::xarray<double>{1, 2}));
  EXPECT_EQ(r[2], (xt::xarray<double>{3, 6}));
  EXPECT_EQ(g.value(a), (xt::xarray<double>{2, 4}));
  EXPECT_EQ(g.value(c)(), 1.0);
  f.run();
  EXPECT_EQ(f.results()[0](), 6.0);
  EXPECT_EQ(g.value(a), (xt::xarray<double>{4, 8}));
  EXPECT_EQ(g.value(c)(), 2.0);
  EXPECT_EQ(f.plan_count(), 1u);
}

TEST(FunctionUpdate, UpdatesReadTheValuesFromBeforeTheRun) {
  Graph<double> g;
  auto p = g.parameter("p", xt::xarray<double>{1, 2, 3});
  auto q = g.parameter("q", xt::xarray<double>{-1, -2, -3});
  // A swap: each value is the other target's old value.
  xgrad::Function<double> swap({}, {}, {{p, q}, {q, p}});
  swap.run();
  EXPECT_EQ(g.value(p), (xt::xarray<double>{-1, -2, -3}));
  EXPECT_EQ(g.value(q), (xt::xarray<double>{1, 2, 3}));
  EXPECT_TRUE(swap.results().empty());
}

TEST(FunctionUpdate, OpenBatchRePlansAndMismatchAtRunTimeWritesNothing) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto m = g.parameter("m", xt::xarray<double>{0, 0, 0});
  auto rows = g.parameter("rows", xt::xarray<double>{0, 0, 0, 0});
  auto f = xgrad::compile({xgrad::sum(X * m)}, {}, {{m, xgrad::mean(X, {0})}});
  xt::xarray<double> x4 = {{1, 2, 3}, {3, 4, 5}, {5, 6, 7}, {7, 8, 9}};
  xt::xarray<double> x2 = {{1, 1, 1}, {3, 5, 7}};
  f.run({{X, x4}});
  EXPECT_EQ(g.value(m), (xt::xarray<double>{4, 5, 6}));
  f.run({{X, x2}});
  EXPECT_EQ(f.results()[0](), 4.0 * 4 + 5.0 * 6 + 6.0 * 8);
  EXPECT_EQ(g.value(m), (xt::xarray<double>{2, 3, 4}));
  EXPECT_EQ(f.plan_count(), 2u);

  // (?) fits (4) when built; a batch of 2 does not, and neither target changes.
  auto h = xgrad::compile({xgrad::sum(X)}, {}, {{m, 2.0 * m}, {rows, xgrad::sum(X, {1})}});
  h.run({{X, x4}});
  EXPECT_EQ(g.value(rows), (xt::xarray<double>{6, 12, 18, 24}));
  std::string msg = message_of([&] { h.run({{X, x2}}); });
  EXPECT_TRUE(contains(msg, "'rows'") && contains(msg, "(2,)") && contains(msg, "(4,)")) << msg;
  EXPECT_EQ(g.value(m), (xt::xarray<double>{4, 6, 8}));
  EXPECT_EQ(g.value(rows), (xt::xarray<double>{6, 12, 18, 24}));
  EXPECT_THROW(h.run({{X, x2}}), xgrad::ShapeError);
}

// Update values computed inside row-tiled groups (a sum over the rows of a large X, the
// gradient X^T r) are results like outputs: each keeps its full buffer to the end of the run.
TEST(FunctionUpdate, ValuesFromRowTiledGroupsMatchUntiledRuns) {
  Graph<double> g;
  const std::size_t n = 8192, d = 48;  // 3 MiB of X
  xt::xarray<double> xv = xt::xarray<double>::from_shape({n, d});
  for (std::size_t i = 0; i < xv.size(); ++i) xv.flat(i) = std::sin(0.37 * static_cast<double>(i));
  auto X = g.input("X", {xgrad::open, static_cast<xgrad::Dim>(d)});
  auto w = g.parameter("w", xt::xarray<double>(xt::ones<double>({d}) * 0.01));
  auto sq = g.parameter("sq", xt::xarray<double>(0.0));
  auto loss = xgrad::mean(xgrad::square(xgrad::matmul(X, w) - 1.0));
  auto dw = xgrad::grad(loss, {w})[0];
  std::vector<Update<double>> ups{{w, w - 0.02 * dw}, {sq, sq + xgrad::sum(xgrad::square(X))}};
  auto tiled = xgrad::compile({loss}, {}, ups);
  auto plain = xgrad::compile({loss}, {.tile_rows = false}, ups);
  const xt::xarray<double> w0 = g.value(w);
  std::vector<double> losses;
  for (int run = 0; run < 3; ++run) losses.push_back(tiled.run({{X, xv}})[0]());
  EXPECT_GT(tiled.tiled_groups(), 0u);
  const xt::xarray<double> w_tiled = g.value(w);
  const double sq_tiled = g.value(sq)();
  g.value(w) = w0;
  g.value(sq)() = 0;
  for (int run = 0; run < 3; ++run) EXPECT_NEAR(plain.run({{X, xv}})[0](), losses[run], 1e-12);
  EXPECT_LT(losses[2], losses[0]);
  for (std::size_t j = 0; j < d; ++j) EXPECT_NEAR(g.value(w)(j), w_tiled(j), 1e-12);
  EXPECT_NEAR(g.value(sq)(), sq_tiled, 1e-9 * sq_tiled);
}

TEST(FunctionUpdate, AFailedRunWritesNothing) {
  Graph<double> g;
  auto x = g.input("x", {2});
  auto s = g.parameter("s", xt::xarray<double>{1, 1});
  auto f = xgrad::compile({xgrad::log(x)}, {.check_finite = true}, {{s, s + x}});
  EXPECT_THROW(f.run({{x, xt::xarray<double>{1, -1}}}), xgrad::ValueError);
  EXPECT_EQ(g.value(s), (xt::xarray<double>{1, 1}));
  f.run({{x, xt::xarray<double>{1, 2}}});
  EXPECT_EQ(g.value(s), (xt::xarray<double>{2, 3}));
}

TEST(FunctionUpdate, CompileRejectsBadTargetsNamingTheNodes) {
  Graph<double> g, other;
  auto x = g.input("x", {3});
  auto p = g.parameter("p", xt::xarray<double>{1, 2, 3});
  auto k = g.constant(xt::xarray<double>{1, 1, 1}, "k");
  auto q = other.parameter("q", xt::xarray<double>{1, 2, 3});
  auto y = xgrad::sum(x * p);
  using U = std::vector<Update<double>>;
  auto bad = [&](U ups) { return message_of([&] { xgrad::compile({y}, {}, ups); }); };
  EXPECT_THROW(xgrad::compile({y}, {}, U{{x, p}}), xgrad::GraphError);
  EXPECT_TRUE(contains(bad(U{{x, p}}), "'x'")) << bad(U{{x, p}});
  EXPECT_TRUE(contains(bad(U{{k, p}}), "'k'")) << bad(U{{k, p}});
  auto doubled = (p * 2.0).named("doubled");
  EXPECT_TRUE(contains(bad(U{{doubled, p}}), "not a parameter"));
  EXPECT_THROW(xgrad::compile({y}, {}, U{{q, p}}), xgrad::GraphError);
  EXPECT_THROW(xgrad::compile({y}, {}, U{{p, Expr<double>()}}), xgrad::GraphError);
  std::string twice = bad(U{{p, p + 1.0}, {p, p * 3.0}});
  EXPECT_TRUE(contains(twice, "'p'") && contains(twice, "already")) << twice;
  EXPECT_THROW(xgrad::compile({y}, {}, U{{p, p + 1.0}, {p, p * 3.0}}), xgrad::GraphError);
  auto wide = g.parameter("wide", xt::xarray<double>{1, 2, 3, 4});
  std::string shape = bad(U{{p, wide}});
  EXPECT_THROW(xgrad::compile({y}, {}, U{{p, wide}}), xgrad::ShapeError);
  EXPECT_TRUE(contains(shape, "'p'") && contains(shape, "'wide'") && contains(shape, "(4,)") &&
              contains(shape, "(3,)"))
      << shape;
  EXPECT_THROW(xgrad::compile({y}, {}, U{{p, xgrad::sum(p)}}), xgrad::ShapeError);
}

// ---------------------------------------------------------------- the dropout op

TEST(Dropout, KeepsAboutOneMinusPScaledByItsInverse) {
  Graph<double> g;
  const std::size_t n = 200000;
  xt::xarray<double> xv = xt::arange<double>(1, static_cast<double>(n) + 1);
  auto x = g.parameter("x", xv);
  auto step = g.parameter("step", xt::xarray<double>(0.0));
  const double p = 0.3;
  auto y = xgrad::eval(xgrad::dropout(x, p, 42, step));
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (y(i) != 0) {
      ++kept;
      EXPECT_EQ(y(i), xv(i) * (1 / (1 - p))) << i;
    }
  }
  // 1 - p within 5 standard deviations of the binomial.
  EXPECT_NEAR(static_cast<double>(kept) / n, 1 - p, 5 * std::sqrt(p * (1 - p) / n));
  EXPECT_EQ(xgrad::dropout(x, 0.0, 42, step), x);
  EXPECT_EQ(xgrad::to_string(xgrad::dropout(x, p, 42, step)),
            "dropout(x, p=0.3, seed=42, step=step)");
}

TEST(Dropout, SameSeedAndStepSameMaskInBothPrecisions) {
  auto mask = [](auto zero, double p, std::uint64_t seed, double s) {
    using T = decltype(zero);
    Graph<T> g;
    auto x = g.parameter("x", xt::xarray<T>(xt::ones<T>({64, 32})));
    auto step = g.parameter("step", xt::xarray<T>(static_cast<T>(s)));
    xt::xarray<T> y = xgrad::eval(xgrad::dropout(x, p, seed, step));
    return xt::xarray<bool>(xt::not_equal(y, T(0)));
  };
  auto base = mask(0.0, 0.5, 7, 3);
  EXPECT_EQ(base, mask(0.0, 0.5, 7, 3));
  EXPECT_EQ(base, mask(0.0f, 0.5, 7, 3));
  EXPECT_NE(base, mask(0.0, 0.5, 7, 4));
  EXPECT_NE(base, mask(0.0, 0.5, 8, 3));
  // A larger p drops a superset: the same uniforms against a higher bar.
  auto more = mask(0.0, 0.8, 7, 3);
  EXPECT_TRUE(xt::all(!more || base));
}

TEST(Dropout, GradientIsTheSameMaskAndChecksToSecondOrder) {
  Graph<double> g;
  xt::xarray<double> zv = {{0.3, -1.2, 0.7, 2.0}, {-0.4, 0.9, -2.2, 1.1}, {0.5, 0.1, -0.6, 1.7}};
  auto z = g.parameter("z", zv);
  auto step = g.parameter("step", xt::xarray<double>(5.0));
  auto w = g.parameter("w", xt::xarray<double>(xt::arange<double>(12).reshape({3, 4}) - 4.0));
  auto d = xgrad::dropout(z, 0.4, 11, step);
  auto dz = xgrad::grad(xgrad::sum(d * w), {z})[0];
  auto f = xgrad::compile({d, dz});
  const auto& r0 = f.run();
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < zv.size(); ++i) {
    const double m = r0[0].flat(i) != 0 ? 1 / (1 - 0.4) : 0.0;
    dropped += m == 0;
    EXPECT_EQ(r0[1].flat(i), m * g.value(w).flat(i)) << i;
  }
  EXPECT_GT(dropped, 0u);
  auto loss = xgrad::sum(xgrad::tanh(xgrad::dropout(z, 0.4, 11, step)) * xgrad::sin(z));
  auto r = xgrad::check_gradients(loss, {z});
  EXPECT_TRUE(r.ok) << r.summary();
  auto first = xgrad::grad(loss, {z})[0];
  auto r2 = xgrad::check_gradients(first, {z});
  EXPECT_TRUE(r2.ok) << r2.summary();
}

TEST(Dropout, ErrorsNameTheProblem) {
  Graph<double> g, other;
  auto x = g.input("x", {xgrad::open, 3});
  auto step = g.parameter("step", xt::xarray<double>(0.0));
  for (double p : {-0.1, 1.0, 1.5, std::nan("")}) {
    EXPECT_THROW(xgrad::dropout(x, p, 1, step), xgrad::ValueError) << p;
    EXPECT_THROW({ nn::Dropout<double> d(g, p); }, xgrad::ValueError) << p;
  }
  EXPECT_TRUE(contains(message_of([&] { xgrad::dropout(x, 1.0, 1, step); }), "'x'"));
  auto vec = g.parameter("vec", xt::xarray<double>{0, 1});
  std::string msg = message_of([&] { xgrad::dropout(x, 0.5, 1, vec); });
  EXPECT_TRUE(contains(msg, "dropout") && contains(msg, "'vec'") && contains(msg, "0-d")) << msg;
  auto foreign = other.parameter("s", xt::xarray<double>(0.0));
  EXPECT_THROW(xgrad::dropout(x, 0.5, 1, foreign), xgrad::GraphError);
  auto bad_step = g.parameter("bad_step", xt::xarray<double>(std::nan("")));
  auto f = xgrad::compile({xgrad::dropout(x, 0.5, 1, bad_step)});
  msg = message_of([&] { f.run({{x, xt::xarray<double>{{1, 2, 3}}}}); });
  EXPECT_TRUE(contains(msg, "dropout") && contains(msg, "step")) << msg;
}

// ---------------------------------------------------------------- nn: updates, Dropout

// A layer with state of its own, written against the protected helpers.
struct Counter : nn::Module<double> {
  Expr<double> seen;
  explicit Counter(Graph<double>& g) : Module(g) {
    seen = register_buffer("seen", xt::xarray<double>(0.0));
  }
  Expr<double> forward(Expr<double> x) override {
    if (training()) set_update(seen, seen + xgrad::size_of(x, {0}));
    return x;
  }
  void bad(Expr<double> e) { set_update(e, e); }
};

TEST(NnModule, UserLayerCountsRowsThroughItsUpdate) {
  Graph<double> g;
  Counter counter(g);
  auto x = g.input("x", {xgrad::open, 2});
  auto total = xgrad::sum(counter(x));
  auto f = xgrad::compile({total}, {}, counter.updates());
  f.run({{x, xt::xarray<double>{{1, 2}, {3, 4}, {5, 6}}}});
  f.run({{x, xt::xarray<double>{{1, 2}}}});
  EXPECT_EQ(g.value(counter.seen)(), 4.0);
  auto stranger = g.parameter("stranger", xt::xarray<double>(0.0));
  EXPECT_THROW(counter.bad(stranger), xgrad::ValueError);
}

TEST(NnDropout, TrainingRunsDrawANewMaskEachRunAndReplayFromTheStep) {
  Graph<float> g;
  nn::Dropout<float> drop(g, 0.5, 123);
  EXPECT_EQ(drop.p(), 0.5);
  EXPECT_EQ(drop.seed(), 123u);
  auto x = g.input("x", {xgrad::open, 50});
  auto y = drop(x);
  EXPECT_EQ(drop(x), y);  // the same input gives the same node
  ASSERT_EQ(drop.updates().size(), 1u);
  auto f = xgrad::compile({y}, {}, drop.updates());
  xt::xarray<float> xv = xt::ones<float>({4, 50});
  std::vector<xt::xarray<float>> masks;
  for (int run = 0; run < 4; ++run) masks.push_back(f.run({{x, xv}})[0]);
  EXPECT_EQ(g.value(drop.step())(), 4.0f);
  for (int a = 0; a < 4; ++a) {
    for (int b = a + 1; b < 4; ++b) EXPECT_NE(masks[a], masks[b]) << a << " " << b;
  }
  g.value(drop.step())() = 2.0f;  // a resumed run repeats the third mask
  EXPECT_EQ(f.run({{x, xv}})[0], masks[2]);
  EXPECT_EQ(f.plan_count(), 1u);

  // Another input gets its own stream; evaluation mode is the identity.
  auto x2 = g.input("x2", {xgrad::open, 50});
  g.value(drop.step())() = 0.0f;
  EXPECT_NE(xgrad::eval(drop(x2), {{x2, xv}}), xgrad::eval(y, {{x, xv}}));
  drop.eval();
  EXPECT_EQ(drop(x), x);
  // State holds the step, for checkpoints.
  ASSERT_EQ(drop.state().size(), 1u);
  EXPECT_EQ(drop.state()[0].name, "step");
}

TEST(NnDropout, StepCounterWrapsInsteadOfFreezing) {
  Graph<float> g;
  auto c = g.parameter("c", xt::xarray<float>(16777214.0f));
  auto f = xgrad::compile({c}, {}, {{c, nn::wrapping_increment(c)}});
  f.run();
  EXPECT_EQ(g.value(c)(), 16777215.0f);
  f.run();
  EXPECT_EQ(g.value(c)(), 0.0f);
  f.run();
  EXPECT_EQ(g.value(c)(), 1.0f);
  Graph<double> gd;
  auto cd = gd.parameter("c", xt::xarray<double>(16777215.0));
  EXPECT_EQ(xgrad::eval(nn::wrapping_increment(cd))(), 0.0);
  gd.value(cd)() = 41;
  EXPECT_EQ(xgrad::eval(nn::wrapping_increment(cd))(), 42.0);
}

// ---------------------------------------------------------------- batch norm

/// Per channel of x (n, c, ...): mean and biased variance over the other axes.
void channel_stats(const xt::xarray<double>& x, std::vector<double>& mean,
                   std::vector<double>& var) {
  const std::size_t n = x.shape(0), c = x.shape(1), inner = x.size() / (n * c);
  mean.assign(c, 0);
  var.assign(c, 0);
  for (std::size_t k = 0; k < c; ++k) {
    for (std::size_t b = 0; b < n; ++b)
      for (std::size_t i = 0; i < inner; ++i) mean[k] += x.flat((b * c + k) * inner + i);
    mean[k] /= static_cast<double>(n * inner);
    for (std::size_t b = 0; b < n; ++b)
      for (std::size_t i = 0; i < inner; ++i) {
        const double d = x.flat((b * c + k) * inner + i) - mean[k];
        var[k] += d * d;
      }
    var[k] /= static_cast<double>(n * inner);
  }
}

xt::xarray<double> batch(std::size_t n, double shift) {
  xt::xarray<double> x = xt::zeros<double>({n, std::size_t{3}, std::size_t{2}, std::size_t{2}});
  for (std::size_t i = 0; i < x.size(); ++i)
    x.flat(i) = std::sin(0.7 * static_cast<double>(i) + shift) * (1.0 + (i % 3)) + shift;
  return x;
}

TEST(NnBatchNorm2d, TrainingNormalisesWithBatchStatisticsAndUpdatesRunningOnes) {
  Graph<double> g;
  nn::BatchNorm2d<double> bn(g, 3);
  g.value(bn.weight()) = xt::xarray<double>{0.5, 2, -1};
  g.value(bn.bias()) = xt::xarray<double>{0.1, 0, 3};
  auto x = g.input("x", {xgrad::open, 3, 2, 2});
  auto y = bn(x);
  auto f = xgrad::compile({y}, {}, bn.updates());
  const double m = 0.1, eps = 1e-5;
  std::vector<double> rm(3, 0), rv(3, 1), mu, var;
  for (int run = 0; run < 4; ++run) {
    const xt::xarray<double> xv = batch(run == 3 ? 3 : 5, 0.3 * run);
    const auto& out = f.run({{x, xv}})[0];
    channel_stats(xv, mu, var);
    const std::size_t n = xv.size() / 3;
    for (std::size_t i = 0; i < xv.size(); ++i) {
      const std::size_t k = (i / 4) % 3;
      const double w = g.value(bn.weight())(k), b = g.value(bn.bias())(k);
      EXPECT_NEAR(out.flat(i), (xv.flat(i) - mu[k]) / std::sqrt(var[k] + eps) * w + b, 1e-12);
    }
    for (std::size_t k = 0; k < 3; ++k) {
      rm[k] = (1 - m) * rm[k] + m * mu[k];
      rv[k] = (1 - m) * rv[k] + m * var[k] * n / (n - 1.0);
      EXPECT_NEAR(g.value(bn.running_mean())(k), rm[k], 1e-12) << run;
      EXPECT_NEAR(g.value(bn.running_var())(k), rv[k], 1e-12) << run;
    }
    EXPECT_EQ(g.value(bn.num_batches_tracked())(), run + 1.0);
  }
  // Batches of 5, 5, 5, 3: the last one re-planned buffers, no node was added.
  EXPECT_EQ(f.plan_count(), 2u);

  bn.eval();
  const std::size_t nodes = g.size();
  auto ye = bn(x);
  EXPECT_GT(g.size(), nodes);
  EXPECT_EQ(bn.updates().size(), 3u);  // evaluation leaves the training updates alone
  const xt::xarray<double> xv = batch(2, -1.0);
  auto out = xgrad::eval(ye, {{x, xv}});
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const std::size_t k = (i / 4) % 3;
    const double w = g.value(bn.weight())(k), b = g.value(bn.bias())(k);
    EXPECT_NEAR(out.flat(i), (xv.flat(i) - rm[k]) / std::sqrt(rv[k] + eps) * w + b, 1e-12);
  }
}

TEST(NnBatchNorm2d, TrainingOutputGradientsCheck) {
  Graph<double> g;
  nn::BatchNorm2d<double> bn(g, 3, {.momentum = 0.2});
  g.value(bn.weight()) = xt::xarray<double>{0.5, 2, -1};
  g.value(bn.bias()) = xt::xarray<double>{0.1, 0, 3};
  auto z = g.parameter("z", batch(2, 0.5));
  auto loss = xgrad::sum(xgrad::tanh(bn(z)) * xgrad::cos(z));
  std::vector<Expr<double>> xs = bn.parameters();
  xs.push_back(z);
  auto r = xgrad::check_gradients(loss, xs);
  EXPECT_TRUE(r.ok) << r.summary();
}

TEST(NnBatchNorm2d, StateHasPyTorchNamesAndUpdatesFollowModuleOrder) {
  Graph<float> g;
  nn::Sequential<float> model(g);
  model.add<nn::Conv2d>(1, 3, std::array<std::size_t, 2>{3, 3});
  model.add<nn::BatchNorm2d>(3);
  model.add<nn::ReLU>();
  model.add<nn::Dropout>(0.25);
  model.add<nn::BatchNorm2d>(3, nn::BatchNormOptions{.affine = false});
  std::vector<std::string> names;
  for (const auto& s : model.state()) names.push_back(s.name);
  const std::vector<std::string> want{"0.weight",
                                      "0.bias",
                                      "1.weight",
                                      "1.bias",
                                      "1.running_mean",
                                      "1.running_var",
                                      "1.num_batches_tracked",
                                      "3.step",
                                      "4.running_mean",
                                      "4.running_var",
                                      "4.num_batches_tracked"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(model.parameters().size(), 4u);
  auto x = g.input("x", {xgrad::open, 1, 6, 6});
  EXPECT_TRUE(model.updates().empty());
  model(x);
  auto ups = model.updates();
  ASSERT_EQ(ups.size(), 7u);
  EXPECT_EQ(ups[0].target.name(), "1.running_mean");
  EXPECT_EQ(ups[3].target.name(), "3.step");
  EXPECT_EQ(ups[6].target.name(), "4.num_batches_tracked");
  model(x);  // building again replaces the pending updates
  EXPECT_EQ(model.updates().size(), 7u);
}

TEST(NnBatchNorm1d, FeaturesAndSequencesAndErrors) {
  Graph<double> g;
  nn::BatchNorm1d<double> bn(g, 2);
  auto x = g.input("x", {4, 2});
  xt::xarray<double> xv = {{1, 10}, {2, 20}, {3, 40}, {6, 10}};
  auto y0 = bn(x);  // builds the nodes and registers the updates, before updates() is read
  auto f = xgrad::compile({y0}, {}, bn.updates());
  auto y = f.run({{x, xv}})[0];
  for (std::size_t k = 0; k < 2; ++k) {
    double mu = 0, var = 0;
    for (std::size_t b = 0; b < 4; ++b) mu += xv(b, k) / 4;
    for (std::size_t b = 0; b < 4; ++b) var += (xv(b, k) - mu) * (xv(b, k) - mu) / 4;
    EXPECT_NEAR(y(1, k), (xv(1, k) - mu) / std::sqrt(var + 1e-5), 1e-12);
    EXPECT_NEAR(g.value(bn.running_var())(k), 0.9 + 0.1 * var * 4 / 3, 1e-12);
  }
  auto seq = g.input("seq", {2, 2, 3});
  EXPECT_EQ(bn(seq).shape(), (xgrad::Shape{2, 2, 3}));
  EXPECT_THROW(bn(g.input("wrong", {4, 3})), xgrad::ShapeError);
  std::string msg = message_of([&] { bn(g.input("flat", {4})); });
  EXPECT_TRUE(contains(msg, "nn::BatchNorm1d") && contains(msg, "'flat'")) << msg;
  EXPECT_THROW(bn(g.input("one", {1, 2})), xgrad::ValueError);
  EXPECT_THROW({ nn::BatchNorm1d<double> b(g, 0); }, xgrad::ValueError);
  EXPECT_THROW({ nn::BatchNorm1d<double> b(g, 2, {.eps = 0}); }, xgrad::ValueError);
  EXPECT_THROW({ nn::BatchNorm1d<double> b(g, 2, {.momentum = 1.5}); }, xgrad::ValueError);
  nn::BatchNorm2d<double> bn2(g, 2);
  EXPECT_THROW(bn2(x), xgrad::ShapeError);
  // momentum 0 keeps the running statistics, 1 replaces them by the batch's.
  for (double m : {0.0, 1.0}) {
    nn::BatchNorm1d<double> b(g, 2, {.momentum = m, .affine = false});
    EXPECT_TRUE(b.parameters().empty());
    auto yb = b(x);
    auto fb = xgrad::compile({yb}, {}, b.updates());
    fb.run({{x, xv}});
    EXPECT_NEAR(g.value(b.running_mean())(1), m * 20, 1e-12) << m;
    EXPECT_NEAR(g.value(b.running_var())(1), m == 0 ? 1.0 : 200.0, 1e-12) << m;
  }
}

// The explicit loop: a model with Dropout and BatchNorm2d, trained by a compiled step
// that also writes their buffers, then evaluated by a second Function over the same
// parameters.
TEST(NnState, TrainingLoopWithDropoutAndBatchNorm) {
  Graph<double> g;
  nn::Sequential<double> model(g);
  model.add<nn::Conv2d>(1, 4, std::array<std::size_t, 2>{3, 3}, nn::Conv2dOptions{.seed = 1});
  model.add<nn::BatchNorm2d>(4);
  model.add<nn::ReLU>();
  model.add<nn::Dropout>(0.2, 2);
  model.add<nn::Flatten>();
  model.add<nn::Linear>(4 * 4 * 4, 2, nn::LinearOptions{.seed = 3});
  auto x = g.input("x", {xgrad::open, 1, 6, 6});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);

  model.train();
  auto loss = xgrad::cross_entropy(model(x), labels);
  std::vector<Expr<double>> outs{loss};
  for (auto d : xgrad::grad(loss, model.parameters())) outs.push_back(d);
  auto step = xgrad::compile(outs, {}, model.updates());
  model.eval();
  auto predict = xgrad::compile({model(x)});
  xgrad::optim::GradientDescent<double> opt(model.parameters(), 0.1);

  xt::xarray<double> xv = xt::zeros<double>({8, 1, 6, 6});
  std::vector<std::int64_t> yv(8);
  for (std::size_t b = 0; b < 8; ++b) {
    yv[b] = static_cast<std::int64_t>(b % 2);
    for (std::size_t i = 0; i < 36; ++i)
      xv.flat(b * 36 + i) = (b % 2 ? (i % 6 < 3) : (i / 6 < 3)) + 0.1 * std::sin(double(b * i));
  }
  const double first = step.run({{x, xv}, {labels, yv}})[0]();
  for (int it = 0; it < 30; ++it) opt.step(step.run({{x, xv}, {labels, yv}}), 1);
  EXPECT_LT(step.results()[0](), first);
  auto& bn = dynamic_cast<nn::BatchNorm2d<double>&>(model[1]);
  EXPECT_EQ(g.value(bn.num_batches_tracked())(), 31.0);
  EXPECT_EQ(g.value(dynamic_cast<nn::Dropout<double>&>(model[3]).step())(), 31.0);
  EXPECT_TRUE(xt::all(xt::not_equal(g.value(bn.running_mean()), 0.0)));
  const auto& logits = predict.run({{x, xv}})[0];
  int correct = 0;
  for (std::size_t b = 0; b < 8; ++b) correct += (logits(b, 1) > logits(b, 0)) == (yv[b] == 1);
  EXPECT_EQ(correct, 8);
  EXPECT_EQ(step.plan_count(), 1u);
}

}  // namespace
