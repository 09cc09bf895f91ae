// Batched matrix products, outer products, stack and split: forward values against loops,
// shape errors, gradients against central differences in double precision (first and
// second order, open batch dimensions), attention-style use, and printed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "gradcheck_util.hpp"
#include "test_util.hpp"

namespace {

using xgrad::Dim;
using xgrad::Graph;
using xgrad::open;
using xgrad_test::contains;
using xgrad_test::expect_grads_ok;
using xgrad_test::expect_second_order_ok;
using E = xgrad::Expr<double>;
using G = xgrad::Graph<double>;
using A = xt::xarray<double>;
using Sh = std::vector<std::size_t>;

template <class T>
xt::xarray<T> rnd(const Sh& s, std::mt19937& gen) {
  return xgrad_test::uniform_values<T>(s, gen);
}
/// op(a) where op swaps the last two axes when t is set.
template <class T>
xt::xarray<T> last2(const xt::xarray<T>& a, bool t) {
  if (!t) return a;
  return a.dimension() == 2 ? xt::xarray<T>(xt::transpose(a))
                            : xt::xarray<T>(xt::transpose(a, {0, 2, 1}));
}

/// The batched product by loops, in double.
template <class T>
A batched_ref(const xt::xarray<T>& x, const xt::xarray<T>& y, bool ta, bool tb) {
  xt::xarray<T> a = last2(x, ta), b = last2(y, tb);
  const bool shared = b.dimension() == 2;
  std::size_t nb = a.shape(0), m = a.shape(1), k = a.shape(2), n = b.shape(shared ? 1 : 2);
  A out = xt::zeros<double>({nb, m, n});
  for (std::size_t i = 0; i < nb; ++i)
    for (std::size_t r = 0; r < m; ++r)
      for (std::size_t c = 0; c < n; ++c)
        for (std::size_t j = 0; j < k; ++j)
          out(i, r, c) +=
              static_cast<double>(a(i, r, j)) * static_cast<double>(shared ? b(j, c) : b(i, j, c));
  return out;
}

template <class T>
void expect_near_all(const xt::xarray<T>& got, const A& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_EQ(got.dimension(), want.dimension()) << what;
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(static_cast<double>(got.data()[i]), want.data()[i], tol)
        << what << " [" << i << "]";
}

template <class T>
constexpr double kTol = std::is_same_v<T, float> ? 1e-5 : 1e-12;

template <class T>
void check_batched_forward() {
  std::mt19937 gen(7);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const std::string what = std::string("ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0");
      Graph<T> g;
      auto xv = rnd<T>(ta ? Sh{2, 4, 3} : Sh{2, 3, 4}, gen);
      auto yv = rnd<T>(tb ? Sh{2, 5, 4} : Sh{2, 4, 5}, gen);
      auto wv = rnd<T>(tb ? Sh{5, 4} : Sh{4, 5}, gen);
      auto x = g.input("x", {open, ta ? 4 : 3, ta ? 3 : 4});
      auto y = g.input("y", {open, tb ? 5 : 4, tb ? 4 : 5});
      auto w = g.parameter("w", wv);
      auto by = xgrad::matmul(x, y, ta, tb), bw = xgrad::matmul(x, w, ta, tb);
      EXPECT_EQ(by.shape(), (xgrad::Shape{open, 3, 5})) << what;
      EXPECT_EQ(bw.shape(), (xgrad::Shape{open, 3, 5})) << what;
      auto f = xgrad::compile({by, bw});
      const auto& r = f.run({{x, xv}, {y, yv}});
      expect_near_all(r[0], batched_ref(xv, yv, ta, tb), kTol<T> * 10, what + " batch @ batch");
      expect_near_all(r[1], batched_ref(xv, wv, ta, tb), kTol<T> * 10, what + " batch @ shared");
      // Another batch size re-plans; a batch of one as well.
      auto xv1 = rnd<T>(ta ? Sh{1, 4, 3} : Sh{1, 3, 4}, gen);
      auto yv1 = rnd<T>(tb ? Sh{1, 5, 4} : Sh{1, 4, 5}, gen);
      const auto& r1 = f.run({{x, xv1}, {y, yv1}});
      expect_near_all(r1[0], batched_ref(xv1, yv1, ta, tb), kTol<T> * 10, what + " batch of 1");
      expect_near_all(r1[1], batched_ref(xv1, wv, ta, tb), kTol<T> * 10, what + " shared, 1");
    }
  }
}

