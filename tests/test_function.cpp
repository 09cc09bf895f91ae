// Compiled execution: what runs, how often it plans, how values are bound, and the seed's
// optimisation examples (1-D descent, 2-D bowl, linear regression) run end to end.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>
#include <xtensor/xtensor.hpp>

#include "seed_problems.hpp"
#include "test_util.hpp"

namespace {

using xgrad::Expr;
using xgrad::Graph;
using xgrad::Shape;

using xgrad_test::contains;

/// Identity op that counts how often its kernel runs.
class CountingIdentity final : public xgrad::Op<double> {
 public:
  mutable int calls = 0;
  std::string_view name() const override { return "counted"; }
  Shape infer_shape(std::span<const Shape> in, const xgrad::Attrs&) const override { return in[0]; }
  void forward(std::span<const xgrad::ConstTensor<double>> in, xgrad::Tensor<double> out,
               const xgrad::Attrs&) const override {
    ++calls;
    std::copy_n(in[0].data, out.size, out.data);
  }
  void backward(const xgrad::Node<double>&, Expr<double>, Expr<double> g, std::span<const bool>,
                std::span<Expr<double>> grads) const override {
    grads[0] = g;
  }
  Expr<double> apply(Expr<double> x) const { return x.graph().apply(*this, {x.id()}); }
};

/// Distinct op nodes the roots depend on (the steps a Function must run).
std::size_t reachable_ops(const Graph<double>& g, const std::vector<Expr<double>>& roots) {
  std::vector<char> seen(g.size(), 0);
  std::vector<xgrad::NodeId> stack;
  for (const auto& r : roots) stack.push_back(r.id());
  std::size_t ops = 0;
  while (!stack.empty()) {
    xgrad::NodeId id = stack.back();
    stack.pop_back();
    if (seen[id]) continue;
    seen[id] = 1;
    const auto& n = g.node(id);
    if (n.kind == xgrad::NodeKind::op) ++ops;
    for (auto in : n.inputs) stack.push_back(in);
  }
  return ops;
}

TEST(FunctionSteps, SharedSubexpressionRunsOnce) {
  CountingIdentity counted;
  Graph<double> g;
  auto x = g.input("x", {3});
  auto s = counted.apply(xgrad::exp(x));  // shared by both outputs
  auto a = s + 1.0;
  auto b = xgrad::sum(s * s) * 2.0;
  auto f = xgrad::compile({a, b});
  // exp, counted, add, mul, sum, mul: each distinct op node is one step.
  EXPECT_EQ(f.num_steps(), reachable_ops(g, {a, b}));
  EXPECT_EQ(f.num_steps(), 6u);

  xt::xarray<double> xv = {0.0, 1.0, -1.0};
  const auto& r = f.run({{x, xv}});
  EXPECT_EQ(counted.calls, 1);
  xt::xarray<double> e = xt::exp(xv);
  EXPECT_TRUE(xt::allclose(r[0], e + 1.0));
  EXPECT_NEAR(r[1](), 2.0 * xt::sum(e * e)(), 1e-12);
  f.run({{x, xv}});
  EXPECT_EQ(counted.calls, 2);

  // The gradient graph reuses forward nodes rather than recomputing them.
  auto dx = xgrad::grad(b, {x})[0];
  auto fg = xgrad::compile({b, dx});
  EXPECT_EQ(fg.num_steps(), reachable_ops(g, {b, dx}));
  counted.calls = 0;
  const auto& rg = fg.run({{x, xv}});
  EXPECT_EQ(counted.calls, 1);
  EXPECT_TRUE(xt::allclose(rg[1], 4.0 * e * e));  // d/dx 2*sum(exp(x)^2)
}

TEST(FunctionSteps, OnlyReachableNodesRun) {
  CountingIdentity counted;
  Graph<double> g;
  auto x = g.input("x", {2});
  auto bad = xgrad::log(x - 10.0).named("bad");  // NaN for these inputs
  auto unrelated = counted.apply(bad);
  auto good = (x * 2.0).named("good");
  (void)unrelated;

  xgrad::CompileOptions checked;
  checked.check_finite = true;
  auto f = xgrad::compile({good}, checked);
  EXPECT_EQ(f.num_steps(), 1u);
  xt::xarray<double> xv = {1.0, 2.0};
  EXPECT_NO_THROW(f.run({{x, xv}}));
  EXPECT_EQ(f.results()[0], (xt::xarray<double>{2.0, 4.0}));
  EXPECT_EQ(counted.calls, 0);

  // An input the outputs do not use may be bound and is ignored; it need not be bound.
  auto other = g.input("other", {5});
  xt::xarray<double> ov = xt::zeros<double>({5});
  EXPECT_NO_THROW(f.run({{x, xv}, {other, ov}}));
  EXPECT_EQ(f.inputs().size(), 1u);
  EXPECT_EQ(f.inputs()[0], x);

  // Compiling the failing node as well does run it.
  auto f2 = xgrad::compile({good, bad}, checked);
  EXPECT_THROW(f2.run({{x, xv}}), xgrad::ValueError);
}

TEST(FunctionPlan, PlanCountFollowsBatchSize) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 2});
  auto w = g.parameter("w", xt::xarray<double>{1.0, -1.0});
  auto y = xgrad::matmul(X, w);
  auto loss = xgrad::mean(xgrad::square(y));
  auto dw = xgrad::grad(loss, {w})[0];
  auto f = xgrad::compile({y, loss, dw});
  EXPECT_EQ(f.plan_count(), 0u);

  auto check = [&](const xt::xarray<double>& xv) {
    const auto& r = f.run({{X, xv}});
    std::size_t n = xv.shape()[0];
    xt::xarray<double> yh = xt::zeros<double>({n});
    double l = 0, d0 = 0, d1 = 0;
    for (std::size_t i = 0; i < n; ++i) {
      yh(i) = xv(i, 0) - xv(i, 1);
      l += yh(i) * yh(i) / static_cast<double>(n);
      d0 += 2.0 * yh(i) * xv(i, 0) / static_cast<double>(n);
      d1 += 2.0 * yh(i) * xv(i, 1) / static_cast<double>(n);
    }
    ASSERT_EQ(r[0].shape(0), n);
    EXPECT_TRUE(xt::allclose(r[0], yh));
    EXPECT_NEAR(r[1](), l, 1e-12);
    EXPECT_NEAR(r[2](0), d0, 1e-12);
    EXPECT_NEAR(r[2](1), d1, 1e-12);
  };
  xt::xarray<double> b3 = {{1, 2}, {3, 1}, {0, 5}};
  xt::xarray<double> b3b = {{2, 2}, {1, 1}, {4, 0}};
  xt::xarray<double> b5 = {{1, 0}, {0, 1}, {2, 2}, {3, -1}, {-2, 4}};
  check(b3);
  EXPECT_EQ(f.plan_count(), 1u);
  check(b3b);
  check(b3);
  EXPECT_EQ(f.plan_count(), 1u);  // same shapes: no re-plan
  check(b5);
  EXPECT_EQ(f.plan_count(), 2u);
  check(b5);
  EXPECT_EQ(f.plan_count(), 2u);
  check(b3);
  EXPECT_EQ(f.plan_count(), 3u);
  EXPECT_GT(f.workspace_bytes(), 0u);
}

