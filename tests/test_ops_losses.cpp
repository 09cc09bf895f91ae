// Losses with a Reduction: binary cross-entropy on logits (with pos_weight), Huber, L1,
// cross-entropy with per-class weights, MSE none/sum; values by hand, gradients against
// central differences in double precision (first and second order, open batches), the
// shape check every loss makes instead of broadcasting (messages, at build time and at
// run time), and printed forms.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "gradcheck_util.hpp"
#include "test_util.hpp"

namespace {

using xgrad::Graph;
using xgrad::open;
using xgrad::Reduction;
using xgrad_test::contains;
using xgrad_test::expect_grads_ok;
using xgrad_test::expect_second_order_ok;
using E = xgrad::Expr<double>;
using G = xgrad::Graph<double>;
using A = xt::xarray<double>;
using I64 = xt::xarray<std::int64_t>;
using Sh = std::vector<std::size_t>;

template <class T>
constexpr double kTol = std::is_same_v<T, float> ? 2e-5 : 1e-12;

/// log(1 + e^x) for moderate x.
double sp(double x) { return std::log1p(std::exp(x)); }

A rnd(const Sh& s, std::mt19937& gen, double lo = -1.5, double hi = 1.5) {
  return xgrad_test::uniform_values(s, gen, lo, hi);
}
template <class T>
void expect_values(const xt::xarray<T>& got, const std::vector<double>& want, double tol,
                   const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(static_cast<double>(got.data()[i]), want[i], tol * std::max(1.0, std::abs(want[i])))
        << what << " [" << i << "]";
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
double sum_of(const std::vector<double>& v) { return mean_of(v) * static_cast<double>(v.size()); }

// ------------------------------------------------------------------ forward values

template <class T>
void check_bce_forward() {
  Graph<T> g;
  auto z = g.input("z", {open});
  auto y = g.input("y", {open});
  auto f = xgrad::compile({xgrad::binary_cross_entropy_with_logits(z, y),
                           xgrad::binary_cross_entropy_with_logits(z, y, Reduction::sum),
                           xgrad::binary_cross_entropy_with_logits(z, y, Reduction::none)});
  // Huge logits neither overflow nor lose the linear part.
  xt::xarray<T> zv = {0, 2, -1000, 1000, -3}, yv = {1, 0, 1, 0, 0.25};
  const std::vector<double> terms{std::log(2.0), sp(2), 1000, 1000, 0.25 * sp(3) + 0.75 * sp(-3)};
  const auto& r = f.run({{z, zv}, {y, yv}});
  expect_values(r[0], {mean_of(terms)}, kTol<T>, "mean");
  expect_values(r[1], {sum_of(terms)}, kTol<T>, "sum");
  expect_values(r[2], terms, kTol<T>, "none");
}

TEST(Losses, BinaryCrossEntropyWithLogitsFloat) { check_bce_forward<float>(); }
TEST(Losses, BinaryCrossEntropyWithLogitsDouble) { check_bce_forward<double>(); }

TEST(Losses, BinaryCrossEntropyPosWeightAlongClasses) {
  G g;
  auto z = g.input("z", {open, 2});
  auto y = g.input("y", {open, 2});
  auto pw = g.parameter("pw", A{3, 0.5});
  auto loss = xgrad::binary_cross_entropy_with_logits(z, y, Reduction::none, pw);
  EXPECT_EQ(loss.shape(), (xgrad::Shape{open, 2}));
  A zv = {{0, 2}, {-1, 1}}, yv = {{1, 0}, {0.25, 1}};
  // pos_weight * y * softplus(-z) + (1 - y) * softplus(z)
  const std::vector<double> terms{3 * std::log(2.0), sp(2), 3 * 0.25 * sp(1) + 0.75 * sp(-1),
                                  0.5 * sp(-1)};
  auto f =
      xgrad::compile({loss, xgrad::binary_cross_entropy_with_logits(z, y, Reduction::mean, pw)});
  const auto& r = f.run({{z, zv}, {y, yv}});
  expect_values(r[0], terms, 1e-12, "none");
  expect_values(r[1], {mean_of(terms)}, 1e-12, "mean");
  // pos_weight 1 is the unweighted loss.
  auto one = g.parameter("one", A{1, 1});
  auto f1 = xgrad::compile({xgrad::binary_cross_entropy_with_logits(z, y, Reduction::sum, one),
                            xgrad::binary_cross_entropy_with_logits(z, y, Reduction::sum)});
  const auto& r1 = f1.run({{z, zv}, {y, yv}});
  EXPECT_NEAR(r1[0](), r1[1](), 1e-12);
  // A pos_weight that would enlarge the targets is refused.
  try {
    (void)xgrad::binary_cross_entropy_with_logits(z, y, Reduction::mean,
                                                  g.parameter("p3", A{1, 2, 3}));
    ADD_FAILURE() << "expected ShapeError";
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "pos_weight (3,)")) << e.what();
    EXPECT_TRUE(contains(e.what(), "(?, 2)")) << e.what();
  }
}