TEST(OpsLinalg, BatchedMatmulForwardFloat) { check_batched_forward<float>(); }
TEST(OpsLinalg, BatchedMatmulForwardDouble) { check_batched_forward<double>(); }

TEST(OpsLinalg, BatchedMatmulEmptyAndConstantFolded) {
  G g;
  // An empty batch and an empty inner dimension (zeros).
  auto x = g.input("x", {open, 2, 0});
  auto w = g.parameter("w", A(xt::zeros<double>({0, 3})));
  auto f = xgrad::compile({xgrad::matmul(x, w)});
  A xv = xt::zeros<double>({2, 2, 0});
  expect_near_all(f.run({{x, xv}})[0], A(xt::zeros<double>({2, 2, 3})), 0, "k = 0");
  A x0 = xt::zeros<double>({0, 2, 0});
  EXPECT_EQ(f.run({{x, x0}})[0].size(), 0u);
  // Constants fold through the op's own kernel.
  A a = {1, 2, 3, 4}, b = {5, 6};
  a.reshape({1, 2, 2});
  b.reshape({1, 2, 1});
  auto c = xgrad::matmul(g.constant(a), g.constant(b));
  ASSERT_TRUE(g.is_constant(c.id()));
  A want = {17, 39};
  want.reshape({1, 2, 1});
  expect_near_all(xgrad::eval(c), want, 0, "folded");
}

TEST(OpsLinalg, BatchedMatmulShapeErrorsNameBothShapes) {
  G g;
  auto x = g.input("x", {2, 3, 4});
  auto expect_error = [&](auto build, const std::vector<std::string>& words) {
    try {
      (void)build();
      ADD_FAILURE() << "expected ShapeError";
    } catch (const xgrad::ShapeError& e) {
      for (const std::string& w : words) EXPECT_TRUE(contains(e.what(), w)) << e.what();
    }
  };
  expect_error(
      [&] {
        return xgrad::matmul(x, g.input("y", {3, 4, 5}));
      },
      {"matmul", "batch sizes differ", "(2, 3, 4)", "(3, 4, 5)"});
  expect_error(
      [&] {
        return xgrad::matmul(x, g.input("w", {5, 6}));
      },
      {"matmul", "inner dimensions", "(2, 3, 4)", "(5, 6)"});
  expect_error([&] { return xgrad::matmul(x, g.input("v", {4})); }, {"matmul", "(4,)"});
  expect_error([&] { return xgrad::matmul(g.input("m", {3, 4}), x); }, {"(3, 4)", "(2, 3, 4)"});
  expect_error([&] { return xgrad::matmul(g.input("r4", {1, 2, 3, 4}), x); }, {"(1, 2, 3, 4)"});
  // A mismatch of open batches shows when the run binds them.
  auto xo = g.input("xo", {open, 3, 4}), yo = g.input("yo", {open, 4, 5});
  auto f = xgrad::compile({xgrad::matmul(xo, yo)});
  A xv = xt::zeros<double>({2, 3, 4}), yv = xt::zeros<double>({3, 4, 5});
  try {
    f.run({{xo, xv}, {yo, yv}});
    ADD_FAILURE() << "expected ShapeError";
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "batch sizes differ")) << e.what();
  }
}

