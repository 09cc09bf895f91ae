// Gradients of every differentiable op against central differences in double precision:
// broadcast operands (gradients summed back to the operand's shape), open batch
// dimensions bound at run time, second derivatives (gradcheck of the gradient), the
// documented subgradients at non-differentiable points, and the grad() API itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace {

// The ops whose gradients this file checks, by table (include/xgrad/ops/). A row added
// to a table fails this count until its checks are here; elementwise rows are also
// matched by name against the cases below (EveryElementwiseOpHasCases). The checks of
// outer, batched matmul, stack, split and the losses with a Reduction sit in
// test_ops_linalg_shape.cpp and test_ops_losses.cpp; hand-derived gradients of gelu,
// stop_gradient and where, and the reductions from min on, in test_ops_math.cpp.
static_assert(XGRAD_TEST_ROWS(XGRAD_ELEMENTWISE_OPS) == 33, "elementwise op without checks");
static_assert(XGRAD_TEST_ROWS(XGRAD_LINALG_OPS) == 3, "linear-algebra op without checks");
static_assert(XGRAD_TEST_ROWS(XGRAD_REDUCE_OPS) == 12, "reduction without checks");
static_assert(XGRAD_TEST_ROWS(XGRAD_SHAPE_OPS) == 10, "shape op without checks");
static_assert(XGRAD_TEST_ROWS(XGRAD_SLICE_OPS) == 4, "slice or join without checks");
static_assert(XGRAD_TEST_ROWS(XGRAD_NN_OPS) == 9, "nn op without checks");

using xgrad::Dim;
using E = xgrad::Expr<double>;
using G = xgrad::Graph<double>;
using A = xt::xarray<double>;
using I64 = xt::xarray<std::int64_t>;
using Sh = std::vector<std::size_t>;
constexpr Dim kOpen = xgrad::open;

/// A union of intervals values are drawn from, to keep away from kinks and poles.
struct Domain {
  std::vector<std::pair<double, double>> parts;
};
const Domain kAny{{{-1.5, 1.5}}};
const Domain kPos{{{0.5, 2.0}}};
const Domain kAwayFromZero{{{-1.5, -0.3}, {0.3, 1.5}}};
const Domain kAwayFromHalf{{{-1.5, -0.7}, {-0.3, 0.3}, {0.7, 1.5}}};  // clamp(-0.5, 0.5)
const Domain kSmall{{{-0.05, 0.05}}};

A rnd(const Sh& s, std::mt19937& gen, const Domain& d = kAny) {
  std::uniform_int_distribution<std::size_t> pick(0, d.parts.size() - 1);
  A a = A::from_shape(s);
  for (double& e : a) {
    auto [lo, hi] = d.parts[pick(gen)];
    e = std::uniform_real_distribution<double>(lo, hi)(gen);
  }
  return a;
}

Sh shape_of(const A& a) { return Sh(a.shape().begin(), a.shape().end()); }

/// The differentiated leaves of one check: parameters, and inputs with the values bound to
/// them (kept at stable addresses, since feeds borrow them).
struct Leaves {
  std::vector<E> xs;
  std::vector<Sh> shapes;  // run-time shapes of xs
  std::deque<A> values;
  std::deque<I64> indices;
  std::vector<xgrad::Feed<double>> feeds;

  /// A parameter holding v.
  E param(G& g, const std::string& name, A v) {
    shapes.push_back(shape_of(v));
    xs.push_back(g.parameter(name, std::move(v)));
    return xs.back();
  }
  /// An input declared with decl (may hold open dimensions) and bound to v.
  E input(G& g, const std::string& name, const xgrad::Shape& decl, A v) {
    shapes.push_back(shape_of(v));
    values.push_back(std::move(v));
    xs.push_back(g.input(name, decl));
    feeds.push_back({xs.back(), values.back()});
    return xs.back();
  }
  /// Either of the above.
  E leaf(G& g, const std::string& name, const xgrad::Shape& decl, A v, bool as_input) {
    return as_input ? input(g, name, decl, std::move(v)) : param(g, name, std::move(v));
  }
  /// An int64 input (labels, row indices), bound but not differentiated.
  E index(G& g, const std::string& name, I64 v, const xgrad::Shape& decl = {kOpen}) {
    indices.push_back(std::move(v));
    E e = g.input(name, decl, xgrad::DType::int64);
    feeds.push_back({e, indices.back()});
    return e;
  }
};

void expect_grads_ok(E y, const Leaves& l, const std::string& what) {
  xgrad::GradCheckResult r = xgrad::check_gradients(y, l.xs, l.feeds);
  EXPECT_TRUE(r.ok) << what << ": " << r.summary();
  EXPECT_GT(r.checked, 0u) << what;
}

/// Second derivatives: with s = sum(sin(y)) and gradients g_k = ds/dx_k, checks the
/// gradient of sum_k sum(g_k * v_k) (a Hessian-vector product) against central
/// differences of the first-order gradient graph. sin keeps the Hessian nonzero for
/// linear ops.
void expect_second_order_ok(E y, Leaves& l, std::mt19937& gen, const std::string& what) {
  G& g = y.graph();
  E s = xgrad::sum(xgrad::sin(y));
  std::vector<E> gs = xgrad::grad(s, l.xs);
  E obj;
  for (std::size_t k = 0; k < gs.size(); ++k) {
    E t = xgrad::sum(gs[k] * g.constant(rnd(l.shapes[k], gen)));
    obj = obj ? obj + t : t;
  }
  xgrad::GradCheckResult r = xgrad::check_gradients(obj, l.xs, l.feeds);
  EXPECT_TRUE(r.ok) << what << " (second order): " << r.summary();
}

/// Builds one case in a fresh graph and runs the first- and second-order checks on it.
using Builder = std::function<E(G&, Leaves&, std::mt19937&)>;
void check_case(const std::string& what, const Builder& build, std::mt19937& gen,
                bool second_order = true) {
  G g;
  Leaves l;
  E y = build(g, l, gen);
  expect_grads_ok(y, l, what);
  if (second_order) expect_second_order_ok(y, l, gen, what);
}

// ------------------------------------------------------------------ elementwise unary

