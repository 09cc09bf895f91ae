// Graph construction: inputs, parameters, constants, node descriptions, merging of
// identical nodes, constant folding, algebraic identities, and very deep chains.
#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <random>
#include <string>
#include <utility>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "../src/topo.hpp"  // execution_order, topo_order
#include "test_util.hpp"

namespace {

using xgrad::Expr;
using xgrad::Graph;
using xgrad::NodeKind;
using xgrad::Shape;

using xgrad_test::contains;

TEST(GraphInput, OpenLeadingDimension) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  EXPECT_EQ(X.shape(), (Shape{xgrad::open, 3}));
  EXPECT_EQ(X.rank(), 2u);
  EXPECT_EQ(X.name(), "X");
  EXPECT_EQ(X.node().kind, NodeKind::input);
  EXPECT_EQ(X.node().dtype, xgrad::DType::float64);
  EXPECT_EQ(xgrad::shape_str(X.shape()), "(?, 3)");

  // Ops keep the open dimension in their static shapes.
  auto rows = xgrad::sum(X, {1});
  EXPECT_EQ(rows.shape(), (Shape{xgrad::open}));
  auto w = g.parameter("w", xt::xarray<double>{1.0, 2.0, 3.0});
  auto y = xgrad::matmul(X, w);
  EXPECT_EQ(y.shape(), (Shape{xgrad::open}));

  // The same graph runs with any batch size.
  auto f = xgrad::compile({y});
  xt::xarray<double> x2 = {{1, 0, 0}, {0, 1, 1}};
  xt::xarray<double> x3 = {{1, 1, 1}, {0, 0, 1}, {2, 0, 0}};
  EXPECT_EQ(f.run({{X, x2}})[0], (xt::xarray<double>{1, 5}));
  EXPECT_EQ(f.run({{X, x3}})[0], (xt::xarray<double>{6, 3, 2}));
}

TEST(GraphInput, IntegerDtypeIsRecorded) {
  Graph<double> g;
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  EXPECT_EQ(labels.node().dtype, xgrad::DType::int64);
  EXPECT_STREQ(xgrad::dtype_name(xgrad::DType::int64), "int64");
  EXPECT_STREQ(xgrad::dtype_name(xgrad::DType::float32), "float32");
}

TEST(GraphParameter, OwnsItsValueAndNextRunSeesChanges) {
  Graph<double> g;
  auto p = g.parameter("w", xt::xarray<double>{1.0, 2.0});
  EXPECT_EQ(p.node().kind, NodeKind::parameter);
  EXPECT_EQ(p.shape(), (Shape{2}));
  EXPECT_EQ(g.value(p), (xt::xarray<double>{1.0, 2.0}));

  auto f = xgrad::compile({xgrad::sum(p * p)});
  EXPECT_DOUBLE_EQ(f.run()[0](), 5.0);

  g.value(p)(0) = 3.0;  // in-place update, as an optimizer does
  EXPECT_DOUBLE_EQ(f.run()[0](), 13.0);
  EXPECT_EQ(f.plan_count(), 1u);

  // A new shape is picked up (and re-planned) at the next run.
  g.value(p) = xt::xarray<double>{1.0, 1.0, 1.0};
  EXPECT_DOUBLE_EQ(f.run()[0](), 3.0);
  EXPECT_EQ(f.plan_count(), 2u);
}

TEST(GraphParameter, ValueOfAnInputOrOpIsAnError) {
  Graph<double> g;
  auto x = g.input("x", {2});
  auto y = x * x;
  EXPECT_THROW(g.value(x), xgrad::GraphError);
  EXPECT_THROW(g.value(y), xgrad::GraphError);
}