TEST(OpsLinalg, TwoDimensionalMatmulUnchanged) {
  // The 2-d product keeps its op (row tiling reads it) and its gradient formulas.
  G g;
  A av = {{1, 2}, {3, 4}}, bv = {{5, 6}, {7, 8}};
  auto a = g.parameter("a", av), b = g.parameter("b", bv);
  auto y = xgrad::matmul(a, b, false, true);
  EXPECT_EQ(y.node().op->label({}), "matmul");
  EXPECT_EQ(xgrad::matmul(g.input("xb", {2, 2, 2}), b).node().op->label({}), "matmul (batched)");
  expect_near_all(xgrad::eval(y), A{{17, 23}, {39, 53}}, 1e-12, "a @ b^T");
  auto gs = xgrad::grad(xgrad::sum(y), {a, b});
  expect_near_all(xgrad::eval(gs[0]), A{{12, 14}, {12, 14}}, 1e-12, "d/da");
  expect_near_all(xgrad::eval(gs[1]), A{{4, 6}, {4, 6}}, 1e-12, "d/db");
}

TEST(OpsLinalg, OuterForwardAndErrors) {
  G g;
  auto a = g.input("a", {open});
  auto b = g.parameter("b", A{1, -2, 0.5});
  auto o = xgrad::outer(a, b);
  EXPECT_EQ(o.shape(), (xgrad::Shape{open, 3}));
  auto f = xgrad::compile({o});
  A av = {2, 3};
  expect_near_all(f.run({{a, av}})[0], A{{2, -4, 1}, {3, -6, 1.5}}, 0, "outer");
  try {
    (void)xgrad::outer(g.input("m", {2, 2}), b);
    ADD_FAILURE() << "expected ShapeError";
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "outer")) << e.what();
    EXPECT_TRUE(contains(e.what(), "(2, 2)")) << e.what();
  }
}

template <class T>
void check_stack_forward() {
  Graph<T> g;
  xt::xarray<T> av = {{1, 2, 3}, {4, 5, 6}}, bv = {{7, 8, 9}, {10, 11, 12}};
  auto a = g.input("a", {open, 3});
  auto b = g.input("b", {2, 3});
  using V = std::vector<xgrad::Expr<T>>;
  auto s0 = xgrad::stack(V{a, b}), s1 = xgrad::stack(V{a, b}, 1), s2 = xgrad::stack(V{a, b}, -1);
  EXPECT_EQ(s0.shape(), (xgrad::Shape{2, open, 3}));
  EXPECT_EQ(s1.shape(), (xgrad::Shape{open, 2, 3}));
  EXPECT_EQ(s2.shape(), (xgrad::Shape{open, 3, 2}));
  auto f = xgrad::compile({s0, s1, s2, xgrad::stack(V{a})});
  const auto& r = f.run({{a, av}, {b, bv}});
  expect_near_all(r[0], A{{{1, 2, 3}, {4, 5, 6}}, {{7, 8, 9}, {10, 11, 12}}}, 0, "axis 0");
  expect_near_all(r[1], A{{{1, 2, 3}, {7, 8, 9}}, {{4, 5, 6}, {10, 11, 12}}}, 0, "axis 1");
  expect_near_all(r[2], A{{{1, 7}, {2, 8}, {3, 9}}, {{4, 10}, {5, 11}, {6, 12}}}, 0, "axis -1");
  expect_near_all(r[3], A{{{1, 2, 3}, {4, 5, 6}}}, 0, "one operand");
  // Shapes that differ are refused, at build time or when the open batch is bound.
  EXPECT_THROW(xgrad::stack(V{b, g.input("c", {3, 2})}), xgrad::ShapeError);
  EXPECT_THROW(xgrad::stack(V{b, g.input("v", {3})}), xgrad::ShapeError);
  EXPECT_THROW(xgrad::stack(V{a, b}, 3), xgrad::ShapeError);
  EXPECT_THROW(xgrad::stack(V{}), xgrad::ValueError);
  xt::xarray<T> three = xt::zeros<T>({3, 3});
  try {
    f.run({{a, three}, {b, bv}});
    ADD_FAILURE() << "expected ShapeError";
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "stack")) << e.what();
    EXPECT_TRUE(contains(e.what(), "(3, 3)")) << e.what();
  }
}