struct UnaryCase {
  std::string name;
  std::function<E(E)> f;
  Domain dom;
  bool second_order = true;
};

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](E x) { return xgrad::neg(x); }, kAny},
      {"square", [](E x) { return xgrad::square(x); }, kAny},
      {"sqrt", [](E x) { return xgrad::sqrt(x); }, kPos},
      {"exp", [](E x) { return xgrad::exp(x); }, kAny},
      {"log", [](E x) { return xgrad::log(x); }, kPos},
      {"abs", [](E x) { return xgrad::abs(x); }, kAwayFromZero},
      {"sin", [](E x) { return xgrad::sin(x); }, kAny},
      {"cos", [](E x) { return xgrad::cos(x); }, kAny},
      {"tanh", [](E x) { return xgrad::tanh(x); }, kAny},
      {"sigmoid", [](E x) { return xgrad::sigmoid(x); }, kAny},
      {"relu", [](E x) { return xgrad::relu(x); }, kAwayFromZero},
      {"leaky_relu", [](E x) { return xgrad::leaky_relu(x); }, kAwayFromZero},
      {"leaky_relu 0.3", [](E x) { return xgrad::leaky_relu(x, 0.3); }, kAwayFromZero},
      {"softplus", [](E x) { return xgrad::softplus(x); }, kAny},
      {"pow 3", [](E x) { return xgrad::pow(x, 3.0); }, kAny},
      {"pow 2", [](E x) { return xgrad::pow(x, 2.0); }, kAny},
      {"pow 0.5", [](E x) { return xgrad::pow(x, 0.5); }, kPos},
      {"pow -2", [](E x) { return xgrad::pow(x, -2.0); }, kPos},
      {"clamp", [](E x) { return xgrad::clamp(x, -0.5, 0.5); }, kAwayFromHalf},
      {"erf", [](E x) { return xgrad::erf(x); }, kAny},
      {"log1p", [](E x) { return xgrad::log1p(x); }, kPos},
      {"expm1", [](E x) { return xgrad::expm1(x); }, kAny},
      {"gelu", [](E x) { return xgrad::gelu(x); }, kAny},
      {"gelu tanh", [](E x) { return xgrad::gelu(x, xgrad::GeluApproximate::tanh); }, kAny},
      // Central differences see the function itself, so the stopped value must be locally
      // constant to agree: x * sign(x) = |x| with the gradient of sign(x) stopped.
      {"stop_gradient", [](E x) { return x * xgrad::stop_gradient(xgrad::sign(x)); },
       kAwayFromZero},
      {"sign", [](E x) { return xgrad::sign(x); }, kAwayFromZero, false},
      {"step", [](E x) { return xgrad::step(x); }, kAwayFromZero, false},
      {"x + 2", [](E x) { return x + 2.0; }, kAny},
      {"2 - x", [](E x) { return 2.0 - x; }, kAny},
      {"3 * x", [](E x) { return 3.0 * x; }, kAny},
      {"x / 4", [](E x) { return x / 4.0; }, kAny},
      {"4 / x", [](E x) { return 4.0 / x; }, kPos},
  };
}

TEST(OpsGradcheck, UnaryOps) {
  std::mt19937 gen(101);
  for (const UnaryCase& c : unary_cases()) {
    for (const Sh& s : {Sh{2, 3}, Sh{}, Sh{2, 1, 2}}) {
      G g;
      Leaves l;
      E x = l.param(g, "x", rnd(s, gen, c.dom));
      expect_grads_ok(c.f(x), l, c.name + " rank " + std::to_string(s.size()));
    }
  }
}

TEST(OpsGradcheck, UnaryOpsOnBroadcastOpenBatch) {
  // f(a + b): a is an open-batch input (?, 4) bound to (3, 4), b a (4,) parameter whose
  // gradient must be summed over the batch. a holds small offsets, so a + b stays in
  // b's domain.
  std::mt19937 gen(102);
  for (const UnaryCase& c : unary_cases()) {
    G g;
    Leaves l;
    E a = l.input(g, "a", {kOpen, 4}, rnd({3, 4}, gen, kSmall));
    E b = l.param(g, "b", rnd({4}, gen, c.dom));
    expect_grads_ok(c.f(a + b), l, c.name + " broadcast");
    if (c.second_order) expect_second_order_ok(c.f(a + b), l, gen, c.name + " broadcast");
  }
}

TEST(OpsGradcheck, UnaryOpsSecondOrderKnownShape) {
  std::mt19937 gen(103);
  for (const UnaryCase& c : unary_cases()) {
    if (!c.second_order) continue;
    G g;
    Leaves l;
    E x = l.param(g, "x", rnd({2, 3}, gen, c.dom));
    expect_second_order_ok(c.f(x), l, gen, c.name);
  }
}

// ------------------------------------------------------------------ elementwise binary

struct BinaryCase {
  std::string name;
  std::function<E(E, E)> f;
  Domain da, db;
  bool second_order = true;
};

std::vector<BinaryCase> binary_cases() {
  return {
      {"add", [](E a, E b) { return xgrad::add(a, b); }, kAny, kAny},
      {"sub", [](E a, E b) { return xgrad::sub(a, b); }, kAny, kAny},
      {"mul", [](E a, E b) { return xgrad::mul(a, b); }, kAny, kAny},
      {"div", [](E a, E b) { return xgrad::div(a, b); }, kAny, kPos},
      {"a + b", [](E a, E b) { return a + b; }, kAny, kAny},
      {"a - b", [](E a, E b) { return a - b; }, kAny, kAny},
      {"a * b", [](E a, E b) { return a * b; }, kAny, kAny},
      {"a / b", [](E a, E b) { return a / b; }, kAny, kPos},
      {"pow", [](E a, E b) { return xgrad::pow(a, b); }, kPos, kAny},
      {"maximum", [](E a, E b) { return xgrad::maximum(a, b); }, kAny, kAny},
      {"minimum", [](E a, E b) { return xgrad::minimum(a, b); }, kAny, kAny},
      {"safe_div", [](E a, E b) { return xgrad::safe_div(a, b); }, kAny, kAwayFromZero},
      {"xlogy", [](E a, E b) { return xgrad::xlogy(a, b); }, kAwayFromZero, kPos},
      {"equal", [](E a, E b) { return xgrad::equal(a, b); }, kAny, kAny, false},
      {"where", [](E a, E b) { return xgrad::where(xgrad::step(a), a, b); }, kAwayFromZero, kAny},
  };
}

struct BinConfig {
  xgrad::Shape da, db;
  Sh va, vb;
  bool ia, ib;  // bound inputs (else parameters)
};

const std::vector<BinConfig> kBinConfigs = {
    {{3, 1}, {1, 4}, {3, 1}, {1, 4}, false, false},
    {{2, 3}, {3}, {2, 3}, {3}, false, false},
    {{}, {2, 3}, {}, {2, 3}, false, false},
    {{2, 3}, {}, {2, 3}, {}, false, false},
    {{2, 1, 3}, {4, 1}, {2, 1, 3}, {4, 1}, false, false},
    {{2, 3}, {2, 3}, {2, 3}, {2, 3}, false, false},
    {{kOpen, 3}, {3}, {4, 3}, {3}, true, false},
    {{1, 3}, {kOpen, 3}, {1, 3}, {2, 3}, false, true},
    {{kOpen, 3}, {kOpen, 1}, {4, 3}, {4, 1}, true, true},
};