template <class T>
void check_huber_l1_forward() {
  Graph<T> g;
  auto p = g.input("p", {4});
  auto t = g.input("t", {4});
  xt::xarray<T> pv = {1, 1.5, 4, -1}, tv = {1, 1, 1, 1};  // d = 0, 0.5, 3, -2
  auto f = xgrad::compile({xgrad::huber(p, t), xgrad::huber(p, t, 0.5, Reduction::none),
                           xgrad::huber(p, t, 1.0, Reduction::sum), xgrad::l1(p, t),
                           xgrad::l1(p, t, Reduction::none), xgrad::l1(p, t, Reduction::sum)});
  const auto& r = f.run({{p, pv}, {t, tv}});
  expect_values(r[0], {mean_of({0, 0.125, 2.5, 1.5})}, kTol<T>, "huber mean");
  expect_values(r[1], {0, 0.125, 1.375, 0.875}, kTol<T>, "huber delta 0.5 none");
  expect_values(r[2], {4.125}, kTol<T>, "huber sum");
  expect_values(r[3], {5.5 / 4}, kTol<T>, "l1 mean");
  expect_values(r[4], {0, 0.5, 3, 2}, kTol<T>, "l1 none");
  expect_values(r[5], {5.5}, kTol<T>, "l1 sum");
  // The gradients by hand: clamp(d, -delta, delta) / n and sign(d) / n (0 at d = 0).
  auto gs = xgrad::grad(xgrad::huber(p, t), {p, t});
  auto gl = xgrad::grad(xgrad::l1(p, t), {p});
  auto fg = xgrad::compile({gs[0], gs[1], gl[0]});
  const auto& rg = fg.run({{p, pv}, {t, tv}});
  expect_values(rg[0], {0, 0.125, 0.25, -0.25}, kTol<T>, "d huber / d pred");
  expect_values(rg[1], {0, -0.125, -0.25, 0.25}, kTol<T>, "d huber / d target");
  expect_values(rg[2], {0, 0.25, 0.25, -0.25}, kTol<T>, "d l1 / d pred");
  for (double bad : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    EXPECT_THROW(xgrad::huber(p, t, bad), xgrad::ValueError) << bad;
  }
}

TEST(Losses, HuberAndL1Float) { check_huber_l1_forward<float>(); }
TEST(Losses, HuberAndL1Double) { check_huber_l1_forward<double>(); }

TEST(Losses, MseReductions) {
  G g;
  auto p = g.input("p", {open});
  auto t = g.input("t", {open});
  auto f = xgrad::compile(
      {xgrad::mse(p, t), xgrad::mse(p, t, Reduction::sum), xgrad::mse(p, t, Reduction::none)});
  A pv = {1, 2, 3}, tv = {0, 4, 3};
  const auto& r = f.run({{p, pv}, {t, tv}});
  expect_values(r[0], {5.0 / 3}, 1e-12, "mean");
  expect_values(r[1], {5}, 1e-12, "sum");
  expect_values(r[2], {1, 4, 0}, 1e-12, "none");
}

/// -log softmax(z)[label] per row, in double.
std::vector<double> ce_rows(const A& z, const I64& labels) {
  std::vector<double> out;
  for (std::size_t r = 0; r < z.shape(0); ++r) {
    double m = z(r, 0), s = 0;
    for (std::size_t j = 1; j < z.shape(1); ++j) m = std::max(m, z(r, j));
    for (std::size_t j = 0; j < z.shape(1); ++j) s += std::exp(z(r, j) - m);
    out.push_back(m + std::log(s) - z(r, static_cast<std::size_t>(labels(r))));
  }
  return out;
}