TEST(OpsShape, StackForwardFloat) { check_stack_forward<float>(); }
TEST(OpsShape, StackForwardDouble) { check_stack_forward<double>(); }

TEST(OpsShape, SplitForwardAndErrors) {
  G g;
  A xv = {{0, 1, 2, 3, 4}, {5, 6, 7, 8, 9}};
  auto x = g.input("x", {open, 5});
  auto p = xgrad::split(x, {2, 3}, 1);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[1].shape(), (xgrad::Shape{open, 3}));
  auto q = xgrad::split(g.input("y", {6, 2}), 3);
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[2].shape(), (xgrad::Shape{2, 2}));
  auto f = xgrad::compile({p[0], p[1]});
  const auto& r = f.run({{x, xv}});
  expect_near_all(r[0], A{{0, 1}, {5, 6}}, 0, "piece 0");
  expect_near_all(r[1], A{{2, 3, 4}, {7, 8, 9}}, 0, "piece 1");
  EXPECT_EQ(xgrad::split(x, 1, 1)[0], x);  // one piece: the tensor itself
  std::vector<Dim> sizes{1, 0, 4};
  EXPECT_EQ(xgrad::split(x, sizes, -1).size(), 3u);
  auto expect_error = [](auto build, const std::string& word) {
    try {
      (void)build();
      ADD_FAILURE() << "expected an error naming " << word;
    } catch (const xgrad::Error& e) {
      EXPECT_TRUE(contains(e.what(), "split")) << e.what();
      EXPECT_TRUE(contains(e.what(), word)) << e.what();
    }
  };
  expect_error([&] { return xgrad::split(x, 2, 1); }, "do not divide extent 5");
  expect_error([&] { return xgrad::split(x, {2, 2}, 1); }, "do not add up to extent 5");
  expect_error([&] { return xgrad::split(x, 0, 1); }, "0 equal sections");
  expect_error([&] { return xgrad::split(x, 2, 0); }, "open");
  expect_error([&] { return xgrad::split(x, 2, 2); }, "out of range");
  EXPECT_THROW(xgrad::split(x, {6, -1}, 1), xgrad::ValueError);
}

// ------------------------------------------------------------------ gradients

TEST(OpsLinalgGradcheck, BatchedMatmulEveryTransposeAndSharedRight) {
  std::mt19937 gen(31);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (bool shared : {false, true}) {
        const std::string what = std::string(shared ? "shared" : "batch") +
                                 " ta=" + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0");
        G g;
        Sh sa = ta ? Sh{2, 4, 3} : Sh{2, 3, 4};
        Sh sb = shared ? (tb ? Sh{5, 4} : Sh{4, 5}) : (tb ? Sh{2, 5, 4} : Sh{2, 4, 5});
        E a = g.parameter("a", rnd<double>(sa, gen)), b = g.parameter("b", rnd<double>(sb, gen));
        E y = xgrad::matmul(a, b, ta, tb);
        expect_grads_ok(y, {a, b}, {}, what);
        expect_second_order_ok(y, {a, b}, {}, {sa, sb}, gen, what);
      }
    }
  }
}