TEST(OpsGradcheck, EveryElementwiseOpHasCases) {
  std::vector<std::string> names;
  for (const UnaryCase& c : unary_cases()) names.push_back(c.name);
  for (const BinaryCase& c : binary_cases()) names.push_back(c.name);
  for (std::string op : {XGRAD_ELEMENTWISE_OPS(XGRAD_TEST_ROW_NAME)}) {
    // A case is named after its op, possibly followed by a variant ("pow 3").
    bool found = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
      return n == op || n.rfind(op + " ", 0) == 0;
    });
    EXPECT_TRUE(found) << op << " has no case in unary_cases() or binary_cases()";
  }
}

TEST(OpsGradcheck, BinaryOpsWithBroadcasting) {
  std::mt19937 gen(104);
  for (const BinaryCase& c : binary_cases()) {
    for (std::size_t k = 0; k < kBinConfigs.size(); ++k) {
      const BinConfig& s = kBinConfigs[k];
      G g;
      Leaves l;
      E a = l.leaf(g, "a", s.da, rnd(s.va, gen, c.da), s.ia);
      E b = l.leaf(g, "b", s.db, rnd(s.vb, gen, c.db), s.ib);
      std::string what = c.name + " " + xgrad::shape_str(s.da) + " with " + xgrad::shape_str(s.db);
      expect_grads_ok(c.f(a, b), l, what);
      // Second order on one known and one open configuration.
      if (c.second_order && (k == 0 || k == 6)) expect_second_order_ok(c.f(a, b), l, gen, what);
    }
  }
}

// ------------------------------------------------------------------ linear algebra

TEST(OpsGradcheck, MatmulMatrixMatrixAllFlags) {
  std::mt19937 gen(105);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      G g;
      Leaves l;
      E a = l.param(g, "a", rnd(ta ? Sh{4, 3} : Sh{3, 4}, gen));
      E b = l.param(g, "b", rnd(tb ? Sh{2, 4} : Sh{4, 2}, gen));
      std::string what = "matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb);
      expect_grads_ok(xgrad::matmul(a, b, ta, tb), l, what);
      expect_second_order_ok(xgrad::matmul(a, b, ta, tb), l, gen, what);
    }
  }
}

TEST(OpsGradcheck, MatmulVectorForms) {
  std::mt19937 gen(106);
  struct Case {
    Sh sa, sb;
    bool ta, tb;
  };
  for (const Case& c : {Case{{3, 4}, {4}, false, false}, Case{{4, 3}, {4}, true, false},
                        Case{{3}, {3, 4}, false, false}, Case{{4}, {3, 4}, false, true},
                        Case{{5}, {5}, false, false}}) {
    G g;
    Leaves l;
    E a = l.param(g, "a", rnd(c.sa, gen));
    E b = l.param(g, "b", rnd(c.sb, gen));
    std::string what = "matmul rank " + std::to_string(c.sa.size()) + "x" +
                       std::to_string(c.sb.size()) + " ta=" + std::to_string(c.ta) +
                       " tb=" + std::to_string(c.tb);
    expect_grads_ok(xgrad::matmul(a, b, c.ta, c.tb), l, what);
    expect_second_order_ok(xgrad::matmul(a, b, c.ta, c.tb), l, gen, what);
  }
}

TEST(OpsGradcheck, MatmulOpenBatchWithBroadcastBias) {
  std::mt19937 gen(107);
  G g;
  Leaves l;
  E x = l.input(g, "x", {kOpen, 4}, rnd({3, 4}, gen));
  E w = l.param(g, "W", rnd({4, 2}, gen));
  E wt = l.param(g, "Wt", rnd({2, 4}, gen));
  E b = l.param(g, "b", rnd({2}, gen));
  E y = xgrad::tanh(xgrad::matmul(x, w) + b) * xgrad::matmul(x, wt, false, true);
  expect_grads_ok(y, l, "x @ W + b");
  expect_second_order_ok(y, l, gen, "x @ W + b");
  // Open rows on the right of a transposed product: x^T x is (4, 4).
  G g2;
  Leaves l2;
  E x2 = l2.input(g2, "x", {kOpen, 4}, rnd({5, 4}, gen));
  expect_grads_ok(xgrad::matmul(x2, x2, true, false), l2, "x^T x");
}

TEST(OpsGradcheck, Transpose) {
  std::mt19937 gen(108);
  for (const std::vector<Dim>& perm :
       {std::vector<Dim>{}, std::vector<Dim>{1, 0, 2}, std::vector<Dim>{2, 0, 1}}) {
    G g;
    Leaves l;
    E x = l.param(g, "x", rnd({2, 3, 4}, gen));
    expect_grads_ok(xgrad::transpose(x, perm), l, "transpose " + xgrad::shape_str(perm));
    expect_second_order_ok(xgrad::transpose(x, perm), l, gen, "transpose");
  }
  G g;
  Leaves l;
  E a = l.input(g, "a", {kOpen, 3}, rnd({2, 3}, gen));
  E b = l.param(g, "b", rnd({3}, gen));
  expect_grads_ok(xgrad::transpose(a * b), l, "transpose of broadcast open batch");
  expect_second_order_ok(xgrad::transpose(a * b), l, gen, "transpose of broadcast open batch");
}

// ------------------------------------------------------------------ reductions

using Reducer = std::function<E(E, std::vector<Dim>, bool)>;
const std::vector<std::pair<std::string, Reducer>> kReducers = {
    {"sum", [](E x, std::vector<Dim> ax, bool k) { return xgrad::sum(x, ax, k); }},
    {"mean", [](E x, std::vector<Dim> ax, bool k) { return xgrad::mean(x, ax, k); }},
    {"max", [](E x, std::vector<Dim> ax, bool k) { return xgrad::max(x, ax, k); }},
};

TEST(OpsGradcheck, ReductionsOverAxes) {
  std::mt19937 gen(109);
  const std::vector<std::vector<Dim>> axes_sets = {{}, {0}, {-1}, {1}, {0, 2}, {2, -3}, {0, 1, 2}};
  for (const auto& [name, red] : kReducers) {
    for (const auto& axes : axes_sets) {
      for (bool keep : {false, true}) {
        G g;
        Leaves l;
        E x = l.param(g, "x", rnd({2, 3, 4}, gen));
        std::string what = name + " axes " + xgrad::shape_str(axes) + (keep ? " keepdims" : "");
        expect_grads_ok(red(x, axes, keep), l, what);
        if (axes.size() == 1 || axes.empty())
          expect_second_order_ok(red(x, axes, keep), l, gen, what);
      }
    }
  }
}