TEST(GraphConstant, HoldsValueAndScalarsAreInterned) {
  Graph<double> g;
  auto c = g.constant(xt::xarray<double>{1.0, 2.0, 3.0}, "c");
  EXPECT_EQ(c.node().kind, NodeKind::constant);
  EXPECT_TRUE(g.is_constant(c.id()));
  EXPECT_EQ(c.shape(), (Shape{3}));
  EXPECT_EQ(g.value(c), (xt::xarray<double>{1.0, 2.0, 3.0}));

  auto two = g.scalar(2.0);
  EXPECT_EQ(g.scalar(2.0), two);
  EXPECT_EQ(g.constant(xt::xarray<double>(2.0)), two);  // an unnamed 0-d constant
  EXPECT_FALSE(g.scalar(3.0) == two);
  EXPECT_TRUE(g.is_scalar_constant(two.id(), 2.0));
  EXPECT_FALSE(g.is_scalar_constant(two.id(), 3.0));
  EXPECT_TRUE(two.shape().empty());

  auto x = g.input("x", {3});
  EXPECT_EQ(xgrad::eval(x * c, {{x, xt::xarray<double>{1, 1, 2}}}), (xt::xarray<double>{1, 2, 6}));
}

TEST(GraphDescribe, NamesKindsAndShapes) {
  Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto w = g.parameter("weights", xt::xarray<double>{1, 2, 3});
  auto c = g.constant(xt::xarray<double>{{1, 2}, {3, 4}}, "table");
  auto y = xgrad::matmul(X, w);

  EXPECT_EQ(g.describe(X.id()), "'X' (input, shape (?, 3))");
  EXPECT_EQ(g.describe(w.id()), "'weights' (parameter, shape (3,))");
  EXPECT_EQ(g.describe(c.id()), "'table' (constant, shape (2, 2))");
  // Unnamed op nodes are referred to by id.
  EXPECT_EQ(g.describe(y.id()), "#" + std::to_string(y.id()) + " (matmul, shape (?,))");
  y.named("pred");
  EXPECT_EQ(y.name(), "pred");
  EXPECT_EQ(g.describe(y.id()), "'pred' (matmul, shape (?,))");
  g.set_name(y.id(), "prediction");
  EXPECT_TRUE(contains(g.describe(y.id()), "'prediction'"));

  EXPECT_THROW(g.describe(static_cast<xgrad::NodeId>(g.size() + 5)), xgrad::GraphError);
}

TEST(GraphMerge, IdenticalOpNodesAreMerged) {
  Graph<double> g;
  auto x = g.input("x", {3});
  auto y = g.input("y", {3});
  auto a = x * y;
  std::size_t n = g.size();
  auto b = x * y;
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.id(), b.id());
  EXPECT_EQ(g.size(), n);  // no node was added

  EXPECT_EQ(xgrad::sin(x), xgrad::sin(x));
  EXPECT_EQ(xgrad::sum(x * y + x), xgrad::sum(x * y + x));
  EXPECT_EQ(x + 1.0, x + 1.0);  // the scalar 1 is interned, so the add merges too

  // Different attributes or operands make different nodes.
  auto m = g.input("m", {2, 3});
  EXPECT_FALSE(xgrad::sum(m, {0}) == xgrad::sum(m, {1}));
  EXPECT_FALSE(xgrad::sum(m, {0}) == xgrad::sum(m, {0}, true));
  EXPECT_FALSE(xgrad::pow(x, 3.0) == xgrad::pow(x, 4.0));
  EXPECT_FALSE(x * y == x + y);
  EXPECT_FALSE(xgrad::sin(x) == xgrad::sin(y));

  // Inputs and parameters are never merged, even with equal names.
  EXPECT_FALSE(g.input("x", {3}) == x);
  auto p1 = g.parameter("p", xt::xarray<double>{1.0});
  auto p2 = g.parameter("p", xt::xarray<double>{1.0});
  EXPECT_FALSE(p1 == p2);
}