TEST(FunctionEval, ConvenienceEvaluatesOnce) {
  Graph<double> g;
  auto x = g.input("x", {xgrad::open});
  auto r = xgrad::eval(x * 2.0 + 1.0, {{x, xt::xarray<double>{0.0, 1.5, -1.0}}});
  EXPECT_EQ(r, (xt::xarray<double>{1.0, 4.0, -1.0}));
  // Constant-only expressions need no feeds.
  auto c = g.constant(xt::xarray<double>{1.0, 2.0}, "c");
  EXPECT_EQ(xgrad::eval(c), (xt::xarray<double>{1.0, 2.0}));
  auto p = g.parameter("p", xt::xarray<double>{3.0, 4.0});
  EXPECT_DOUBLE_EQ(xgrad::eval(xgrad::norm(p))(), 5.0);
}

TEST(FunctionBinding, XtensorVectorAndScalar) {
  Graph<double> g;
  auto A = g.input("A", {xgrad::open, 2});
  auto v = g.input("v", {xgrad::open});
  auto s = g.input("s", {});
  auto out = xgrad::matmul(A, v, true) * s;  // A^T v scaled
  auto f = xgrad::compile({out});

  xt::xtensor<double, 2> Av = {{1, 2}, {3, 4}, {5, 6}};
  std::vector<double> vv = {1, 0, -1};
  const auto& r = f.run({{A, Av}, {v, vv}, {s, 2.0}});
  EXPECT_EQ(r[0], (xt::xarray<double>{-8, -8}));
  EXPECT_EQ(&f.results(), &r);
  EXPECT_EQ(f.results()[0], r[0]);

  // Values are borrowed: changing them between runs is seen by the next run.
  vv[2] = 0;
  f.run({{A, Av}, {v, vv}, {s, 0.5}});
  EXPECT_EQ(f.results()[0], (xt::xarray<double>{0.5, 1.0}));
  EXPECT_EQ(f.plan_count(), 1u);

  // Float graphs bind float vectors and scalars the same way.
  Graph<float> gf;
  auto xf = gf.input("x", {3});
  auto sf = gf.input("s", {});
  std::vector<float> xv = {1.f, 2.f, 3.f};
  auto rf = xgrad::eval(xgrad::sum(xf) * sf, {{xf, xv}, {sf, 2.0f}});
  EXPECT_FLOAT_EQ(rf(), 12.f);
}