TEST(OpsGradcheck, ReductionsOfBroadcastOpenBatch) {
  std::mt19937 gen(110);
  for (const auto& [name, red] : kReducers) {
    for (const std::vector<Dim>& axes :
         {std::vector<Dim>{0}, std::vector<Dim>{}, std::vector<Dim>{-1}}) {
      for (bool keep : {false, true}) {
        G g;
        Leaves l;
        E a = l.input(g, "a", {kOpen, 3}, rnd({4, 3}, gen));
        E b = l.param(g, "b", rnd({3}, gen));
        std::string what =
            name + " open axes " + xgrad::shape_str(axes) + (keep ? " keepdims" : "");
        expect_grads_ok(red(a * b, axes, keep), l, what);
        expect_second_order_ok(red(a * b, axes, keep), l, gen, what);
      }
    }
  }
}

TEST(OpsGradcheck, ReductionsOfScalarsAndVectors) {
  std::mt19937 gen(111);
  for (const auto& [name, red] : kReducers) {
    G g;
    Leaves l;
    E s = l.param(g, "s", rnd({}, gen));
    E v = l.param(g, "v", rnd({5}, gen));
    expect_grads_ok(red(s, {}, false) * red(v, {}, false), l, name + " 0-d and 1-d");
  }
}

TEST(OpsGradcheck, Norm) {
  std::mt19937 gen(112);
  {
    G g;
    Leaves l;
    E x = l.param(g, "x", rnd({2, 3}, gen));
    expect_grads_ok(xgrad::norm(x), l, "norm");
    expect_second_order_ok(xgrad::norm(x), l, gen, "norm");
  }
  {
    G g;
    Leaves l;
    E a = l.input(g, "a", {kOpen, 3}, rnd({4, 3}, gen));
    E b = l.param(g, "b", rnd({3}, gen));
    expect_grads_ok(xgrad::norm(a - b), l, "norm of broadcast open batch");
    expect_second_order_ok(xgrad::norm(a - b), l, gen, "norm of broadcast open batch");
  }
}

TEST(OpsGradcheck, SizeOfHasZeroGradient) {
  std::mt19937 gen(113);
  G g;
  Leaves l;
  E a = l.input(g, "a", {kOpen, 3}, rnd({4, 3}, gen));
  expect_grads_ok(a * xgrad::size_of(a) + xgrad::size_of(a, {0}), l, "size_of");
}

// ------------------------------------------------------------------ shape manipulation

TEST(OpsGradcheck, ReshapeSqueezeUnsqueeze) {
  std::mt19937 gen(114);
  check_case(
      "reshape -1,4",
      [](G& g, Leaves& l, std::mt19937& r) {
        return xgrad::reshape(l.param(g, "x", rnd({2, 3, 4}, r)), {-1, 4});
      },
      gen);
  check_case(
      "reshape 4,-1",
      [](G& g, Leaves& l, std::mt19937& r) {
        E x = l.param(g, "x", rnd({2, 3, 4}, r));
        return xgrad::reshape(x, {4, -1}) * xgrad::reshape(x, {4, 6});
      },
      gen);
  check_case(
      "reshape_like",
      [](G& g, Leaves& l, std::mt19937& r) {
        E x = l.param(g, "x", rnd({2, 3, 4}, r));
        E ref = l.param(g, "ref", rnd({4, 6}, r));
        return xgrad::reshape_like(x, ref) * ref;
      },
      gen);
  check_case(
      "unsqueeze",
      [](G& g, Leaves& l, std::mt19937& r) {
        return xgrad::unsqueeze(l.param(g, "x", rnd({2, 3}, r)), {0, -1});
      },
      gen);
  check_case(
      "squeeze",
      [](G& g, Leaves& l, std::mt19937& r) {
        E x = l.param(g, "x", rnd({2, 3, 4}, r));
        return xgrad::squeeze(xgrad::unsqueeze(x, {1}), {-3});
      },
      gen);
  check_case(
      "reshape of open batch",
      [](G& g, Leaves& l, std::mt19937& r) {
        E a = l.input(g, "a", {kOpen, 3}, rnd({4, 3}, r));
        E b = l.param(g, "b", rnd({3}, r));
        E flat = xgrad::reshape(a * b, {-1});
        return xgrad::reshape_like(xgrad::exp(flat), a) +
               xgrad::unsqueeze(xgrad::sum(a, {-1}), {1});
      },
      gen);
}

TEST(OpsGradcheck, BroadcastAndSumTo) {
  std::mt19937 gen(115);
  check_case(
      "broadcast_to (3,1)->(2,3,4)",
      [](G& g, Leaves& l, std::mt19937& r) {
        return xgrad::broadcast_to(l.param(g, "c", rnd({3, 1}, r)), {2, 3, 4});
      },
      gen);
  check_case(
      "broadcast_to (3,)->(2,3)",
      [](G& g, Leaves& l, std::mt19937& r) {
        return xgrad::broadcast_to(l.param(g, "v", rnd({3}, r)), {2, 3});
      },
      gen);
  check_case(
      "broadcast_to ()->(2,2)",
      [](G& g, Leaves& l, std::mt19937& r) {
        return xgrad::broadcast_to(l.param(g, "s", rnd({}, r)), {2, 2});
      },
      gen);
  check_case(
      "broadcast_like",
      [](G& g, Leaves& l, std::mt19937& r) {
        E c = l.param(g, "c", rnd({3, 1}, r));
        E big = l.param(g, "big", rnd({2, 3, 4}, r));
        return xgrad::broadcast_like(c, big) * big;
      },
      gen);
  check_case(
      "sum_to_like (3,1)",
      [](G& g, Leaves& l, std::mt19937& r) {
        E c = l.param(g, "c", rnd({3, 1}, r));
        E big = l.param(g, "big", rnd({2, 3, 4}, r));
        return xgrad::sum_to_like(big, c) * c;
      },
      gen);
  check_case(
      "sum_to_like ()",
      [](G& g, Leaves& l, std::mt19937& r) {
        E big = l.param(g, "big", rnd({2, 3, 4}, r));
        return xgrad::sum_to_like(big, g.constant(A(0.0)));
      },
      gen);
  check_case(
      "broadcast_like/sum_to_like open",
      [](G& g, Leaves& l, std::mt19937& r) {
        E a = l.input(g, "a", {kOpen, 3}, rnd({4, 3}, r));
        E w = l.param(g, "w", rnd({3}, r));
        return xgrad::broadcast_like(w, a) * a + xgrad::sum_to_like(a * a, w);
      },
      gen);
}