TEST(GraphFold, ConstantsFoldAtBuildTime) {
  Graph<double> g;
  auto six = g.scalar(2.0) * g.scalar(3.0);
  EXPECT_EQ(six.node().kind, NodeKind::constant);
  EXPECT_TRUE(g.is_scalar_constant(six.id(), 6.0));
  EXPECT_EQ(six, g.scalar(6.0));  // folded results are interned scalars too

  auto c1 = g.constant(xt::xarray<double>{1, 2, 3}, "c1");
  auto c2 = g.constant(xt::xarray<double>{10, 20, 30}, "c2");
  auto s = c1 + c2;
  ASSERT_TRUE(g.is_constant(s.id()));
  EXPECT_EQ(g.value(s), (xt::xarray<double>{11, 22, 33}));

  auto e = xgrad::exp(g.scalar(0.0)) + xgrad::sum(c1);
  ASSERT_TRUE(g.is_constant(e.id()));
  EXPECT_DOUBLE_EQ(g.value(e)(), 7.0);

  auto m = xgrad::matmul(g.constant(xt::xarray<double>{{1, 2}, {3, 4}}, "A"),
                         g.constant(xt::xarray<double>{1, 1}, "v"));
  ASSERT_TRUE(g.is_constant(m.id()));
  EXPECT_EQ(g.value(m), (xt::xarray<double>{3, 7}));

  // Anything that involves an input or a parameter is not folded.
  auto p = g.parameter("p", xt::xarray<double>(1.0));
  EXPECT_FALSE(g.is_constant((p * 3.0).id()));
}

TEST(GraphSimplify, MultiplicativeAndAdditiveIdentities) {
  Graph<double> g;
  auto x = g.input("x", {3});
  EXPECT_EQ(x * 1.0, x);
  EXPECT_EQ(1.0 * x, x);
  EXPECT_EQ(x + 0.0, x);
  EXPECT_EQ(0.0 + x, x);
  EXPECT_EQ(x - 0.0, x);
  EXPECT_EQ(x / 1.0, x);
  EXPECT_EQ(xgrad::pow(x, 1.0), x);
  EXPECT_EQ(-(-x), x);
  EXPECT_EQ(xgrad::neg(xgrad::neg(x)), x);
}

TEST(GraphSimplify, TimesZeroGivesZeros) {
  Graph<double> g;
  auto x = g.input("x", {3});
  auto z = x * 0.0;
  ASSERT_EQ(z.node().kind, NodeKind::constant);
  EXPECT_EQ(z.shape(), (Shape{3}));
  EXPECT_EQ(g.value(z), (xt::xarray<double>{0, 0, 0}));
  auto z2 = 0.0 * x;
  ASSERT_TRUE(g.is_constant(z2.id()));
  EXPECT_EQ(g.value(z2), (xt::xarray<double>{0, 0, 0}));

  // With an open dimension the zeros take the run-time shape.
  auto b = g.input("b", {xgrad::open, 2});
  auto zb = b * 0.0;
  ASSERT_EQ(zb.node().kind, NodeKind::op);
  EXPECT_EQ(zb.node().op->name(), "zeros_like");
  EXPECT_EQ(zb.shape(), b.shape());
  xt::xarray<double> bv = {{1, 2}, {3, 4}, {5, 6}};
  auto r = xgrad::eval(zb, {{b, bv}});
  EXPECT_EQ(r, (xt::xarray<double>(xt::zeros<double>({3, 2}))));
}

TEST(GraphSimplify, NestedScalarProductsMerge) {
  Graph<double> g;
  auto x = g.input("x", {3});
  auto a = 2.0 * (3.0 * x);
  auto b = 6.0 * x;
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.node().kind, NodeKind::op);
  EXPECT_EQ(a.node().op->name(), "mul");
  EXPECT_TRUE(g.is_scalar_constant(a.node().inputs[0], 6.0));
  EXPECT_EQ(a.node().inputs[1], x.id());
  // Scalars on the right move to the left first.
  EXPECT_EQ((x * 3.0) * 2.0, b);
  EXPECT_EQ(xgrad::eval(a, {{x, xt::xarray<double>{1, 2, 3}}}), (xt::xarray<double>{6, 12, 18}));
}