TEST(OpsLinalgGradcheck, BatchedMatmulOpenBatch) {
  // A Linear over a sequence: x (?, 3, 4) bound to (2, 3, 4) times a shared (4, 5) weight,
  // with the batched product against another open batch as well.
  std::mt19937 gen(32);
  for (bool ta : {false, true}) {
    G g;
    A xv = rnd<double>(ta ? Sh{2, 4, 3} : Sh{2, 3, 4}, gen), zv = rnd<double>({2, 5, 3}, gen);
    E x = g.input("x", {open, ta ? 4 : 3, ta ? 3 : 4});
    E z = g.input("z", {open, 5, 3});
    E w = g.parameter("w", rnd<double>({4, 5}, gen));
    E y = xgrad::matmul(z, xgrad::matmul(x, w, ta), false, false);  // (?, 5, 5)
    std::vector<xgrad::Feed<double>> feeds{{x, xv}, {z, zv}};
    const std::string what = ta ? "open batch, x^T" : "open batch";
    expect_grads_ok(y, {x, z, w}, feeds, what);
    expect_second_order_ok(y, {x, z, w}, feeds, {ta ? Sh{2, 4, 3} : Sh{2, 3, 4}, {2, 5, 3}, {4, 5}},
                           gen, what);
  }
}

TEST(OpsLinalgGradcheck, AttentionSoftmaxQKtV) {
  // softmax(Q K^T / sqrt(d)) V over a batch of 2 sequences of 3 positions, d = 4, with Q,
  // K and V projections of one input through shared weights.
  std::mt19937 gen(33);
  const double d = 4;
  G g;
  A xv = rnd<double>({2, 3, 4}, gen);
  E x = g.input("x", {open, 3, 4});
  E wq = g.parameter("wq", rnd<double>({4, 4}, gen)),
    wk = g.parameter("wk", rnd<double>({4, 4}, gen)),
    wv = g.parameter("wv", rnd<double>({4, 4}, gen));
  E q = xgrad::matmul(x, wq), k = xgrad::matmul(x, wk), v = xgrad::matmul(x, wv);
  E att = xgrad::softmax(xgrad::matmul(q, k, false, true) / std::sqrt(d), -1);
  E y = xgrad::matmul(att, v);
  EXPECT_EQ(y.shape(), (xgrad::Shape{open, 3, 4}));
  std::vector<xgrad::Feed<double>> feeds{{x, xv}};
  expect_grads_ok(y, {x, wq, wk, wv}, feeds, "attention");
  expect_second_order_ok(y, {x, wq, wk, wv}, feeds, {{2, 3, 4}, {4, 4}, {4, 4}, {4, 4}}, gen,
                         "attention");
  // The forward value by loops.
  auto r = xgrad::compile({y}).run({{x, xv}});
  A Q = batched_ref<double>(xv, g.node(wq.id()).value.get(), false, false);
  A K = batched_ref<double>(xv, g.node(wk.id()).value.get(), false, false);
  A V = batched_ref<double>(xv, g.node(wv.id()).value.get(), false, false);
  A S = batched_ref<double>(Q, K, false, true) / std::sqrt(d);
  for (std::size_t b = 0; b < 2; ++b) {
    for (std::size_t i = 0; i < 3; ++i) {
      double m = S(b, i, 0), z = 0;
      for (std::size_t j = 1; j < 3; ++j) m = std::max(m, S(b, i, j));
      for (std::size_t j = 0; j < 3; ++j) z += std::exp(S(b, i, j) - m);
      for (std::size_t c = 0; c < 4; ++c) {
        double want = 0;
        for (std::size_t j = 0; j < 3; ++j) want += std::exp(S(b, i, j) - m) / z * V(b, j, c);
        EXPECT_NEAR(r[0](b, i, c), want, 1e-12);
      }
    }
  }
}