TEST(OpsGradcheck, GatherAndScatterRows) {
  std::mt19937 gen(116);
  {
    G g;
    Leaves l;
    E x = l.param(g, "x", rnd({5, 3}, gen));
    E idx = l.index(g, "idx", I64{4, 0, 4, 2});  // a repeated row accumulates
    expect_grads_ok(xgrad::gather_rows(x, idx), l, "gather_rows");
    expect_second_order_ok(xgrad::gather_rows(x, idx), l, gen, "gather_rows");
  }
  {
    G g;
    Leaves l;
    E x = l.input(g, "x", {kOpen, 3}, rnd({5, 3}, gen));
    E b = l.param(g, "b", rnd({3}, gen));
    E idx = l.index(g, "idx", I64{1, 3, 1});
    expect_grads_ok(xgrad::gather_rows(x * b, idx), l, "gather_rows open broadcast");
    expect_second_order_ok(xgrad::gather_rows(x * b, idx), l, gen, "gather_rows open broadcast");
  }
  {
    G g;
    Leaves l;
    E rows = l.param(g, "rows", rnd({4, 2}, gen));
    E ref = l.param(g, "ref", rnd({3, 2}, gen));
    E idx = l.index(g, "idx", I64{0, 2, 0, 1});
    E y = xgrad::scatter_add_rows(rows, idx, ref) * ref;
    expect_grads_ok(y, l, "scatter_add_rows");
    expect_second_order_ok(y, l, gen, "scatter_add_rows");
  }
}

struct SliceCase {
  Dim axis, begin, end;
};

TEST(OpsGradcheck, SliceFirstOrder) {
  std::mt19937 gen(117);
  for (const SliceCase& c : {SliceCase{0, -3, -1}, SliceCase{1, 1, 100}, SliceCase{-1, -100, 2},
                             SliceCase{1, -2, 5}, SliceCase{0, -10, 2}, SliceCase{1, 2, 4}}) {
    G g;
    Leaves l;
    E x = l.param(g, "x", rnd({4, 5}, gen));
    std::string what = "slice axis " + std::to_string(c.axis) + " " + std::to_string(c.begin) +
                       ":" + std::to_string(c.end);
    expect_grads_ok(xgrad::slice(x, c.axis, c.begin, c.end), l, what);
  }
  G g;
  Leaves l;
  E a = l.input(g, "a", {kOpen, 3}, rnd({5, 3}, gen));
  E b = l.param(g, "b", rnd({3}, gen));
  expect_grads_ok(xgrad::slice(a * b, 0, 1, -1), l, "slice of open axis");
  expect_grads_ok(xgrad::slice(a * b, -1, -2, 3), l, "slice of known axis, open batch");
}

TEST(OpsGradcheck, SliceSecondOrder) {
  std::mt19937 gen(118);
  for (const SliceCase& c :
       {SliceCase{0, -3, -1}, SliceCase{1, 1, 100}, SliceCase{1, 2, 4}, SliceCase{-1, -4, -2}}) {
    G g;
    Leaves l;
    E x = l.param(g, "x", rnd({4, 5}, gen));
    std::string what = "slice axis " + std::to_string(c.axis) + " " + std::to_string(c.begin) +
                       ":" + std::to_string(c.end);
    expect_second_order_ok(xgrad::slice(x, c.axis, c.begin, c.end), l, gen, what);
  }
}

TEST(OpsGradcheck, SliceSecondOrderNegativeBeginToEnd) {
  std::mt19937 gen(119);
  for (const SliceCase& c : {SliceCase{1, -2, 5}, SliceCase{0, -10, 2}}) {
    G g;
    Leaves l;
    E x = l.param(g, "x", rnd({4, 5}, gen));
    std::string what = "slice axis " + std::to_string(c.axis) + " " + std::to_string(c.begin) +
                       ":" + std::to_string(c.end);
    expect_second_order_ok(xgrad::slice(x, c.axis, c.begin, c.end), l, gen, what);
  }
}

TEST(OpsGradcheck, PadLike) {
  std::mt19937 gen(120);
  check_case(
      "pad_like axis 0 at 1",
      [](G& g, Leaves& l, std::mt19937& r) {
        E x = l.param(g, "x", rnd({2, 3}, r));
        E ref = l.param(g, "ref", rnd({5, 3}, r));
        return xgrad::pad_like(x, ref, 0, 1) * ref;
      },
      gen);
  check_case(
      "pad_like axis 1 at 2",
      [](G& g, Leaves& l, std::mt19937& r) {
        return xgrad::pad_like(l.param(g, "col", rnd({5, 1}, r)), g.constant(rnd({5, 3}, r)), 1, 2);
      },
      gen);
  check_case(
      "pad_like axis -1 at 0",
      [](G& g, Leaves& l, std::mt19937& r) {
        return xgrad::pad_like(l.param(g, "col", rnd({5, 1}, r)), g.constant(rnd({5, 3}, r)), -1,
                               0);
      },
      gen);
  check_case(
      "pad_like of open batch",
      [](G& g, Leaves& l, std::mt19937& r) {
        E a = l.input(g, "a", {kOpen, 2}, rnd({3, 2}, r));
        E ref = l.input(g, "ref", {kOpen, 4}, rnd({3, 4}, r));
        return xgrad::pad_like(a, ref, 1, 1) * ref;
      },
      gen);
}

TEST(OpsGradcheck, PadLikeNegativeBegin) {
  std::mt19937 gen(121);
  G g;
  Leaves l;
  E x = l.param(g, "x", rnd({2, 3}, gen));
  E ref = l.param(g, "ref", rnd({5, 3}, gen));
  expect_grads_ok(xgrad::pad_like(x, ref, 0, -2), l, "pad_like axis 0 at -2");
  expect_grads_ok(xgrad::pad_like(x, ref, 0, -3), l, "pad_like axis 0 at -3");
}

TEST(OpsGradcheck, ZerosLike) {
  std::mt19937 gen(122);
  G g;
  Leaves l;
  E a = l.input(g, "a", {kOpen, 3}, rnd({2, 3}, gen));
  expect_grads_ok(xgrad::exp(a) + xgrad::zeros_like(a), l, "zeros_like");
}

TEST(OpsGradcheck, Concatenate) {
  std::mt19937 gen(123);
  check_case(
      "concat axis 0",
      [](G& g, Leaves& l, std::mt19937& r) {
        E a = l.param(g, "a", rnd({2, 3}, r));
        E b = l.param(g, "b", rnd({1, 3}, r));
        return xgrad::concatenate(std::vector<E>{a, b, a}, 0);
      },
      gen);
  check_case(
      "concat axis 1",
      [](G& g, Leaves& l, std::mt19937& r) {
        E a = l.param(g, "a", rnd({2, 3}, r));
        E d = l.param(g, "d", rnd({2, 1}, r));
        return xgrad::concatenate(std::vector<E>{a, d}, 1);
      },
      gen);
  check_case(
      "concat axis -1",
      [](G& g, Leaves& l, std::mt19937& r) {
        E a = l.param(g, "a", rnd({2, 3}, r));
        E d = l.param(g, "d", rnd({2, 1}, r));
        return xgrad::concatenate(std::vector<E>{d, a * a, d}, -1);
      },
      gen);
  check_case(
      "concat open batch",
      [](G& g, Leaves& l, std::mt19937& r) {
        E a = l.input(g, "a", {kOpen, 2}, rnd({3, 2}, r));
        E b = l.input(g, "b", {kOpen, 3}, rnd({3, 3}, r));
        E w = l.param(g, "w", rnd({3}, r));
        return xgrad::concatenate(std::vector<E>{a, b * w}, 1);
      },
      gen);
}