TEST(GraphSimplify, IdentityKeepsBroadcastingSemantics) {
  Graph<double> g;
  // x (0-d) + zeros(3) must still broadcast to (3,): it is not an identity.
  auto x = g.input("x", {});
  auto z = g.constant(xt::xarray<double>{0, 0, 0}, "z");
  auto s = x + z;
  EXPECT_EQ(s.shape(), (Shape{3}));
  EXPECT_EQ(xgrad::eval(s, {{x, 2.0}}), (xt::xarray<double>{2, 2, 2}));
}

// v = tanh(0.9*v + 0.1) from x, one mul, add and tanh per step: kDeepSteps steps chain
// 200001 op nodes. Every phase must avoid recursion per node and stay fast.
constexpr int kDeepSteps = 66667;

struct Chain {
  Graph<double> g;
  Expr<double> x, v;
  explicit Chain(int steps, double x0 = 0.3) {
    x = g.parameter("x", xt::xarray<double>(x0));
    v = x;
    for (int i = 0; i < steps; ++i) v = xgrad::tanh(0.9 * v + 0.1);
  }
};

/// The chain's value and derivative by hand.
std::pair<double, double> chain_by_hand(int steps, double x0 = 0.3) {
  double v = x0, d = 1.0;
  for (int i = 0; i < steps; ++i) {
    v = std::tanh(0.9 * v + 0.1);
    d *= 0.9 * (1.0 - v * v);
  }
  return {v, d};
}

/// CPU seconds used by this thread: unlike wall time, not inflated by other processes
/// (parallel builds, other test binaries) competing for the cores.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

TEST(GraphDeep, ChainOf200000NodesBuildsDifferentiatesAndCompiles) {
  double t0 = thread_cpu_seconds();
  Chain c(kDeepSteps);
  EXPECT_GE(c.g.size(), 200000u);
  auto dx = xgrad::grad(c.v, {c.x})[0];
  auto f = xgrad::compile({c.v, dx});
  EXPECT_GE(f.num_steps(), 200000u);
  double secs = thread_cpu_seconds() - t0;
#if defined(NDEBUG) && !defined(XGRAD_TEST_ASAN)
  EXPECT_LT(secs, 3.0) << "build + grad + compile took " << secs << " s of CPU time";
#else
  (void)secs;
#endif
}

TEST(GraphDeep, ChainOf200000NodesRuns) {
  double t0 = thread_cpu_seconds();
  Chain c(kDeepSteps);
  auto dx = xgrad::grad(c.v, {c.x})[0];
  auto f = xgrad::compile({c.v, dx});
  const auto& r = f.run();
  auto [hv, hd] = chain_by_hand(kDeepSteps);
  EXPECT_NEAR(r[0](), hv, 1e-12);
  EXPECT_NEAR(r[1](), hd, 1e-300);  // the chain-rule product underflows to 0
  f.run();
  EXPECT_NEAR(f.results()[0](), hv, 1e-12);
  double secs = thread_cpu_seconds() - t0;
#if defined(NDEBUG) && !defined(XGRAD_TEST_ASAN)
  EXPECT_LT(secs, 3.0) << "build + grad + compile + 2 runs took " << secs << " s of CPU time";
#else
  (void)secs;
#endif
}

TEST(GraphDeep, DeepChainValuesAndGradient) {
  // Deep enough to need an iterative walk everywhere, short enough to run in milliseconds.
  Chain deep(3000);
  auto fd = xgrad::compile({deep.v, xgrad::grad(deep.v, {deep.x})[0]});
  auto [hv, hd] = chain_by_hand(3000);
  EXPECT_NEAR(fd.run()[0](), hv, 1e-12);
  EXPECT_NEAR(fd.results()[1](), hd, 1e-300);

  // A short chain has a gradient that is not negligible.
  Chain c(20);
  auto f = xgrad::compile({c.v, xgrad::grad(c.v, {c.x})[0]});
  auto [sv, sd] = chain_by_hand(20);
  EXPECT_NEAR(f.run()[0](), sv, 1e-14);
  EXPECT_NEAR(f.results()[1](), sd, 1e-13 * std::abs(sd));
  EXPECT_GT(std::abs(sd), 1e-8);
}