template <class T>
void check_cross_entropy_weights() {
  Graph<T> g;
  auto z = g.input("z", {open, 3});
  auto labels = g.input("labels", {open}, xgrad::DType::int64);
  auto w = g.parameter("w", xt::xarray<T>{1, 2, 0.5});
  auto f = xgrad::compile({xgrad::cross_entropy(z, labels, Reduction::mean, w),
                           xgrad::cross_entropy(z, labels, Reduction::sum, w),
                           xgrad::cross_entropy(z, labels, Reduction::none, w),
                           xgrad::cross_entropy(z, labels, Reduction::none),
                           xgrad::cross_entropy(z, labels, Reduction::sum)});
  A zd = {{0.5, -1, 2}, {1, 0, -0.5}, {-2, 3, 0}};
  xt::xarray<T> zv = xt::cast<T>(zd);
  I64 lv = {0, 2, 2};
  std::vector<double> l = ce_rows(zd, lv);
  // PyTorch's weighted mean: sum_r w[y_r] l_r / sum_r w[y_r].
  const double num = 1 * l[0] + 0.5 * l[1] + 0.5 * l[2], den = 1 + 0.5 + 0.5;
  const auto& r = f.run({{z, zv}, {labels, lv}});
  expect_values(r[0], {num / den}, kTol<T>, "weighted mean");
  expect_values(r[1], {num}, kTol<T>, "weighted sum");
  expect_values(r[2], {l[0], 0.5 * l[1], 0.5 * l[2]}, kTol<T>, "weighted none");
  expect_values(r[3], l, kTol<T>, "none");
  expect_values(r[4], {sum_of(l)}, kTol<T>, "sum");
  // Class weights must be one per class.
  EXPECT_THROW(
      xgrad::cross_entropy(z, labels, Reduction::mean, g.parameter("w2", xt::xarray<T>{1, 2})),
      xgrad::ShapeError);
  // Out-of-range labels still name the op at run time.
  I64 bad = {0, 3, 1};
  EXPECT_THROW(f.run({{z, zv}, {labels, bad}}), xgrad::ValueError);
}

TEST(Losses, CrossEntropyReductionsAndClassWeightsFloat) { check_cross_entropy_weights<float>(); }
TEST(Losses, CrossEntropyReductionsAndClassWeightsDouble) { check_cross_entropy_weights<double>(); }

// ------------------------------------------------------------------ the shape trap