TEST(OpsLinalgGradcheck, Outer) {
  std::mt19937 gen(34);
  G g;
  A av = rnd<double>({3}, gen);
  E a = g.input("a", {open}), b = g.parameter("b", rnd<double>({4}, gen));
  E y = xgrad::outer(a, b);
  expect_grads_ok(y, {a, b}, {{a, av}}, "outer");
  expect_second_order_ok(y, {a, b}, {{a, av}}, {{3}, {4}}, gen, "outer");
  // By hand: d sum(outer(a, b)) / da = sum(b), / db = sum(a).
  auto gs = xgrad::grad(xgrad::sum(y), {a, b});
  auto r = xgrad::compile({gs[0], gs[1]}).run({{a, av}});
  const double sa = xt::sum(av)(), sb = xt::sum(g.node(b.id()).value.get())();
  for (std::size_t i = 0; i < 3; ++i) EXPECT_NEAR(r[0](i), sb, 1e-12);
  for (std::size_t j = 0; j < 4; ++j) EXPECT_NEAR(r[1](j), sa, 1e-12);
}

TEST(OpsShapeGradcheck, Stack) {
  std::mt19937 gen(35);
  for (Dim axis : {0, 1, 2, -1}) {
    G g;
    A av = rnd<double>({2, 3}, gen);
    E a = g.input("a", {open, 3}), b = g.parameter("b", rnd<double>({2, 3}, gen));
    E y = xgrad::stack(std::vector<E>{a, b, a * b}, axis);
    const std::string what = "stack axis " + std::to_string(axis);
    expect_grads_ok(y, {a, b}, {{a, av}}, what);
    expect_second_order_ok(y, {a, b}, {{a, av}}, {{2, 3}, {2, 3}}, gen, what);
  }
}

TEST(OpsShapeGradcheck, SplitReassemblesAndUnusedPiecesGiveZeros) {
  std::mt19937 gen(36);
  G g;
  A xv = rnd<double>({2, 6}, gen);
  E x = g.parameter("x", xv);
  std::vector<E> p = xgrad::split(x, {1, 3, 2}, 1);
  E y = xgrad::sum(xgrad::square(p[0])) + 3.0 * xgrad::sum(p[2]);  // p[1] unused
  expect_grads_ok(y, {x}, {}, "split");
  expect_second_order_ok(p[0] * p[0] + xgrad::sum(p[2]), {x}, {}, {{2, 6}}, gen, "split");
  A gx = xgrad::eval(xgrad::grad(y, {x})[0]);
  for (std::size_t r = 0; r < 2; ++r) {
    EXPECT_DOUBLE_EQ(gx(r, 0), 2 * xv(r, 0));
    for (std::size_t c = 1; c < 4; ++c) EXPECT_EQ(gx(r, c), 0.0) << "unused piece";
    EXPECT_EQ(gx(r, 4), 3.0);
    EXPECT_EQ(gx(r, 5), 3.0);
  }
  // Every piece used: the gradient is the pieces' gradients put back together.
  std::vector<E> q = xgrad::split(x, 3, 1);
  ASSERT_EQ(q.size(), 3u);
  E z = xgrad::sum(q[0] * 1.0) + 2.0 * xgrad::sum(q[1]) + xgrad::sum(xgrad::sin(q[2]));
  expect_grads_ok(z, {x}, {}, "split, every piece");
}

// ------------------------------------------------------------------ printed forms

TEST(OpsLinalgShapePrint, Formulas) {
  G g;
  E a = g.input("a", {open, 3, 4}), b = g.input("b", {open, 5, 4}), w = g.input("w", {4, 2});
  EXPECT_EQ(xgrad::to_string(xgrad::matmul(a, b, false, true)), "a @ b^T");
  EXPECT_EQ(xgrad::to_string(xgrad::matmul(a, w)), "a @ w");
  E u = g.input("u", {3}), v = g.input("v", {2});
  EXPECT_EQ(xgrad::to_string(xgrad::outer(u, v)), "outer(u, v)");
  E s = g.input("s", {3});
  EXPECT_EQ(xgrad::to_string(xgrad::stack(std::vector<E>{u, s}, 1)), "stack([u, s], axis=1)");
  std::vector<E> p = xgrad::split(g.input("x", {2, 5}), {2, 3}, 1);
  EXPECT_EQ(xgrad::to_string(p[1]), "slice(x, axis=1, 2:5)");
}

}  // namespace