// The order a Function executes in, from Boost's topological sort, on random graphs with
// shared operands, several roots and nodes the roots do not need: exactly the nodes the
// roots reach, each after its operands (the reachability sweep's id order, which any valid
// order of these graphs equals since the sort visits nodes in id order).
TEST(GraphOrder, ExecutionOrderIsTopologicalOverTheReachableNodes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    Graph<double> g;
    std::vector<Expr<double>> nodes;
    for (int i = 0; i < 3; ++i) nodes.push_back(g.parameter("p" + std::to_string(i), 1.0 + i));
    const int count = 5 + trial * 7;
    for (int i = 0; i < count; ++i) {
      std::uniform_int_distribution<std::size_t> pick(0, nodes.size() - 1);
      Expr<double> a = nodes[pick(rng)], b = nodes[pick(rng)];
      switch (rng() % 3) {
        case 0:
          nodes.push_back(xgrad::tanh(a + b));
          break;
        case 1:
          nodes.push_back(xgrad::sin(a) * b);
          break;
        default:
          nodes.push_back(xgrad::exp(a - 2.0 * b));
          break;
      }
    }
    std::vector<xgrad::NodeId> roots;
    for (int r = 0; r < 1 + trial % 4; ++r) roots.push_back(nodes[rng() % nodes.size()].id());
    const auto order = xgrad::detail::execution_order(g, std::span<const xgrad::NodeId>(roots));
    EXPECT_EQ(order, xgrad::detail::topo_order(g, std::span<const xgrad::NodeId>(roots)));
    std::vector<int> pos(g.size(), -1);
    for (std::size_t k = 0; k < order.size(); ++k) {
      ASSERT_EQ(pos[order[k]], -1) << "node " << order[k] << " listed twice";
      pos[order[k]] = static_cast<int>(k);
    }
    std::vector<bool> needed(g.size(), false);
    for (xgrad::NodeId r : roots) needed[r] = true;
    for (std::size_t id = g.size(); id-- > 0;) {
      if (!needed[id]) continue;
      for (xgrad::NodeId in : g.node(static_cast<xgrad::NodeId>(id)).inputs) needed[in] = true;
    }
    for (std::size_t id = 0; id < g.size(); ++id) {
      EXPECT_EQ(pos[id] >= 0, needed[id]) << "node " << id;
      if (pos[id] < 0) continue;
      for (xgrad::NodeId in : g.node(static_cast<xgrad::NodeId>(id)).inputs)
        EXPECT_LT(pos[in], pos[id]) << "node " << id << " before its operand " << in;
    }
  }
}

TEST(GraphExpr, InvalidHandle) {
  Expr<double> e;
  EXPECT_FALSE(e.valid());
  EXPECT_FALSE(static_cast<bool>(e));
  EXPECT_THROW(e.graph(), xgrad::GraphError);
  EXPECT_THROW(e.shape(), xgrad::GraphError);
  Graph<double> g;
  EXPECT_THROW(g.expr(42), xgrad::GraphError);
  EXPECT_THROW(g.node(42), xgrad::GraphError);
}

TEST(GraphFloat, SinglePrecisionGraphsWork) {
  Graph<float> g;
  auto x = g.input("x", {xgrad::open});
  auto y = xgrad::sum(2.0f * x * x);
  auto dx = xgrad::grad(y, {x})[0];
  xt::xarray<float> xv = {1.f, -2.f, 0.5f};
  auto f = xgrad::compile({y, dx});
  const auto& r = f.run({{x, xv}});
  EXPECT_FLOAT_EQ(r[0](), 10.5f);
  EXPECT_EQ(r[1], (xt::xarray<float>{4.f, -8.f, 2.f}));
}

}  // namespace