/// The message of the ShapeError build() throws (empty, with a failure, if none).
std::string shape_error(const std::function<void()>& build) {
  try {
    build();
  } catch (const xgrad::ShapeError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected ShapeError";
  return "";
}

void expect_words(const std::string& msg, const std::vector<std::string>& words) {
  for (const std::string& w : words) EXPECT_TRUE(contains(msg, w)) << "'" << w << "' in: " << msg;
}

TEST(LossShapes, ColumnPredictionAgainstVectorTargetIsRefused) {
  // mse(pred (n, 1), y (n)) would broadcast to (n, n) and train silently wrong.
  G g;
  E pred = g.input("pred", {4, 1}), y = g.input("y", {4});
  using Loss = std::function<E(E, E)>;
  const std::vector<std::pair<std::string, Loss>> losses{
      {"mse", [](E p, E t) { return xgrad::mse(p, t); }},
      {"rmse", [](E p, E t) { return xgrad::rmse(p, t); }},
      {"huber", [](E p, E t) { return xgrad::huber(p, t); }},
      {"l1", [](E p, E t) { return xgrad::l1(p, t, Reduction::none); }},
      {"binary_cross_entropy_with_logits",
       [](E p, E t) { return xgrad::binary_cross_entropy_with_logits(p, t); }},
  };
  for (const auto& entry : losses) {
    const std::string& name = entry.first;  // not bound: captured below (Clang 14)
    const Loss& loss = entry.second;
    std::string msg = shape_error([&] { (void)loss(pred, y); });
    expect_words(
        msg, {name + ":", "'pred'", "'y'", "(4, 1)", "(4,)", "squeeze", "reshape", "broadcast"});
    // Either order.
    expect_words(shape_error([&] { (void)loss(y, pred); }), {name + ":", "(4, 1)", "(4,)"});
    // Matching shapes pass.
    E ok = loss(xgrad::squeeze(pred, {1}), y);
    EXPECT_TRUE(ok.valid()) << name;
  }
  // Open batches: ranks differ, refused at build time too.
  E po = g.input("po", {open, 1}), yo = g.input("yo", {open});
  expect_words(shape_error([&] { (void)xgrad::mse(po, yo); }), {"mse:", "(?, 1)", "(?,)"});
  // Known extents that differ beside an open one.
  E pa = g.input("pa", {open, 3}), ya = g.input("ya", {open, 2});
  expect_words(shape_error([&] { (void)xgrad::l1(pa, ya); }), {"l1:", "(?, 3)", "(?, 2)"});
}

TEST(LossShapes, OpenDimensionsAreCheckedWhenTheRunBindsThem) {
  G g;
  E p = g.input("p", {open}), y = g.input("y", {open});
  auto f = xgrad::compile({xgrad::mse(p, y), xgrad::binary_cross_entropy_with_logits(p, y)});
  A pv = {0.5, 1, 2}, yv = {0, 1, 1};
  const auto& r = f.run({{p, pv}, {y, yv}});
  EXPECT_NEAR(r[0](), (0.25 + 0 + 1) / 3, 1e-12);
  // A batch of one prediction against five targets would broadcast: refused at run time.
  A p1 = {0.5}, y5 = {0, 1, 1, 0, 1};
  std::string msg = shape_error([&] { f.run({{p, p1}, {y, y5}}); });
  expect_words(msg, {"mse", "prediction (1,)", "target (5,)", "squeeze", "reshape", "'p'", "'y'"});
  // The Function stays usable.
  EXPECT_NEAR(f.run({{p, pv}, {y, yv}})[0](), (0.25 + 0 + 1) / 3, 1e-12);
}

TEST(LossShapes, CrossEntropyWantsLabelsOfOneAxis) {
  G g;
  E z = g.input("z", {open, 3});
  E col = g.input("col", {open, 1}, xgrad::DType::int64);
  expect_words(shape_error([&] { (void)xgrad::cross_entropy(z, col); }),
               {"cross_entropy:", "logits (?, 3)", "labels (?, 1)", "squeeze(labels, {1})",
                "reshape", "'z'", "'col'"});
  E l5 = g.input("l5", {5}, xgrad::DType::int64);
  expect_words(shape_error([&] {
                 (void)xgrad::cross_entropy(g.input("z4", {4, 3}), l5);
               }),
               {"cross_entropy:", "4 rows", "(5,)"});
  // Rows that differ at run time.
  E lo = g.input("lo", {open}, xgrad::DType::int64);
  auto f = xgrad::compile({xgrad::cross_entropy(z, lo)});
  A zv = xt::zeros<double>({2, 3});
  I64 lv = {0, 1, 2};
  expect_words(shape_error([&] { f.run({{z, zv}, {lo, lv}}); }), {"cross_entropy", "rows"});
}

TEST(LossShapes, ExplicitBroadcastStillWorks) {
  // With the target broadcast on purpose, the loss is what it was.
  G g;
  E p = g.input("p", {open, 2});
  E t = g.parameter("t", A{1, 2});
  E loss = xgrad::mse(p, xgrad::broadcast_like(t, p));
  A pv = {{1, 1}, {3, 2}};
  EXPECT_NEAR(xgrad::eval(loss, {{p, pv}})(), (0 + 1 + 4 + 0) / 4.0, 1e-12);
}

// ------------------------------------------------------------------ gradients

const std::vector<std::pair<Reduction, std::string>> kReductions{
    {Reduction::mean, "mean"}, {Reduction::sum, "sum"}, {Reduction::none, "none"}};

TEST(LossesGradcheck, BinaryCrossEntropyWithLogits) {
  std::mt19937 gen(41);
  for (const auto& [red, rname] : kReductions) {
    for (bool weighted : {false, true}) {
      const std::string what = "bce " + rname + (weighted ? " pos_weight" : "");
      G g;
      A zv = rnd({3, 2}, gen, -4, 4), yv = rnd({3, 2}, gen, 0, 1);
      E z = g.input("z", {open, 2}), y = g.input("y", {open, 2});
      E pw = g.parameter("pw", rnd({2}, gen, 0.5, 3));
      E loss = xgrad::binary_cross_entropy_with_logits(z, y, red, weighted ? pw : E());
      std::vector<E> xs{z, y};
      std::vector<Sh> shapes{{3, 2}, {3, 2}};
      if (weighted) {
        xs.push_back(pw);
        shapes.push_back({2});
      }
      std::vector<xgrad::Feed<double>> feeds{{z, zv}, {y, yv}};
      expect_grads_ok(loss, xs, feeds, what);
      expect_second_order_ok(loss, xs, feeds, shapes, gen, what);
    }
  }
  // d/dz = sigmoid(z) - y by hand, at huge logits too.
  G g;
  E z = g.parameter("z", A{-1000, 0, 1000}), y = g.parameter("y", A{1, 0.5, 0});
  A gz = xgrad::eval(
      xgrad::grad(xgrad::binary_cross_entropy_with_logits(z, y, Reduction::sum), {z})[0]);
  expect_values(gz, {-1, 0, 1}, 1e-12, "d bce / dz");
}

TEST(LossesGradcheck, HuberAndL1) {
  std::mt19937 gen(42);
  for (const auto& [red, rname] : kReductions) {
    for (double delta : {1.0, 0.3}) {
      G g;
      A pv = rnd({4, 3}, gen);
      E p = g.input("p", {open, 3}), t = g.parameter("t", rnd({4, 3}, gen));
      E h = xgrad::huber(p, t, delta, red);
      const std::string what = "huber " + rname + " delta " + std::to_string(delta);
      expect_grads_ok(h, {p, t}, {{p, pv}}, what);
      expect_second_order_ok(h, {p, t}, {{p, pv}}, {{4, 3}, {4, 3}}, gen, what);
    }
    G g;
    E p = g.parameter("p", rnd({4, 3}, gen)), t = g.parameter("t", rnd({4, 3}, gen));
    expect_grads_ok(xgrad::l1(p, t, red), {p, t}, {}, "l1 " + rname);
    expect_second_order_ok(xgrad::l1(p, t, red), {p, t}, {}, {{4, 3}, {4, 3}}, gen, "l1 " + rname);
  }
}

TEST(LossesGradcheck, MseSumAndNone) {
  std::mt19937 gen(43);
  for (const auto& [red, rname] : kReductions) {
    G g;
    E p = g.parameter("p", rnd({2, 3}, gen)), t = g.parameter("t", rnd({2, 3}, gen));
    expect_grads_ok(xgrad::mse(p, t, red), {p, t}, {}, "mse " + rname);
    expect_second_order_ok(xgrad::mse(p, t, red), {p, t}, {}, {{2, 3}, {2, 3}}, gen,
                           "mse " + rname);
  }
}

TEST(LossesGradcheck, CrossEntropyReductionsAndClassWeights) {
  std::mt19937 gen(44);
  for (const auto& [red, rname] : kReductions) {
    for (bool weighted : {false, true}) {
      const std::string what = "cross_entropy " + rname + (weighted ? " weighted" : "");
      G g;
      A zv = rnd({4, 3}, gen);
      E z = g.input("z", {open, 3});
      E labels = g.input("labels", {open}, xgrad::DType::int64);
      I64 lv = {2, 0, 2, 1};
      E w = g.parameter("w", rnd({3}, gen, 0.5, 2));
      E loss = xgrad::cross_entropy(z, labels, red, weighted ? w : E());
      std::vector<E> xs{z};
      std::vector<Sh> shapes{{4, 3}};
      if (weighted) {  // the gradient with respect to the weights as well
        xs.push_back(w);
        shapes.push_back({3});
      }
      std::vector<xgrad::Feed<double>> feeds{{z, zv}, {labels, lv}};
      expect_grads_ok(loss, xs, feeds, what);
      expect_second_order_ok(loss, xs, feeds, shapes, gen, what);
    }
  }
}

// ------------------------------------------------------------------ printed forms

TEST(LossesPrint, Formulas) {
  G g;
  E p = g.input("p", {open}), y = g.input("y", {open});
  EXPECT_EQ(xgrad::to_string(xgrad::mse(p, y)), "mean(square(y - p))");
  EXPECT_EQ(xgrad::to_string(xgrad::mse(p, y, Reduction::sum)), "sum(square(y - p))");
  EXPECT_EQ(xgrad::to_string(xgrad::l1(p, y)), "mean(abs(p - y))");
  EXPECT_EQ(xgrad::to_string(xgrad::binary_cross_entropy_with_logits(p, y, Reduction::none)),
            "softplus(p) - p*y");
  EXPECT_EQ(xgrad::to_string(xgrad::huber(p, y, 1.0, Reduction::none)),
            "clamp(abs(p - y))*(abs(p - y) - 0.5*clamp(abs(p - y)))");
  E z = g.input("z", {open, 3}), w = g.input("w", {3});
  E labels = g.input("labels", {open}, xgrad::DType::int64);
  EXPECT_EQ(xgrad::to_string(xgrad::cross_entropy(z, labels)), "cross_entropy(z, labels)");
  EXPECT_EQ(xgrad::to_string(xgrad::cross_entropy(z, labels, Reduction::sum, w)),
            "cross_entropy(z, labels, weights=w, sum)");
}

}  // namespace