// ------------------------------------------------------------------ losses and softmax

TEST(OpsGradcheck, SoftmaxAndLogSoftmax) {
  std::mt19937 gen(124);
  for (bool log : {false, true}) {
    auto sm = [log](E x, Dim axis) {
      return log ? xgrad::log_softmax(x, axis) : xgrad::softmax(x, axis);
    };
    std::string name = log ? "log_softmax" : "softmax";
    for (Dim axis : {-1, 0}) {
      G g;
      Leaves l;
      E x = l.param(g, "x", rnd({3, 4}, gen));
      expect_grads_ok(sm(x, axis), l, name + " axis " + std::to_string(axis));
      expect_second_order_ok(sm(x, axis), l, gen, name);
    }
    {
      G g;
      Leaves l;
      E x = l.param(g, "x", rnd({2, 3, 2}, gen));
      expect_grads_ok(sm(x, 1), l, name + " 3-d axis 1");
    }
    G g;
    Leaves l;
    E a = l.input(g, "a", {kOpen, 4}, rnd({3, 4}, gen));
    E b = l.param(g, "b", rnd({4}, gen));
    expect_grads_ok(sm(a + b, -1), l, name + " open broadcast");
    expect_second_order_ok(sm(a + b, -1), l, gen, name + " open broadcast");
  }
}

TEST(OpsGradcheck, CrossEntropyAndOneHot) {
  std::mt19937 gen(125);
  {
    G g;
    Leaves l;
    E z = l.param(g, "z", rnd({2, 3}, gen));
    E labels = l.index(g, "labels", I64{2, 0}, {2});
    expect_grads_ok(xgrad::cross_entropy(z, labels), l, "cross_entropy");
    expect_second_order_ok(xgrad::cross_entropy(z, labels), l, gen, "cross_entropy");
    expect_grads_ok(z * xgrad::one_hot(labels, 3), l, "one_hot (zero gradient)");
  }
  G g;
  Leaves l;
  E a = l.input(g, "a", {kOpen, 4}, rnd({3, 4}, gen));
  E b = l.param(g, "b", rnd({4}, gen));
  E labels = l.index(g, "labels", I64{1, 3, 0});
  expect_grads_ok(xgrad::cross_entropy(a + b, labels), l, "cross_entropy open broadcast");
  expect_second_order_ok(xgrad::cross_entropy(a + b, labels), l, gen,
                         "cross_entropy open broadcast");
}

TEST(OpsGradcheck, MseAndRmse) {
  std::mt19937 gen(126);
  for (bool root : {false, true}) {
    auto loss = [root](E p, E t) { return root ? xgrad::rmse(p, t) : xgrad::mse(p, t); };
    std::string name = root ? "rmse" : "mse";
    {
      G g;
      Leaves l;
      E p = l.param(g, "p", rnd({2, 3}, gen));
      E t = l.param(g, "t", rnd({2, 3}, gen));
      expect_grads_ok(loss(p, t), l, name);
      expect_second_order_ok(loss(p, t), l, gen, name);
    }
    G g;
    Leaves l;
    E p = l.input(g, "p", {kOpen, 3}, rnd({4, 3}, gen));
    E t = l.param(g, "t", rnd({3}, gen));
    // Broadcast explicitly: losses do not broadcast their operands.
    E tb = xgrad::broadcast_like(t, p);
    expect_grads_ok(loss(p, tb), l, name + " open broadcast");
    expect_second_order_ok(loss(p, tb), l, gen, name + " open broadcast");
  }
}

// ------------------------------------------------------------------ subgradients

/// Gradients of y with respect to xs, evaluated.
std::vector<A> eval_grads(E y, const std::vector<E>& xs,
                          std::initializer_list<xgrad::Feed<double>> feeds = {}) {
  std::vector<E> gs = xgrad::grad(y, xs);
  xgrad::Function<double> f(gs);
  return f.run(feeds);
}

void expect_values(const A& got, std::vector<double> want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_FALSE(std::isnan(got.data()[i])) << what << " [" << i << "]";
    EXPECT_NEAR(got.data()[i], want[i], 1e-15) << what << " [" << i << "]";
  }
}

TEST(OpsGradcheck, AbsAndReluSubgradientAtZeroIsZero) {
  G g;
  E x = g.parameter("x", A{-1.5, 0, 2});
  E s = g.parameter("s", A(0.0));
  auto r = eval_grads(xgrad::sum(xgrad::abs(x)) + xgrad::abs(s), {x, s});
  expect_values(r[0], {-1, 0, 1}, "d|x|/dx");
  expect_values(r[1], {0}, "d|s|/ds at 0-d 0");
  r = eval_grads(xgrad::sum(xgrad::relu(x)) + xgrad::relu(s), {x, s});
  expect_values(r[0], {0, 0, 1}, "relu'");
  expect_values(r[1], {0}, "relu'(0) 0-d");
  // |x| at 0 also agrees with the (symmetric) central difference.
  Leaves l;
  G g2;
  l.param(g2, "x", A{0.0, 0.0});
  EXPECT_TRUE(xgrad::check_gradients(xgrad::abs(l.xs[0]), l.xs).ok);
}

TEST(OpsGradcheck, LeakyReluSlopeAtZeroAndZeroSecondDerivative) {
  // PyTorch's convention: the slope applies at 0 too (x > 0 ? 1 : slope).
  G g;
  E x = g.parameter("x", A{-1.5, 0, 2});
  E s = g.parameter("s", A(0.0));
  auto r = eval_grads(xgrad::sum(xgrad::leaky_relu(x, 0.1)) + xgrad::leaky_relu(s, 0.1), {x, s});
  expect_values(r[0], {0.1, 0.1, 1}, "leaky_relu'");
  expect_values(r[1], {0.1}, "leaky_relu'(0) 0-d");
  r = eval_grads(xgrad::sum(xgrad::leaky_relu(x)), {x});
  expect_values(r[0], {0.01, 0.01, 1}, "leaky_relu' default slope");
  // Piecewise linear: the second derivative is 0 (an exact zero, not a difference).
  E d = xgrad::grad(xgrad::sum(xgrad::leaky_relu(x, 0.1)), {x})[0];
  r = eval_grads(xgrad::sum(d * g.constant(A{1, 2, 3})), {x});
  expect_values(r[0], {0, 0, 0}, "leaky_relu''");
}