// An empty batch (whose container may report a null data pointer) is a binding like any
// other: sums are 0, products empty; forgetting an input is still reported.
TEST(FunctionBinding, EmptyBatchIsBound) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 2});
  auto x = g.input("x", {xgrad::open});
  auto w = g.constant(xt::xarray<double>{1.0, 2.0});
  auto f = xgrad::compile({xgrad::sum(x), xgrad::matmul(X, w)});
  std::vector<double> none;
  const auto& r = f.run({{x, none}, {X, xt::xarray<double>::from_shape({0, 2})}});
  EXPECT_EQ(r[0](), 0.0);
  EXPECT_EQ(r[1].size(), 0u);
  EXPECT_THROW(f.run({{x, none}}), xgrad::BindingError);
  std::vector<double> one = {4.0};
  EXPECT_EQ(f.run({{x, one}, {X, xt::xarray<double>{{1.0, 1.0}}}})[1](0), 3.0);
}

// An input may declare a float dtype other than the graph's; it must be converted (or
// rejected when the input is declared), never reinterpreted.
TEST(FunctionBinding, FloatInputOfOtherPrecisionIsRejected) {
  // A graph computes in one precision; a float input of the other would silently round
  // (or read the wrong width), so the declaration itself is refused.
  Graph<double> g;
  EXPECT_THROW(g.input("x", {3}, xgrad::DType::float32), xgrad::ValueError);
  Graph<float> gf;
  EXPECT_THROW(gf.input("x", {2}, xgrad::DType::float64), xgrad::ValueError);
  try {
    g.input("pixels", {3}, xgrad::DType::float32);
  } catch (const xgrad::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("pixels"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("float32"), std::string::npos) << e.what();
  }
}

TEST(FunctionBinding, IntegerLabelsAreConverted) {
  Graph<double> g;
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto oh = xgrad::one_hot(labels, 3);
  std::vector<std::int64_t> lv = {2, 0, 1};
  auto r = xgrad::eval(oh, {{labels, lv}});
  EXPECT_EQ(r, (xt::xarray<double>{{0, 0, 1}, {1, 0, 0}, {0, 1, 0}}));
  xt::xarray<std::int32_t> l32 = {1, 1};
  EXPECT_EQ(xgrad::eval(oh, {{labels, l32}}), (xt::xarray<double>{{0, 1, 0}, {0, 1, 0}}));
}

TEST(FunctionOutputs, ResultsEqualRunReturnAndAccessors) {
  Graph<double> g;
  auto x = g.input("x", {2});
  auto p = g.parameter("p", xt::xarray<double>{5.0, 6.0});
  auto y = x + p;
  // Outputs may be an input, a parameter, or the same node twice.
  auto f = xgrad::compile({y, x, p, y});
  xt::xarray<double> xv = {1.0, 2.0};
  const auto& r = f.run({{x, xv}});
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(&r, &f.results());
  EXPECT_EQ(r[0], (xt::xarray<double>{6.0, 8.0}));
  EXPECT_EQ(r[1], xv);
  EXPECT_EQ(r[2], (xt::xarray<double>{5.0, 6.0}));
  EXPECT_EQ(r[3], r[0]);
  ASSERT_EQ(f.outputs().size(), 4u);
  EXPECT_EQ(f.outputs()[0], y);
  EXPECT_EQ(f.outputs()[2], p);
  EXPECT_EQ(f.num_steps(), 1u);

  // A moved Function keeps working.
  auto moved = std::move(f);
  EXPECT_EQ(moved.run({{x, xv}})[0], (xt::xarray<double>{6.0, 8.0}));
}