TEST(OpsGradcheck, NormAndRmseGradientAtZeroIsZero) {
  G g;
  E x = g.parameter("x", A{0.0, 0.0, 0.0});
  E s = g.parameter("s", A(0.0));
  auto r = eval_grads(xgrad::norm(x) + xgrad::norm(s), {x, s});
  expect_values(r[0], {0, 0, 0}, "grad norm at 0");
  expect_values(r[1], {0}, "grad norm at 0-d 0");

  E p = g.parameter("p", A{{1.5, -2}, {0.25, 3}});
  E t = g.parameter("t", A{{1.5, -2}, {0.25, 3}});
  r = eval_grads(xgrad::rmse(p, t), {p, t});
  expect_values(r[0], {0, 0, 0, 0}, "d rmse/dp at zero residual");
  expect_values(r[1], {0, 0, 0, 0}, "d rmse/dt at zero residual");
  // The open-batch path (sqrt(size_of(d))) as well.
  E po = g.input("po", {kOpen, 2});
  A pv = {{1.5, -2}, {0.25, 3}};
  r = eval_grads(xgrad::rmse(po, t), {po, t}, {{po, pv}});
  expect_values(r[0], {0, 0, 0, 0}, "d rmse/dp at zero residual, open");
  expect_values(r[1], {0, 0, 0, 0}, "d rmse/dt at zero residual, open");
}

TEST(OpsGradcheck, MaximumMinimumTiesSplitEvenly) {
  G g;
  E a = g.parameter("a", A{1, 2, 3});
  E b = g.parameter("b", A{1, 0, 3});
  auto r = eval_grads(xgrad::sum(xgrad::maximum(a, b)), {a, b});
  expect_values(r[0], {0.5, 1, 0.5}, "d max/da");
  expect_values(r[1], {0.5, 0, 0.5}, "d max/db");
  r = eval_grads(xgrad::sum(xgrad::minimum(a, b)), {a, b});
  expect_values(r[0], {0.5, 0, 0.5}, "d min/da");
  expect_values(r[1], {0.5, 1, 0.5}, "d min/db");
  // A broadcast 0-d operand tied with every element collects half of each.
  E m = g.parameter("m", A{{1, 1, 1}, {1, 1, 1}});
  E c = g.parameter("c", A(1.0));
  r = eval_grads(xgrad::sum(xgrad::maximum(m, c)), {m, c});
  expect_values(r[0], {0.5, 0.5, 0.5, 0.5, 0.5, 0.5}, "d max/dm broadcast tie");
  expect_values(r[1], {3}, "d max/dc broadcast tie");
  // Central differences at a tie also see slope 1/2.
  Leaves l;
  G g2;
  l.param(g2, "a", A{1, 2});
  l.param(g2, "b", A{1, 2});
  auto res = xgrad::check_gradients(xgrad::maximum(l.xs[0], l.xs[1]), l.xs);
  EXPECT_TRUE(res.ok) << res.summary();
}

TEST(OpsGradcheck, MaxReductionSharesAmongTiedMaxima) {
  G g;
  E v = g.parameter("v", A{1, 3, 3, 2});
  auto r = eval_grads(xgrad::max(v), {v});
  expect_values(r[0], {0, 0.5, 0.5, 0}, "max of vector");
  E t = g.parameter("t", A{4, 4, 4});
  r = eval_grads(xgrad::max(t), {t});
  expect_values(r[0], {1. / 3, 1. / 3, 1. / 3}, "three-way tie");
  E m = g.parameter("m", A{{1, 5, 5}, {2, 2, 0}});
  for (bool keep : {false, true}) {
    r = eval_grads(xgrad::sum(xgrad::max(m, {1}, keep)), {m});
    expect_values(r[0], {0, 0.5, 0.5, 0.5, 0.5, 0}, keep ? "axis 1 keepdims" : "axis 1");
    r = eval_grads(xgrad::sum(xgrad::max(m, {-2}, keep)), {m});
    expect_values(r[0], {0, 1, 1, 1, 0, 0}, keep ? "axis -2 keepdims" : "axis -2");
  }
  // Weighted: the cotangent of each lane is shared within the lane.
  E w = g.constant(A{10, 100});
  r = eval_grads(xgrad::sum(xgrad::max(m, {1}) * w), {m});
  expect_values(r[0], {0, 5, 5, 50, 50, 0}, "weighted lanes");
}

TEST(OpsGradcheck, ClampGradientIsOneOnTheClosedInterval) {
  G g;
  E x = g.parameter("x", A{-2, -1, 0, 1, 1.5});
  auto r = eval_grads(xgrad::sum(xgrad::clamp(x, -1.0, 1.0)), {x});
  expect_values(r[0], {0, 1, 1, 1, 0}, "clamp'");
}

TEST(OpsGradcheck, ZeroGradientOpsGiveZerosNotErrors) {
  G g;
  E x = g.parameter("x", A{-1, 0.5, 2});
  E y = g.parameter("y", A{-1, 1, 2});
  auto r = eval_grads(xgrad::sum(xgrad::sign(x) + xgrad::step(x) + xgrad::equal(x, y)), {x, y});
  expect_values(r[0], {0, 0, 0}, "sign/step/equal dx");
  expect_values(r[1], {0, 0, 0}, "equal dy");
}

TEST(OpsGradcheck, DocumentedZeroConventionsOfPowSafeDivXlogy) {
  G g;
  // d/dy x**y uses x**y * log(x), taken as 0 where x**y is 0.
  E x = g.parameter("x", A{0.0, 0.0, 2.0});
  E y = g.parameter("y", A{2.0, 3.0, 0.5});
  auto r = eval_grads(xgrad::sum(xgrad::pow(x, y)), {x, y});
  expect_values(r[0], {0, 0, 0.5 / std::sqrt(2.0)}, "d pow/dx");
  expect_values(r[1], {0, 0, std::sqrt(2.0) * std::log(2.0)}, "d pow/dy");
  // safe_div is 0 where b is 0, and so are both partial derivatives.
  E a = g.parameter("a", A{1.0, -2.0, 3.0});
  E b = g.parameter("b", A{0.0, 0.0, 2.0});
  r = eval_grads(xgrad::sum(xgrad::safe_div(a, b)), {a, b});
  expect_values(r[0], {0, 0, 0.5}, "d safe_div/da");
  expect_values(r[1], {0, 0, -0.75}, "d safe_div/db");
  // xlogy(0, b) is 0 for every b, so its derivative in b is 0 there (even at b = 0).
  E p = g.parameter("p", A{0.0, 0.0, 2.0});
  E q = g.parameter("q", A{0.0, 3.0, 4.0});
  E yq = xgrad::xlogy(p, q);
  A yv = xgrad::eval(yq);
  expect_values(yv, {0, 0, 2 * std::log(4.0)}, "xlogy forward");
  r = eval_grads(xgrad::sum(yq), {q});
  expect_values(r[0], {0, 0, 0.5}, "d xlogy/db");
}

// ------------------------------------------------------------------ grad() itself

TEST(OpsGradcheck, HigherDerivativesOfCube) {
  for (bool use_pow : {true, false}) {
    G g;
    E x = g.parameter("x", A(1.7));
    E y = use_pow ? xgrad::pow(x, 3.0) : x * x * x;
    E d1 = xgrad::grad(y, {x})[0];
    E d2 = xgrad::grad(d1, {x})[0];
    E d3 = xgrad::grad(d2, {x})[0];
    auto f = xgrad::compile({d1, d2, d3});
    const auto& r = f.run();
    EXPECT_NEAR(r[0](), 3 * 1.7 * 1.7, 1e-14);
    EXPECT_NEAR(r[1](), 6 * 1.7, 1e-14);  // d2/dx2 x^3 = 6x
    EXPECT_NEAR(r[2](), 6.0, 1e-14);
    g.value(x) = A(-0.5);
    f.run();
    EXPECT_NEAR(f.results()[1](), -3.0, 1e-14);
  }
}

TEST(OpsGradcheck, HessianVectorProductOfQuadraticForm) {
  G g;
  A av = {{2, -1, 0.5}, {-1, 3, 0.25}, {0.5, 0.25, 1}};
  A xv = {0.3, -1.2, 2};
  A vv = {1, -2, 0.5};
  E a = g.constant(av);
  E x = g.parameter("x", xv);
  E v = g.constant(vv);
  E f = 0.5 * xgrad::matmul(x, xgrad::matmul(a, x));
  E gx = xgrad::grad(f, {x})[0];
  E hv = xgrad::grad(xgrad::sum(gx * v), {x})[0];
  auto fn = xgrad::compile({gx, hv});
  const auto& r = fn.run();
  for (std::size_t i = 0; i < 3; ++i) {
    double ax = 0, avv = 0;
    for (std::size_t j = 0; j < 3; ++j) {
      ax += av(i, j) * xv(j);
      avv += av(i, j) * vv(j);
    }
    EXPECT_NEAR(r[0](i), ax, 1e-14) << "gradient A x at " << i;
    EXPECT_NEAR(r[1](i), avv, 1e-14) << "Hessian-vector product A v at " << i;
  }
}

TEST(OpsGradcheck, GradWithRespectToInputAndIntermediate) {
  G g;
  A wv = {0.5, -1, 2};
  A bv = {0.1, 0.2, -0.3};
  A xv = {{1, 2, 3}, {-1, 0.5, 0}};
  E x = g.input("x", {kOpen, 3});
  E w = g.parameter("w", wv);
  E b = g.parameter("b", bv);
  E h = x * w + b;
  E y = xgrad::sum(xgrad::tanh(h));
  auto gs = xgrad::grad(y, {h, x, w});
  auto f = xgrad::compile({gs[0], gs[1], gs[2]});
  const auto& r = f.run({{x, xv}});
  ASSERT_EQ(shape_of(r[0]), (Sh{2, 3}));
  ASSERT_EQ(shape_of(r[1]), (Sh{2, 3}));
  ASSERT_EQ(shape_of(r[2]), (Sh{3}));
  for (std::size_t j = 0; j < 3; ++j) {
    double dw = 0;
    for (std::size_t i = 0; i < 2; ++i) {
      double t = std::tanh(xv(i, j) * wv(j) + bv(j));
      double dh = 1 - t * t;
      EXPECT_NEAR(r[0](i, j), dh, 1e-14);
      EXPECT_NEAR(r[1](i, j), dh * wv(j), 1e-14);
      dw += dh * xv(i, j);
    }
    EXPECT_NEAR(r[2](j), dw, 1e-14);
  }
}

TEST(OpsGradcheck, VectorJacobianProductWithCotangent) {
  G g;
  A av = {{1, 2, 3}, {-1, 0.5, 4}};
  A xv = {0.5, -1, 2};
  A vv = {3, -2};
  E a = g.parameter("A", av);
  E x = g.input("x", {3});
  E v = g.constant(vv);
  E y = xgrad::matmul(a, x);  // (2,)
  auto gs = xgrad::grad(y, {x, a}, v);
  auto f = xgrad::compile({gs[0], gs[1]});
  const auto& r = f.run({{x, xv}});
  for (std::size_t j = 0; j < 3; ++j) {
    EXPECT_NEAR(r[0](j), av(0, j) * vv(0) + av(1, j) * vv(1), 1e-14) << "J^T v at " << j;
    for (std::size_t i = 0; i < 2; ++i) EXPECT_NEAR(r[1](i, j), vv(i) * xv(j), 1e-14);
  }
  // Elementwise y = x^2 * sin(x): the Jacobian is diagonal, 2x sin x + x^2 cos x.
  E xs = g.parameter("xs", A{0.3, -1.1, 2.0});
  E c = g.constant(A{1, -0.5, 2});
  E ye = xgrad::square(xs) * xgrad::sin(xs);
  A ge = xgrad::eval(xgrad::grad(ye, {xs}, c)[0]);
  A xsv = {0.3, -1.1, 2.0}, cv = {1, -0.5, 2};
  for (std::size_t i = 0; i < 3; ++i) {
    double d = 2 * xsv(i) * std::sin(xsv(i)) + xsv(i) * xsv(i) * std::cos(xsv(i));
    EXPECT_NEAR(ge(i), d * cv(i), 1e-14);
  }
  // The cotangent must have y's shape, and a non-scalar y needs one.
  EXPECT_THROW(xgrad::grad(y, {x}, g.constant(A{1, 2, 3})), xgrad::ShapeError);
  EXPECT_THROW(xgrad::grad(y, {x}), xgrad::ShapeError);
}

TEST(OpsGradcheck, UnconnectedNodeThrowsUnlessAllowed) {
  G g;
  E x = g.parameter("x", A{1, 2});
  E z = g.parameter("z", A{{1, 2, 3}});
  E u = g.input("u", {kOpen, 2});
  E y = xgrad::sum(x * x);
  EXPECT_THROW(xgrad::grad(y, {z}), xgrad::GraphError);
  EXPECT_THROW(xgrad::grad(y, {x, u}), xgrad::GraphError);
  auto gs = xgrad::grad(y, {x, z, u}, xgrad::GradOptions{true});
  ASSERT_EQ(gs.size(), 3u);
  EXPECT_EQ(gs[1].shape(), z.shape());
  EXPECT_EQ(gs[2].shape(), u.shape());
  A uv = {{5, 6}, {7, 8}, {9, 10}};
  auto f = xgrad::compile({gs[0], gs[1], gs[2]});
  const auto& r = f.run({{u, uv}});
  expect_values(r[0], {2, 4}, "connected x");
  expect_values(r[1], {0, 0, 0}, "unconnected z");
  ASSERT_EQ(shape_of(r[2]), (Sh{3, 2}));
  expect_values(r[2], {0, 0, 0, 0, 0, 0}, "unconnected open input u");
}

}  // namespace