// The seed's linear regression: X with a ones column, y = X @ [1, 2] + 3,
// loss = sum((y - X beta)^2) / 2, 5000 steps of beta -= 0.01 * grad from [10.1, 15.1, -6.5].
TEST(FunctionSeed, LinearRegressionConverges) {
  xgrad_test::SeedRegression s;
  const auto &X = s.X, &y = s.y, &beta0 = s.beta0;
  for (std::size_t i = 0; i < 4; ++i) ASSERT_EQ(y(i), X(i, 0) + 2 * X(i, 1) + 3);

  // First gradient against the hand formula -X^T (y - X beta0).
  const auto& r0 = s.run();
  double l0 = 0;
  xt::xarray<double> hand = xt::zeros<double>({3});
  for (std::size_t i = 0; i < 4; ++i) {
    double res = y(i);
    for (std::size_t j = 0; j < 3; ++j) res -= X(i, j) * beta0(j);
    l0 += res * res / 2;
    for (std::size_t j = 0; j < 3; ++j) hand(j) -= X(i, j) * res;
  }
  EXPECT_NEAR(r0[0](), l0, 1e-12 * l0);
  ASSERT_EQ(r0[1].shape(), (std::vector<std::size_t>{3}));
  for (std::size_t j = 0; j < 3; ++j) EXPECT_NEAR(r0[1](j), hand(j), 1e-12) << "j=" << j;

  for (int it = 0; it < 5000; ++it) {
    const auto& r = s.run();
    auto& b = s.g.value(s.beta);
    for (std::size_t j = 0; j < 3; ++j) b(j) -= 0.01 * r[1](j);
  }
  const auto& b = s.g.value(s.beta);
  EXPECT_NEAR(b(0), 1.0, 1e-3);
  EXPECT_NEAR(b(1), 2.0, 1e-3);
  EXPECT_NEAR(b(2), 3.0, 1e-3);
  EXPECT_LT(s.run()[0](), 1e-6);
  EXPECT_EQ(s.f.plan_count(), 1u);
}

// The seed's 1-D example: f(x) = x^2 + 2x + 3 from x0 = 1.5, learning rate 1e-2, stop
// once |f'(x)| <= 1e-5.
TEST(FunctionSeed, OneVariableDescent) {
  Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>(1.5));
  auto f = xgrad::pow(x, 2.0) + 2.0 * x + 3.0;
  auto df = xgrad::grad(f, {x})[0];
  auto step = xgrad::compile({f, df});
  double d = step.run()[1]();
  EXPECT_DOUBLE_EQ(d, 5.0);  // 2 * 1.5 + 2
  int it = 0;
  while (std::abs(d) > 1e-5 && it < 100000) {
    g.value(x)() -= 1e-2 * d;
    d = step.run()[1]();
    ++it;
  }
  EXPECT_LE(std::abs(d), 1e-5);
  EXPECT_LT(it, 2000);
  EXPECT_NEAR(g.value(x)(), -1.0, 1e-5);
  EXPECT_NEAR(step.run()[0](), 2.0, 1e-9);
}

TEST(FunctionSeed, TwoVariableBowl) {
  xgrad_test::SeedBowl bowl(1.5, -2.0);
  auto& g = bowl.g;
  auto &x = bowl.x, &y = bowl.y;
  auto& step = bowl.fn;
  auto norm = [&] {
    const auto& r = step.run();
    return std::hypot(r[1](), r[2]());
  };
  double n = norm();
  int it = 0;
  while (n >= 1e-5 && it < 100000) {
    g.value(x)() -= 0.05 * step.results()[1]();
    g.value(y)() -= 0.05 * step.results()[2]();
    n = norm();
    ++it;
  }
  EXPECT_LT(n, 1e-5);
  EXPECT_NEAR(g.value(x)(), 0.0, 1e-5);
  EXPECT_NEAR(g.value(y)(), 0.0, 1e-5);
  EXPECT_NEAR(step.results()[0](), 0.0, 1e-10);
}

TEST(FunctionCheckFinite, NamesNodeAndOp) {
  Graph<double> g;
  auto x = g.input("x", {2});
  auto lx = xgrad::log(x).named("log_of_x");
  auto total = xgrad::sum(lx);
  xt::xarray<double> xv = {1.0, -1.0};

  xgrad::CompileOptions opts;
  opts.check_finite = true;
  auto f = xgrad::compile({total}, opts);
  try {
    f.run({{x, xv}});
    ADD_FAILURE() << "expected ValueError";
  } catch (const xgrad::ValueError& e) {
    std::string msg = e.what();
    EXPECT_TRUE(contains(msg, "'log_of_x'")) << msg;
    EXPECT_TRUE(contains(msg, "log")) << msg;
    EXPECT_TRUE(contains(msg, "check_finite")) << msg;
    EXPECT_TRUE(contains(msg, "flat index 1")) << msg;
  }
  // Finite inputs pass, and the Function stays usable after the error.
  xt::xarray<double> ok = {1.0, std::exp(1.0)};
  EXPECT_NEAR(f.run({{x, ok}})[0](), 1.0, 1e-12);

  // Without the check the NaN simply flows through.
  auto unchecked = xgrad::compile({total});
  EXPECT_TRUE(std::isnan(unchecked.run({{x, xv}})[0]()));
}

}  // namespace
