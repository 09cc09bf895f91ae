// Forward values of every op in ops.hpp against independent computations: plain loops
// over flat indices (NumPy broadcasting, reductions, matmul, transpose done by hand here),
// for float and double, through compiled Functions with bound inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace {

// The ops whose forward values this file checks, by table (include/xgrad/ops/). A row
// added to a table fails this count until its tests are here; elementwise rows are also
// matched by name against the cases below (EveryElementwiseOpHasCases). The cases of
// outer, stack and the losses with a Reduction sit in test_ops_linalg_shape.cpp and
// test_ops_losses.cpp; the special values of erf, log1p, expm1, gelu, stop_gradient and
// where, and the reductions from min on, in test_ops_math.cpp.
static_assert(XGRAD_TEST_ROWS(XGRAD_ELEMENTWISE_OPS) == 33, "elementwise op without tests");
static_assert(XGRAD_TEST_ROWS(XGRAD_LINALG_OPS) == 3, "linear-algebra op without tests");
static_assert(XGRAD_TEST_ROWS(XGRAD_REDUCE_OPS) == 12, "reduction without tests");
static_assert(XGRAD_TEST_ROWS(XGRAD_SHAPE_OPS) == 10, "shape op without tests");
static_assert(XGRAD_TEST_ROWS(XGRAD_SLICE_OPS) == 4, "slice or join without tests");
static_assert(XGRAD_TEST_ROWS(XGRAD_NN_OPS) == 9, "nn op without tests");

using xgrad::Dim;
using xgrad::Expr;
using xgrad::Graph;
using Sh = std::vector<std::size_t>;
using Ref = xt::xarray<double>;
using I64 = xt::xarray<std::int64_t>;

/// Relative tolerance (scaled by max(1, |expected|)) of a forward comparison.
template <class T>
constexpr double kTol = std::is_same_v<T, float> ? 1e-5 : 1e-12;

// ------------------------------------------------------------------ reference helpers

std::size_t numel(const Sh& s) {
  std::size_t n = 1;
  for (std::size_t d : s) n *= d;
  return n;
}

Sh unravel(std::size_t flat, const Sh& s) {
  Sh idx(s.size());
  for (std::size_t i = s.size(); i-- > 0;) {
    idx[i] = flat % s[i];
    flat /= s[i];
  }
  return idx;
}

std::size_t ravel(const Sh& idx, const Sh& s) {
  std::size_t f = 0;
  for (std::size_t i = 0; i < s.size(); ++i) f = f * s[i] + idx[i];
  return f;
}

template <class A>
Sh shape_of(const A& a) {
  return Sh(a.shape().begin(), a.shape().end());
}

xgrad::Shape dims(const Sh& s) { return xgrad::Shape(s.begin(), s.end()); }

template <class T>
Ref to_ref(const xt::xarray<T>& a) {
  Ref r = Ref::from_shape(shape_of(a));
  for (std::size_t i = 0; i < a.size(); ++i) r.data()[i] = static_cast<double>(a.data()[i]);
  return r;
}

Ref make_ref(const Sh& s, std::vector<double> v) {
  Ref r = Ref::from_shape(s);
  EXPECT_EQ(v.size(), r.size());
  for (std::size_t i = 0; i < r.size() && i < v.size(); ++i) r.data()[i] = v[i];
  return r;
}

/// Element of a (right-aligned, size-1 axes repeated) at an index of the broadcast shape.
double bget(const Ref& a, const Sh& out_idx) {
  Sh as = shape_of(a);
  std::size_t off = out_idx.size() - as.size();
  Sh ai(as.size());
  for (std::size_t i = 0; i < as.size(); ++i) ai[i] = as[i] == 1 ? 0 : out_idx[i + off];
  return a.data()[ravel(ai, as)];
}

template <class F>
Ref map1(const Ref& a, F f) {
  Ref r = Ref::from_shape(shape_of(a));
  for (std::size_t i = 0; i < a.size(); ++i) r.data()[i] = f(a.data()[i]);
  return r;
}

template <class F>
Ref map2(const Ref& a, const Ref& b, const Sh& out, F f) {
  Ref r = Ref::from_shape(out);
  for (std::size_t k = 0; k < r.size(); ++k) {
    Sh i = unravel(k, out);
    r.data()[k] = f(bget(a, i), bget(b, i));
  }
  return r;
}

Ref reshaped(const Ref& a, const Sh& s) {
  Ref r = Ref::from_shape(s);
  EXPECT_EQ(r.size(), a.size());
  std::copy_n(a.data(), std::min(a.size(), r.size()), r.data());
  return r;
}

Ref broadcast_ref(const Ref& a, const Sh& out) {
  return map2(a, Ref(0.0), out, [](double x, double) { return x; });
}

enum class Red { sum, mean, max };

/// Reduction over axes (negative allowed, empty = all) by accumulating into the kept shape.
Ref reduce_ref(const Ref& a, std::vector<Dim> axes, bool keepdims, Red kind) {
  Sh s = shape_of(a);
  std::vector<bool> red(s.size(), axes.empty());
  for (Dim ax : axes)
    red[static_cast<std::size_t>(ax < 0 ? ax + static_cast<Dim>(s.size()) : ax)] = true;
  Sh kept = s;
  Sh out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (red[i]) kept[i] = 1;
    if (!red[i])
      out.push_back(s[i]);
    else if (keepdims)
      out.push_back(1);
  }
  Ref acc = Ref::from_shape(kept);
  double init = kind == Red::max ? -std::numeric_limits<double>::infinity() : 0.0;
  for (double& e : acc) e = init;
  for (std::size_t k = 0; k < a.size(); ++k) {
    Sh idx = unravel(k, s);
    for (std::size_t i = 0; i < s.size(); ++i)
      if (red[i]) idx[i] = 0;
    double& o = acc.data()[ravel(idx, kept)];
    o = kind == Red::max ? std::max(o, a.data()[k]) : o + a.data()[k];
  }
  if (kind == Red::mean) {
    double count = static_cast<double>(numel(s) / numel(kept));
    for (double& e : acc) e /= count;
  }
  Ref r = Ref::from_shape(out);
  for (std::size_t i = 0; i < r.size(); ++i) r.data()[i] = acc.data()[i];
  return r;
}

/// op(A) @ op(B) for 2-d operands, by loops.
Ref matmul_ref(const Ref& a, const Ref& b, bool ta, bool tb) {
  Sh as = shape_of(a), bs = shape_of(b);
  std::size_t m = ta ? as[1] : as[0], k = ta ? as[0] : as[1], n = tb ? bs[0] : bs[1];
  Ref r = Ref::from_shape({m, n});
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      double s = 0;
      for (std::size_t q = 0; q < k; ++q) {
        double x = ta ? a(q, i) : a(i, q);
        double y = tb ? b(j, q) : b(q, j);
        s += x * y;
      }
      r(i, j) = s;
    }
  }
  return r;
}

Ref transpose_ref(const Ref& a, const std::vector<std::size_t>& perm) {
  Sh s = shape_of(a), os(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) os[i] = s[perm[i]];
  Ref r = Ref::from_shape(os);
  for (std::size_t k = 0; k < r.size(); ++k) {
    Sh oi = unravel(k, os), ii(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) ii[perm[i]] = oi[i];
    r.data()[k] = a.data()[ravel(ii, s)];
  }
  return r;
}

/// Elements [b, e) along axis (already normalised), by loops.
Ref slice_ref(const Ref& a, std::size_t axis, std::size_t b, std::size_t e) {
  Sh s = shape_of(a), os = s;
  os[axis] = e - b;
  Ref r = Ref::from_shape(os);
  for (std::size_t k = 0; k < r.size(); ++k) {
    Sh i = unravel(k, os);
    i[axis] += b;
    r.data()[k] = a.data()[ravel(i, s)];
  }
  return r;
}

double logsumexp(const double* z, std::size_t n, std::size_t stride = 1) {
  double m = -std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j < n; ++j) m = std::max(m, z[j * stride]);
  double s = 0;
  for (std::size_t j = 0; j < n; ++j) s += std::exp(z[j * stride] - m);
  return m + std::log(s);
}

template <class T>
void expect_close(const xt::xarray<T>& got, const Ref& want, double tol) {
  ASSERT_EQ(shape_of(got), shape_of(want));
  int bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    double g = static_cast<double>(got.data()[i]), w = want.data()[i];
    bool ok = std::isnan(w)   ? std::isnan(g)
              : std::isinf(w) ? g == w
                              : std::abs(g - w) <= tol * std::max(1.0, std::abs(w));
    if (!ok) {
      EXPECT_NEAR(g, w, tol * std::max(1.0, std::abs(w))) << "at flat index " << i;
      if (++bad >= 5) return;
    }
  }
}

template <class T>
void expect_all_finite(const xt::xarray<T>& a) {
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(std::isfinite(a.data()[i])) << "index " << i;
}

template <class T>
xt::xarray<T> rnd(const Sh& s, std::mt19937& gen, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<double> d(lo, hi);
  xt::xarray<T> a = xt::xarray<T>::from_shape(s);
  for (T& e : a) e = static_cast<T>(d(gen));
  return a;
}

/// Small integers in [lo, hi], so ties and exact zeros occur.
template <class T>
xt::xarray<T> rnd_int(const Sh& s, std::mt19937& gen, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  xt::xarray<T> a = xt::xarray<T>::from_shape(s);
  for (T& e : a) e = static_cast<T>(d(gen));
  return a;
}

template <class T>
class OpsForward : public ::testing::Test {};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(OpsForward, FloatTypes);

const std::vector<Sh> kShapes = {{}, {5}, {2, 3}, {2, 3, 4}};

// ------------------------------------------------------------------ elementwise unary

template <class T>
struct UnaryCase {
  const char* name;
  std::function<Expr<T>(Expr<T>)> op;
  std::function<double(double)> ref;
  double lo, hi;
};

template <class T>
std::vector<UnaryCase<T>> unary_cases() {
  using E = Expr<T>;
  return {
      {"neg", [](E x) { return xgrad::neg(x); }, [](double v) { return -v; }, -2, 2},
      {"unary -", [](E x) { return -x; }, [](double v) { return -v; }, -2, 2},
      {"square", [](E x) { return xgrad::square(x); }, [](double v) { return v * v; }, -2, 2},
      {"sqrt", [](E x) { return xgrad::sqrt(x); }, [](double v) { return std::sqrt(v); }, 0.1, 4},
      {"exp", [](E x) { return xgrad::exp(x); }, [](double v) { return std::exp(v); }, -3, 3},
      {"log", [](E x) { return xgrad::log(x); }, [](double v) { return std::log(v); }, 0.1, 4},
      {"abs", [](E x) { return xgrad::abs(x); }, [](double v) { return std::abs(v); }, -2, 2},
      {"sin", [](E x) { return xgrad::sin(x); }, [](double v) { return std::sin(v); }, -3, 3},
      {"cos", [](E x) { return xgrad::cos(x); }, [](double v) { return std::cos(v); }, -3, 3},
      {"tanh", [](E x) { return xgrad::tanh(x); }, [](double v) { return std::tanh(v); }, -3, 3},
      {"sigmoid", [](E x) { return xgrad::sigmoid(x); },
       [](double v) { return 1 / (1 + std::exp(-v)); }, -5, 5},
      {"relu", [](E x) { return xgrad::relu(x); }, [](double v) { return v > 0 ? v : 0.0; }, -2, 2},
      {"leaky_relu", [](E x) { return xgrad::leaky_relu(x); },
       [](double v) { return v >= 0 ? v : double(T(0.01)) * v; }, -2, 2},
      {"leaky_relu 0.2", [](E x) { return xgrad::leaky_relu(x, T(0.2)); },
       [](double v) { return v >= 0 ? v : double(T(0.2)) * v; }, -2, 2},
      {"softplus", [](E x) { return xgrad::softplus(x); },
       [](double v) { return std::log1p(std::exp(v)); }, -5, 5},
      {"sign", [](E x) { return xgrad::sign(x); },
       [](double v) { return static_cast<double>((v > 0) - (v < 0)); }, -2, 2},
      {"step", [](E x) { return xgrad::step(x); }, [](double v) { return v > 0 ? 1.0 : 0.0; }, -2,
       2},
      {"pow 3", [](E x) { return xgrad::pow(x, T(3)); }, [](double v) { return v * v * v; }, -2, 2},
      {"pow 2", [](E x) { return xgrad::pow(x, T(2)); }, [](double v) { return v * v; }, -2, 2},
      {"pow 0.5", [](E x) { return xgrad::pow(x, T(0.5)); }, [](double v) { return std::sqrt(v); },
       0.1, 4},
      {"pow -1.5", [](E x) { return xgrad::pow(x, T(-1.5)); },
       [](double v) { return std::pow(v, -1.5); }, 0.5, 3},
      {"pow 1", [](E x) { return xgrad::pow(x, T(1)); }, [](double v) { return v; }, -2, 2},
      {"pow 0", [](E x) { return xgrad::pow(x, T(0)); }, [](double) { return 1.0; }, -2, 2},
      {"erf", [](E x) { return xgrad::erf(x); }, [](double v) { return std::erf(v); }, -3, 3},
      {"log1p", [](E x) { return xgrad::log1p(x); }, [](double v) { return std::log1p(v); }, -0.9,
       3},
      {"expm1", [](E x) { return xgrad::expm1(x); }, [](double v) { return std::expm1(v); }, -3, 3},
      {"gelu", [](E x) { return xgrad::gelu(x); },
       [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, -4, 4},
      {"gelu tanh", [](E x) { return xgrad::gelu(x, xgrad::GeluApproximate::tanh); },
       [](double v) {
         return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
       },
       -4, 4},
      {"stop_gradient", [](E x) { return xgrad::stop_gradient(x); }, [](double v) { return v; }, -2,
       2},
      {"clamp", [](E x) { return xgrad::clamp(x, T(-0.3), T(0.4)); },
       [](double v) { return std::min(std::max(v, double(T(-0.3))), double(T(0.4))); }, -1, 1},
      {"x + 2", [](E x) { return x + T(2); }, [](double v) { return v + 2; }, -2, 2},
      {"2 + x", [](E x) { return T(2) + x; }, [](double v) { return 2 + v; }, -2, 2},
      {"x - 2", [](E x) { return x - T(2); }, [](double v) { return v - 2; }, -2, 2},
      {"2 - x", [](E x) { return T(2) - x; }, [](double v) { return 2 - v; }, -2, 2},
      {"x * 3", [](E x) { return x * T(3); }, [](double v) { return v * 3; }, -2, 2},
      {"3 * x", [](E x) { return T(3) * x; }, [](double v) { return 3 * v; }, -2, 2},
      {"x / 4", [](E x) { return x / T(4); }, [](double v) { return v / 4; }, -2, 2},
      {"4 / x", [](E x) { return T(4) / x; }, [](double v) { return 4 / v; }, 0.5, 2},
      {"x * 0", [](E x) { return x * T(0); }, [](double) { return 0.0; }, -2, 2},
  };
}

TYPED_TEST(OpsForward, UnaryElementwiseAllRanks) {
  using T = TypeParam;
  std::mt19937 gen(1);
  for (const auto& c : unary_cases<T>()) {
    for (const Sh& s : kShapes) {
      SCOPED_TRACE(std::string(c.name) + " shape rank " + std::to_string(s.size()));
      Graph<T> g;
      auto x = g.input("x", dims(s));
      auto xv = rnd<T>(s, gen, c.lo, c.hi);
      expect_close(xgrad::eval(c.op(x), {{x, xv}}), map1(to_ref(xv), c.ref), kTol<T>);
    }
    // The same op on a batch dimension left open, bound with two batch sizes.
    SCOPED_TRACE(std::string(c.name) + " open batch");
    Graph<T> g;
    auto x = g.input("x", {xgrad::open, 3});
    auto f = xgrad::compile({c.op(x)});
    for (std::size_t n : {4u, 2u}) {
      auto xv = rnd<T>({n, 3}, gen, c.lo, c.hi);
      expect_close(f.run({{x, xv}})[0], map1(to_ref(xv), c.ref), kTol<T>);
    }
  }
}

TYPED_TEST(OpsForward, UnaryAtSpecialPoints) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {5});
  xt::xarray<T> xv = {-2, -0.5, 0, 0.5, 2};
  auto f = xgrad::compile({xgrad::abs(x), xgrad::sign(x), xgrad::step(x), xgrad::relu(x),
                           xgrad::clamp(x, T(-0.5), T(0.5))});
  const auto& r = f.run({{x, xv}});
  expect_close(r[0], make_ref({5}, {2, 0.5, 0, 0.5, 2}), 0);
  expect_close(r[1], make_ref({5}, {-1, -1, 0, 1, 1}), 0);
  expect_close(r[2], make_ref({5}, {0, 0, 0, 1, 1}), 0);
  expect_close(r[3], make_ref({5}, {0, 0, 0, 0.5, 2}), 0);
  expect_close(r[4], make_ref({5}, {-0.5, -0.5, 0, 0.5, 0.5}), 0);
}

TYPED_TEST(OpsForward, ClampRejectsInvertedBounds) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {3});
  EXPECT_THROW(xgrad::clamp(x, T(1), T(-1)), xgrad::ValueError);
  EXPECT_NO_THROW(xgrad::clamp(x, T(1), T(1)));
}

TYPED_TEST(OpsForward, LeakyReluByHand) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {7});
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  xt::xarray<T> xv = {-2, -0.5, 0, 0.5, 2, -inf, nan};
  auto f = xgrad::compile({xgrad::leaky_relu(x, T(0.25)), xgrad::leaky_relu(x)});
  const auto& r = f.run({{x, xv}});
  const double dinf = std::numeric_limits<double>::infinity();
  const double dnan = std::numeric_limits<double>::quiet_NaN();
  // Slope 0.25 is exact in binary, so these are exact in float and double alike.
  expect_close(r[0], make_ref({7}, {-0.5, -0.125, 0, 0.5, 2, -dinf, dnan}), 0);
  const double s = double(T(0.01));  // the default slope, rounded to T
  expect_close(r[1], make_ref({7}, {-2 * s, -0.5 * s, 0, 0.5, 2, -dinf, dnan}), kTol<T>);
  // Slope 1 is the identity; slope 0 is relu except at -inf, where 0 * -inf is NaN (as in
  // PyTorch).
  auto f01 = xgrad::compile({xgrad::leaky_relu(x, T(0)), xgrad::leaky_relu(x, T(1))});
  const auto& r01 = f01.run({{x, xv}});
  expect_close(r01[0], make_ref({7}, {0, 0, 0, 0.5, 2, dnan, dnan}), 0);
  expect_close(r01[1], to_ref(xv), 0);
  // A constant operand folds through the same kernel.
  auto c = xgrad::leaky_relu(g.constant(xt::xarray<T>{-4, 3}), T(0.5));
  EXPECT_EQ(c.node().kind, xgrad::NodeKind::constant);
  expect_close(xgrad::eval(c), make_ref({2}, {-2, 3}), 0);
}

TYPED_TEST(OpsForward, LeakyReluMapKernelForRowTiling) {
  using T = TypeParam;
  // Like relu, leaky_relu is elementwise with a direct loop, which is what lets the
  // executor put it in row-tiled groups.
  Graph<T> g;
  auto x = g.input("x", {5});
  const xgrad::Node<T>& n = xgrad::leaky_relu(x, T(0.25)).node();
  const xgrad::OpTraits<T>& t = n.op->traits();
  EXPECT_EQ(t.rows, xgrad::RowRole::elementwise);
  ASSERT_NE(t.map.unary, nullptr);
  std::vector<T> v = {-2, -1, 0, 1, 2}, out(5);
  t.map.unary(v.data(), out.data(), v.size(), n.attrs);
  EXPECT_EQ(out, (std::vector<T>{-0.5, -0.25, 0, 1, 2}));
  t.map.unary(v.data(), v.data(), v.size(), n.attrs);  // in place
  EXPECT_EQ(v, out);

  // A chain over the rows of a 2.3 MiB float input (4.6 MiB double), row-tiled, matches
  // the untiled run.
  std::mt19937 gen(31);
  auto X = g.input("X", {xgrad::open, 24});
  auto W = g.parameter("W", rnd<T>({24, 8}, gen));
  auto b = g.parameter("b", rnd<T>({8}, gen));
  auto h = xgrad::leaky_relu(xgrad::matmul(X, W) + b, T(0.1));
  auto loss = xgrad::sum(h) + xgrad::mean(h);
  auto grads = xgrad::grad(loss, {W, b});
  auto xv = rnd<T>({25000, 24}, gen);
  xgrad::CompileOptions untiled;
  untiled.tile_rows = false;
  auto tiled = xgrad::compile({loss, grads[0], grads[1]});
  auto plain = xgrad::compile({loss, grads[0], grads[1]}, untiled);
  const auto& rt = tiled.run({{X, xv}});
  const auto& rp = plain.run({{X, xv}});
  for (std::size_t k = 0; k < rt.size(); ++k) {
    SCOPED_TRACE("output " + std::to_string(k));
    // The same sums over 25000 rows in another order: float rounds them differently.
    double scale = std::max(1.0, static_cast<double>(xt::amax(xt::abs(rp[k]))()));
    expect_close(rt[k], to_ref(rp[k]), (std::is_same_v<T, float> ? 1e-3 : 1e-10) * scale);
  }
}

TYPED_TEST(OpsForward, LeakyReluRejectsNegativeOrNonFiniteSlopes) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("act", {3});
  for (T bad : {T(-0.01), -std::numeric_limits<T>::infinity(), std::numeric_limits<T>::infinity(),
                std::numeric_limits<T>::quiet_NaN()}) {
    SCOPED_TRACE(std::to_string(bad));
    try {
      xgrad::leaky_relu(x, bad);
      ADD_FAILURE() << "no ValueError";
    } catch (const xgrad::ValueError& e) {
      EXPECT_TRUE(xgrad_test::contains(e.what(), "leaky_relu")) << e.what();
      EXPECT_TRUE(xgrad_test::contains(e.what(), "negative_slope")) << e.what();
      EXPECT_TRUE(xgrad_test::contains(e.what(), "act")) << e.what();
    }
  }
  EXPECT_NO_THROW(xgrad::leaky_relu(x, T(0)));
  EXPECT_NO_THROW(xgrad::leaky_relu(x, T(3)));
}

TYPED_TEST(OpsForward, SigmoidSoftplusTanhExtremeInputs) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {9});
  xt::xarray<T> xv = {-1000, -100, -30, -1, 0, 1, 30, 100, 1000};
  auto f = xgrad::compile({xgrad::sigmoid(x), xgrad::softplus(x), xgrad::tanh(x)});
  const auto& r = f.run({{x, xv}});
  for (const auto& out : r) expect_all_finite(out);
  const xt::xarray<T>& sg = r[0];
  const xt::xarray<T>& sp = r[1];
  EXPECT_EQ(sg(0), T(0));
  EXPECT_EQ(sg(8), T(1));
  EXPECT_EQ(sg(4), T(0.5));
  EXPECT_NEAR(sg(7), 1.0, 1e-15);
  // Tiny tails keep relative precision (no cancellation in 1 - 1/(1+e^-x)).
  EXPECT_NEAR(sg(2), std::exp(-30.0) / (1 + std::exp(-30.0)), kTol<T> * std::exp(-30.0));
  EXPECT_NEAR(sg(3), 1 / (1 + std::exp(1.0)), kTol<T>);
  EXPECT_NEAR(sg(5), 1 / (1 + std::exp(-1.0)), kTol<T>);
  for (std::size_t i = 0; i < 9; ++i) {
    EXPECT_GE(sg(i), T(0));
    EXPECT_LE(sg(i), T(1));
    EXPECT_GE(sp(i), T(0));
  }
  EXPECT_EQ(sp(8), T(1000));
  EXPECT_EQ(sp(7), T(100));
  EXPECT_NEAR(sp(6), 30 + std::log1p(std::exp(-30.0)), kTol<T> * 30);
  EXPECT_NEAR(sp(2), std::log1p(std::exp(-30.0)), kTol<T> * std::exp(-30.0));
  EXPECT_NEAR(sp(4), std::log(2.0), kTol<T>);
  EXPECT_LE(sp(0), T(1e-30));
  EXPECT_NEAR(r[2](0), -1.0, 0);
  EXPECT_NEAR(r[2](8), 1.0, 0);
}

// ------------------------------------------------------------------ elementwise binary

struct BinShapes {
  Sh a, b, out;
};
const std::vector<BinShapes> kBinShapes = {
    {{3, 1}, {1, 4}, {3, 4}},
    {{2, 3}, {3}, {2, 3}},
    {{3}, {2, 3}, {2, 3}},
    {{}, {2, 3}, {2, 3}},
    {{2, 3}, {}, {2, 3}},
    {{}, {}, {}},
    {{2, 1, 4}, {3, 1}, {2, 3, 4}},
    {{4}, {2, 3, 4}, {2, 3, 4}},
    {{2, 3, 4}, {2, 3, 4}, {2, 3, 4}},
    {{1}, {5}, {5}},
};

enum class Gen { uniform, positive, exponent, ints, ints_nonneg };

template <class T>
xt::xarray<T> gen_values(Gen kind, const Sh& s, std::mt19937& gen) {
  switch (kind) {
    case Gen::uniform:
      return rnd<T>(s, gen, -2, 2);
    case Gen::positive:
      return rnd<T>(s, gen, 0.5, 2);
    case Gen::exponent:
      return rnd<T>(s, gen, -2, 2);
    case Gen::ints:
      return rnd_int<T>(s, gen, -1, 2);
    case Gen::ints_nonneg:
      return rnd_int<T>(s, gen, 0, 2);
  }
  return {};
}

template <class T>
struct BinaryCase {
  const char* name;
  std::function<Expr<T>(Expr<T>, Expr<T>)> op;
  std::function<double(double, double)> ref;
  Gen ga, gb;
};

template <class T>
std::vector<BinaryCase<T>> binary_cases() {
  using E = Expr<T>;
  auto xlogy = [](double a, double b) { return a == 0 ? 0.0 : a * std::log(b); };
  return {
      {"add", [](E a, E b) { return xgrad::add(a, b); }, [](double a, double b) { return a + b; },
       Gen::uniform, Gen::uniform},
      {"a + b", [](E a, E b) { return a + b; }, [](double a, double b) { return a + b; },
       Gen::uniform, Gen::uniform},
      {"sub", [](E a, E b) { return xgrad::sub(a, b); }, [](double a, double b) { return a - b; },
       Gen::uniform, Gen::uniform},
      {"a - b", [](E a, E b) { return a - b; }, [](double a, double b) { return a - b; },
       Gen::uniform, Gen::uniform},
      {"mul", [](E a, E b) { return xgrad::mul(a, b); }, [](double a, double b) { return a * b; },
       Gen::uniform, Gen::uniform},
      {"a * b", [](E a, E b) { return a * b; }, [](double a, double b) { return a * b; },
       Gen::uniform, Gen::uniform},
      {"div", [](E a, E b) { return xgrad::div(a, b); }, [](double a, double b) { return a / b; },
       Gen::uniform, Gen::positive},
      {"a / b", [](E a, E b) { return a / b; }, [](double a, double b) { return a / b; },
       Gen::uniform, Gen::positive},
      {"pow", [](E a, E b) { return xgrad::pow(a, b); },
       [](double a, double b) { return std::pow(a, b); }, Gen::positive, Gen::exponent},
      {"maximum", [](E a, E b) { return xgrad::maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }, Gen::uniform, Gen::uniform},
      {"maximum ints", [](E a, E b) { return xgrad::maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }, Gen::ints, Gen::ints},
      {"minimum", [](E a, E b) { return xgrad::minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }, Gen::uniform, Gen::uniform},
      {"minimum ints", [](E a, E b) { return xgrad::minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }, Gen::ints, Gen::ints},
      {"safe_div", [](E a, E b) { return xgrad::safe_div(a, b); },
       [](double a, double b) { return b == 0 ? 0.0 : a / b; }, Gen::uniform, Gen::ints},
      {"xlogy", [](E a, E b) { return xgrad::xlogy(a, b); }, xlogy, Gen::ints_nonneg,
       Gen::positive},
      {"equal", [](E a, E b) { return xgrad::equal(a, b); },
       [](double a, double b) { return a == b ? 1.0 : 0.0; }, Gen::ints, Gen::ints},
      {"where", [](E a, E b) { return xgrad::where(xgrad::step(a), a, b); },
       [](double a, double b) { return a > 0 ? a : b; }, Gen::uniform, Gen::uniform},
  };
}

TYPED_TEST(OpsForward, BinaryBroadcasting) {
  using T = TypeParam;
  std::mt19937 gen(2);
  for (const auto& c : binary_cases<T>()) {
    for (const BinShapes& s : kBinShapes) {
      SCOPED_TRACE(std::string(c.name) + " " + xgrad::shape_str(dims(s.a)) + " with " +
                   xgrad::shape_str(dims(s.b)));
      Graph<T> g;
      auto a = g.input("a", dims(s.a));
      auto b = g.input("b", dims(s.b));
      auto y = c.op(a, b);
      EXPECT_EQ(y.shape(), dims(s.out));
      auto av = gen_values<T>(c.ga, s.a, gen);
      auto bv = gen_values<T>(c.gb, s.b, gen);
      expect_close(xgrad::eval(y, {{a, av}, {b, bv}}), map2(to_ref(av), to_ref(bv), s.out, c.ref),
                   kTol<T>);
    }
  }
}

TYPED_TEST(OpsForward, EveryElementwiseOpHasCases) {
  using T = TypeParam;
  std::vector<std::string> names;
  for (const auto& c : unary_cases<T>()) names.push_back(c.name);
  for (const auto& c : binary_cases<T>()) names.push_back(c.name);
  for (std::string op : {XGRAD_ELEMENTWISE_OPS(XGRAD_TEST_ROW_NAME)}) {
    // A case is named after its op, possibly followed by a variant ("pow 3").
    bool found = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
      return n == op || n.rfind(op + " ", 0) == 0;
    });
    EXPECT_TRUE(found) << op << " has no case in unary_cases() or binary_cases()";
  }
}

TYPED_TEST(OpsForward, BinaryOpenBatchBroadcast) {
  using T = TypeParam;
  std::mt19937 gen(3);
  for (const auto& c : binary_cases<T>()) {
    SCOPED_TRACE(c.name);
    Graph<T> g;
    auto a = g.input("a", {xgrad::open, 3});
    auto bv = gen_values<T>(c.gb, {3}, gen);
    auto b = g.parameter("b", bv);
    auto f = xgrad::compile({c.op(a, b), c.op(b, a)});
    for (std::size_t n : {2u, 5u, 1u}) {
      auto av = gen_values<T>(c.ga, {n, 3}, gen);
      const auto& r = f.run({{a, av}});
      expect_close(r[0], map2(to_ref(av), to_ref(bv), {n, 3}, c.ref), kTol<T>);
      expect_close(r[1], map2(to_ref(bv), to_ref(av), {n, 3}, c.ref), kTol<T>);
    }
  }
}

TYPED_TEST(OpsForward, BinaryBothOpen) {
  using T = TypeParam;
  std::mt19937 gen(4);
  Graph<T> g;
  auto a = g.input("a", {xgrad::open, 3});
  auto b = g.input("b", {xgrad::open, 1});
  auto y = a * b - b;
  EXPECT_EQ(y.shape(), (xgrad::Shape{xgrad::open, 3}));
  auto f = xgrad::compile({y});
  for (std::size_t n : {3u, 1u, 4u}) {
    auto av = rnd<T>({n, 3}, gen);
    auto bv = rnd<T>({n, 1}, gen);
    expect_close(f.run({{a, av}, {b, bv}})[0],
                 map2(to_ref(av), to_ref(bv), {n, 3}, [](double x, double z) { return x * z - z; }),
                 kTol<T>);
  }
}

TYPED_TEST(OpsForward, BinaryIncompatibleShapesThrow) {
  using T = TypeParam;
  Graph<T> g;
  auto a = g.input("a", {2, 3});
  auto b = g.input("b", {4});
  EXPECT_THROW(a + b, xgrad::ShapeError);
  EXPECT_THROW(xgrad::maximum(a, b), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, MaximumMinimumPropagateNaNFromEitherOperand) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  Graph<T> g;
  auto a = g.input("a", {2});
  auto b = g.input("b", {2});
  xt::xarray<T> av = {nan, 0};
  xt::xarray<T> bv = {0, nan};
  auto f = xgrad::compile(
      {xgrad::maximum(a, b), xgrad::minimum(a, b), xgrad::maximum(b, a), xgrad::minimum(b, a)});
  const auto& r = f.run({{a, av}, {b, bv}});
  for (std::size_t k = 0; k < 4; ++k)
    for (std::size_t i = 0; i < 2; ++i)
      EXPECT_TRUE(std::isnan(r[k](i))) << "output " << k << "[" << i << "]";
}

TYPED_TEST(OpsForward, ZeroConventionsOfSafeDivAndXlogy) {
  using T = TypeParam;
  Graph<T> g;
  auto a = g.input("a", {4});
  auto b = g.input("b", {4});
  xt::xarray<T> av = {0, 0, 2, -3};
  xt::xarray<T> bv = {0, 2, 0, 0.5};
  auto f = xgrad::compile({xgrad::safe_div(a, b), xgrad::xlogy(a, b)});
  const auto& r = f.run({{a, av}, {b, bv}});
  expect_close(r[0], make_ref({4}, {0, 0, 0, -6}), kTol<T>);
  EXPECT_EQ(r[1](0), T(0));  // 0 * log(0) is taken as 0
  EXPECT_EQ(r[1](1), T(0));
  EXPECT_EQ(r[1](2), -std::numeric_limits<T>::infinity());
  EXPECT_NEAR(r[1](3), -3 * std::log(0.5), kTol<T> * 3);
}

TYPED_TEST(OpsForward, PowTensorExponentSpecialValues) {
  using T = TypeParam;
  Graph<T> g;
  auto a = g.input("a", {6});
  auto b = g.input("b", {6});
  xt::xarray<T> av = {-2, -1.5, 0, 1, 2, 3};
  xt::xarray<T> bv = {3, 2, 2, -1, 0.5, 0};
  expect_close(xgrad::eval(xgrad::pow(a, b), {{a, av}, {b, bv}}),
               make_ref({6}, {-8, 2.25, 0, 1, std::sqrt(2.0), 1}), kTol<T>);
  // A 0-d exponent broadcast over a matrix.
  auto m = g.input("m", {2, 2});
  auto p = g.input("p", {});
  xt::xarray<T> mv = {{1, 2}, {3, 4}};
  xt::xarray<T> pv(T(3));
  expect_close(xgrad::eval(xgrad::pow(m, p), {{m, mv}, {p, pv}}), make_ref({2, 2}, {1, 8, 27, 64}),
               kTol<T>);
}

TYPED_TEST(OpsForward, PowScalarZeroOnOpenInputIsOnes) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {xgrad::open, 2});
  xt::xarray<T> xv = {{0, -3}, {2.5, 7}, {1, 1}};
  expect_close(xgrad::eval(xgrad::pow(x, T(0)), {{x, xv}}), make_ref({3, 2}, {1, 1, 1, 1, 1, 1}),
               0);
}

TYPED_TEST(OpsForward, ConstantsAndParametersFold) {
  using T = TypeParam;
  Graph<T> g;
  xt::xarray<T> cv = {{1, 2, 3}, {4, 5, 6}};
  auto c = g.constant(cv);
  auto p = g.parameter("p", xt::xarray<T>{10, 20, 30});
  auto y = xgrad::exp(c / T(6)) * p + xgrad::sum(c, {0});
  Ref want = map2(to_ref(cv), make_ref({3}, {10, 20, 30}), {2, 3},
                  [](double x, double q) { return std::exp(x / 6) * q; });
  Ref colsum = make_ref({3}, {5, 7, 9});
  want = map2(want, colsum, {2, 3}, [](double x, double q) { return x + q; });
  expect_close(xgrad::eval(y), want, kTol<T>);
  // Parameter updates are seen by the next run of the same Function.
  auto f = xgrad::compile({xgrad::sum(p)});
  EXPECT_NEAR(f.run()[0](), 60, 0);
  g.value(p) *= T(2);
  EXPECT_NEAR(f.run()[0](), 120, 0);
}

// ------------------------------------------------------------------ linear algebra

TYPED_TEST(OpsForward, MatmulMatrixMatrixAllTransposeFlags) {
  using T = TypeParam;
  std::mt19937 gen(5);
  const std::size_t m = 3, k = 4, n = 2;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE("ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
      Sh as = ta ? Sh{k, m} : Sh{m, k};
      Sh bs = tb ? Sh{n, k} : Sh{k, n};
      Graph<T> g;
      auto a = g.input("a", dims(as));
      auto b = g.input("b", dims(bs));
      auto av = rnd<T>(as, gen), bv = rnd<T>(bs, gen);
      auto y = xgrad::matmul(a, b, ta, tb);
      EXPECT_EQ(y.shape(), (xgrad::Shape{3, 2}));
      expect_close(xgrad::eval(y, {{a, av}, {b, bv}}), matmul_ref(to_ref(av), to_ref(bv), ta, tb),
                   kTol<T>);
    }
  }
}

TYPED_TEST(OpsForward, MatmulVectorForms) {
  using T = TypeParam;
  std::mt19937 gen(6);
  Graph<T> g;
  auto A = g.input("A", {3, 4});
  auto At = g.input("At", {4, 3});
  auto v4 = g.input("v4", {4});
  auto v3 = g.input("v3", {3});
  auto u4 = g.input("u4", {4});
  auto Av = rnd<T>({3, 4}, gen), Atv = rnd<T>({4, 3}, gen);
  auto v4v = rnd<T>({4}, gen), v3v = rnd<T>({3}, gen), u4v = rnd<T>({4}, gen);
  auto f = xgrad::compile({xgrad::matmul(A, v4), xgrad::matmul(At, v4, true, false),
                           xgrad::matmul(v3, A), xgrad::matmul(v4, A, false, true),
                           xgrad::matmul(v4, u4)});
  const auto& r = f.run({{A, Av}, {At, Atv}, {v4, v4v}, {v3, v3v}, {u4, u4v}});
  Ref a = to_ref(Av), at = to_ref(Atv), x4 = to_ref(v4v), x3 = to_ref(v3v), y4 = to_ref(u4v);
  Ref mv = Ref::from_shape({3}), mtv = Ref::from_shape({3}), vm = Ref::from_shape({4}),
      vmt = Ref::from_shape({3});
  for (std::size_t i = 0; i < 3; ++i) {
    mv(i) = mtv(i) = vmt(i) = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      mv(i) += a(i, j) * x4(j);
      mtv(i) += at(j, i) * x4(j);
      vmt(i) += x4(j) * a(i, j);
    }
  }
  for (std::size_t j = 0; j < 4; ++j) {
    vm(j) = 0;
    for (std::size_t i = 0; i < 3; ++i) vm(j) += x3(i) * a(i, j);
  }
  double dot = 0;
  for (std::size_t j = 0; j < 4; ++j) dot += x4(j) * y4(j);
  expect_close(r[0], mv, kTol<T>);
  expect_close(r[1], mtv, kTol<T>);
  expect_close(r[2], vm, kTol<T>);
  expect_close(r[3], vmt, kTol<T>);
  expect_close(r[4], Ref(dot), kTol<T>);
  EXPECT_EQ(r[4].dimension(), 0u);
}

TYPED_TEST(OpsForward, MatmulOpenBatchWithBias) {
  using T = TypeParam;
  std::mt19937 gen(7);
  Graph<T> g;
  auto x = g.input("x", {xgrad::open, 4});
  auto Wv = rnd<T>({4, 2}, gen);
  auto bv = rnd<T>({2}, gen);
  auto y = xgrad::matmul(x, g.parameter("W", Wv)) + g.parameter("b", bv);
  EXPECT_EQ(y.shape(), (xgrad::Shape{xgrad::open, 2}));
  auto f = xgrad::compile({y});
  for (std::size_t n : {3u, 1u, 6u}) {
    auto xv = rnd<T>({n, 4}, gen);
    Ref want = map2(matmul_ref(to_ref(xv), to_ref(Wv), false, false), to_ref(bv), {n, 2},
                    [](double p, double q) { return p + q; });
    expect_close(f.run({{x, xv}})[0], want, kTol<T>);
  }
}

TYPED_TEST(OpsForward, MatmulInnerMismatchThrows) {
  using T = TypeParam;
  Graph<T> g;
  auto a = g.input("a", {3, 4});
  auto b = g.input("b", {3, 2});
  EXPECT_THROW(xgrad::matmul(a, b), xgrad::ShapeError);
  EXPECT_NO_THROW(xgrad::matmul(a, b, true, false));
}

TYPED_TEST(OpsForward, TransposeWithPermutations) {
  using T = TypeParam;
  std::mt19937 gen(8);
  Graph<T> g;
  auto x = g.input("x", {2, 3, 4});
  auto m = g.input("m", {2, 5});
  auto xv = rnd<T>({2, 3, 4}, gen);
  auto mv = rnd<T>({2, 5}, gen);
  auto f = xgrad::compile({xgrad::transpose(x), xgrad::transpose(x, {1, 0, 2}),
                           xgrad::transpose(x, {2, 0, 1}), xgrad::transpose(x, {0, 2, 1}),
                           xgrad::transpose(m)});
  const auto& r = f.run({{x, xv}, {m, mv}});
  Ref xr = to_ref(xv);
  expect_close(r[0], transpose_ref(xr, {2, 1, 0}), 0);
  expect_close(r[1], transpose_ref(xr, {1, 0, 2}), 0);
  expect_close(r[2], transpose_ref(xr, {2, 0, 1}), 0);
  expect_close(r[3], transpose_ref(xr, {0, 2, 1}), 0);
  expect_close(r[4], transpose_ref(to_ref(mv), {1, 0}), 0);
  EXPECT_EQ(xgrad::transpose(x, {0, 1, 2}), x);  // identity permutation is the node itself
  EXPECT_THROW(xgrad::transpose(x, {0, 0, 1}), xgrad::ShapeError);
  EXPECT_THROW(xgrad::transpose(x, {1, 0}), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, TransposeNegativePermutationEntries) {
  using T = TypeParam;
  std::mt19937 gen(27);
  Graph<T> g;
  auto m = g.input("m", {2, 3});
  auto mv = rnd<T>({2, 3}, gen);
  Expr<T> t;
  try {
    t = xgrad::transpose(m, {-1, 0});
  } catch (const xgrad::ShapeError&) {
    return;  // rejecting negative entries is acceptable; reading out of bounds is not
  }
  EXPECT_EQ(t.shape(), (xgrad::Shape{3, 2}));
  expect_close(xgrad::eval(t, {{m, mv}}), transpose_ref(to_ref(mv), {1, 0}), 0);
}

// ------------------------------------------------------------------ reductions

TYPED_TEST(OpsForward, ReductionsOverAxesLists) {
  using T = TypeParam;
  std::mt19937 gen(9);
  const std::vector<std::vector<Dim>> axes_sets = {
      {}, {0}, {1}, {2}, {-1}, {-2}, {0, 2}, {2, 0}, {-1, -3}, {0, 1, 2}, {1, -1}};
  Graph<T> g;
  auto x = g.input("x", {2, 3, 4});
  auto xv = rnd<T>({2, 3, 4}, gen, -3, 3);
  auto neg = rnd<T>({2, 3, 4}, gen, -5, -1);  // max must not start from 0
  for (const auto& axes : axes_sets) {
    for (bool keep : {false, true}) {
      SCOPED_TRACE("axes " + xgrad::shape_str(axes) + (keep ? " keepdims" : ""));
      auto f = xgrad::compile(
          {xgrad::sum(x, axes, keep), xgrad::mean(x, axes, keep), xgrad::max(x, axes, keep)});
      const auto& r = f.run({{x, xv}});
      expect_close(r[0], reduce_ref(to_ref(xv), axes, keep, Red::sum), kTol<T>);
      expect_close(r[1], reduce_ref(to_ref(xv), axes, keep, Red::mean), kTol<T>);
      expect_close(r[2], reduce_ref(to_ref(xv), axes, keep, Red::max), 0);
      expect_close(f.run({{x, neg}})[2], reduce_ref(to_ref(neg), axes, keep, Red::max), 0);
    }
  }
}

TYPED_TEST(OpsForward, ReductionsOfVectorsAndScalars) {
  using T = TypeParam;
  Graph<T> g;
  auto v = g.input("v", {4});
  auto s = g.input("s", {});
  xt::xarray<T> vv = {1, -2, 5, 0.5};
  xt::xarray<T> sv(T(-2.5));
  auto f = xgrad::compile({xgrad::sum(v), xgrad::mean(v), xgrad::max(v), xgrad::sum(v, {0}, true),
                           xgrad::sum(s), xgrad::mean(s), xgrad::max(s)});
  const auto& r = f.run({{v, vv}, {s, sv}});
  expect_close(r[0], Ref(4.5), kTol<T>);
  expect_close(r[1], Ref(1.125), kTol<T>);
  expect_close(r[2], Ref(5.0), 0);
  expect_close(r[3], make_ref({1}, {4.5}), kTol<T>);
  for (std::size_t i = 4; i < 7; ++i) expect_close(r[i], Ref(-2.5), 0);
}

TYPED_TEST(OpsForward, ReductionsOverOpenBatch) {
  using T = TypeParam;
  std::mt19937 gen(10);
  Graph<T> g;
  auto x = g.input("x", {xgrad::open, 3});
  auto f = xgrad::compile({xgrad::sum(x, {0}), xgrad::mean(x, {0}, true), xgrad::max(x, {-1}),
                           xgrad::mean(x), xgrad::sum(x), xgrad::mean(x, {1})});
  for (std::size_t n : {2u, 5u, 1u, 2u}) {
    SCOPED_TRACE("batch " + std::to_string(n));
    auto xv = rnd<T>({n, 3}, gen);
    Ref xr = to_ref(xv);
    const auto& r = f.run({{x, xv}});
    expect_close(r[0], reduce_ref(xr, {0}, false, Red::sum), kTol<T>);
    expect_close(r[1], reduce_ref(xr, {0}, true, Red::mean), kTol<T>);
    expect_close(r[2], reduce_ref(xr, {-1}, false, Red::max), 0);
    expect_close(r[3], reduce_ref(xr, {}, false, Red::mean), kTol<T>);
    expect_close(r[4], reduce_ref(xr, {}, false, Red::sum), kTol<T>);
    expect_close(r[5], reduce_ref(xr, {1}, false, Red::mean), kTol<T>);
  }
}

TYPED_TEST(OpsForward, ReductionBadAxesThrow) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {2, 3});
  EXPECT_THROW(xgrad::sum(x, {2}), xgrad::ShapeError);
  EXPECT_THROW(xgrad::mean(x, {-3}), xgrad::ShapeError);
  EXPECT_THROW(xgrad::max(x, {0, -2}), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, NormIsScaledAgainstOverflowAndUnderflow) {
  using T = TypeParam;
  const double big = std::is_same_v<T, float> ? 1e30 : 1e200;     // squares overflow T
  const double tiny = std::is_same_v<T, float> ? 1e-30 : 1e-200;  // squares underflow T
  std::mt19937 gen(11);
  Graph<T> g;
  auto x = g.input("x", {xgrad::open});
  auto f = xgrad::compile({xgrad::norm(x)});
  auto run = [&](std::vector<double> v) {
    xt::xarray<T> xv = xt::xarray<T>::from_shape({v.size()});
    for (std::size_t i = 0; i < v.size(); ++i) xv(i) = static_cast<T>(v[i]);
    return static_cast<double>(f.run({{x, xv}})[0]());
  };
  EXPECT_NEAR(run({3 * big, -4 * big}), 5 * big, kTol<T> * 5 * big);
  EXPECT_NEAR(run({3 * tiny, 4 * tiny}), 5 * tiny, kTol<T> * 5 * tiny);
  EXPECT_NEAR(run({big, big, big, big}), 2 * big, kTol<T> * 2 * big);
  EXPECT_NEAR(run({big, 1.0}), big, kTol<T> * big);
  EXPECT_NEAR(run({-tiny}), tiny, kTol<T> * tiny);
  EXPECT_EQ(run({0, 0, 0}), 0.0);
  EXPECT_EQ(run({1, -std::numeric_limits<double>::infinity()}),
            std::numeric_limits<double>::infinity());
  // Ordinary values of a 3-d tensor.
  auto t = g.input("t", {2, 3, 4});
  auto tv = rnd<T>({2, 3, 4}, gen, -2, 2);
  double ss = 0;
  for (T e : tv) ss += static_cast<double>(e) * e;
  expect_close(xgrad::eval(xgrad::norm(t), {{t, tv}}), Ref(std::sqrt(ss)), kTol<T>);
}

TYPED_TEST(OpsForward, NormAndRmsePropagateNaN) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  Graph<T> g;
  auto x = g.input("x", {2});
  auto z = g.input("z", {2});
  auto f = xgrad::compile({xgrad::norm(x), xgrad::rmse(x, z)});
  xt::xarray<T> zeros = {0, 0};
  for (const xt::xarray<T>& xv : {xt::xarray<T>{nan, nan}, xt::xarray<T>{0, nan},
                                  xt::xarray<T>{nan, 0}, xt::xarray<T>{1, nan}}) {
    const auto& r = f.run({{x, xv}, {z, zeros}});
    EXPECT_TRUE(std::isnan(r[0]())) << "norm gave " << r[0]();
    EXPECT_TRUE(std::isnan(r[1]())) << "rmse gave " << r[1]();
  }
}

TYPED_TEST(OpsForward, SizeOfCountsAtRunTime) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {xgrad::open, 3});
  auto f = xgrad::compile({xgrad::size_of(x), xgrad::size_of(x, {0}), xgrad::size_of(x, {-1}),
                           xgrad::size_of(x, {0, 1})});
  for (std::size_t n : {4u, 7u}) {
    xt::xarray<T> xv = xt::zeros<T>({n, std::size_t{3}});
    const auto& r = f.run({{x, xv}});
    EXPECT_EQ(r[0](), T(3 * n));
    EXPECT_EQ(r[1](), T(n));
    EXPECT_EQ(r[2](), T(3));
    EXPECT_EQ(r[3](), T(3 * n));
  }
}

// ------------------------------------------------------------------ shape manipulation

TYPED_TEST(OpsForward, ReshapeWithInferredExtent) {
  using T = TypeParam;
  std::mt19937 gen(12);
  Graph<T> g;
  auto x = g.input("x", {2, 3, 4});
  auto xv = rnd<T>({2, 3, 4}, gen);
  struct Case {
    xgrad::Shape target;
    Sh want;
  };
  for (const Case& c : std::vector<Case>{{{-1, 4}, {6, 4}},
                                         {{4, -1}, {4, 6}},
                                         {{-1}, {24}},
                                         {{2, -1, 3}, {2, 4, 3}},
                                         {{24, 1}, {24, 1}}}) {
    SCOPED_TRACE(xgrad::shape_str(c.target));
    auto y = xgrad::reshape(x, c.target);
    EXPECT_EQ(y.shape(), dims(c.want));
    auto r = xgrad::eval(y, {{x, xv}});
    ASSERT_EQ(shape_of(r), c.want);
    for (std::size_t i = 0; i < r.size(); ++i) EXPECT_EQ(r.data()[i], xv.data()[i]);
  }
  EXPECT_THROW(xgrad::reshape(x, {5, -1}), xgrad::ShapeError);
  EXPECT_THROW(xgrad::reshape(x, {-1, -1}), xgrad::ShapeError);
  EXPECT_THROW(xgrad::reshape(x, {2, 3}), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, ReshapeOpenBatch) {
  using T = TypeParam;
  std::mt19937 gen(13);
  Graph<T> g;
  auto x = g.input("x", {xgrad::open, 3});
  auto flat = xgrad::reshape(x, {-1});
  auto wide = xgrad::reshape(x, {-1, 6});
  auto back = xgrad::reshape_like(xgrad::exp(flat), x);
  auto f = xgrad::compile({flat, wide, back});
  for (std::size_t n : {4u, 2u}) {
    auto xv = rnd<T>({n, 3}, gen);
    const auto& r = f.run({{x, xv}});
    ASSERT_EQ(shape_of(r[0]), (Sh{3 * n}));
    ASSERT_EQ(shape_of(r[1]), (Sh{n / 2, 6}));
    for (std::size_t i = 0; i < 3 * n; ++i) {
      EXPECT_EQ(r[0].data()[i], xv.data()[i]);
      EXPECT_EQ(r[1].data()[i], xv.data()[i]);
    }
    expect_close(r[2], map1(to_ref(xv), [](double v) { return std::exp(v); }), kTol<T>);
  }
  // An odd batch cannot be viewed as rows of 6.
  auto wide_only = xgrad::compile({wide});
  auto odd = rnd<T>({3, 3}, gen);
  EXPECT_THROW(wide_only.run({{x, odd}}), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, ReshapeLikeUnsqueezeSqueeze) {
  using T = TypeParam;
  std::mt19937 gen(14);
  Graph<T> g;
  auto x = g.input("x", {2, 3});
  auto ref = g.input("ref", {3, 2});
  auto xv = rnd<T>({2, 3}, gen);
  auto refv = rnd<T>({3, 2}, gen);
  auto u0 = xgrad::unsqueeze(x, {0});
  auto ul = xgrad::unsqueeze(x, {-1});
  auto u03 = xgrad::unsqueeze(x, {0, 3});
  EXPECT_EQ(u0.shape(), (xgrad::Shape{1, 2, 3}));
  EXPECT_EQ(ul.shape(), (xgrad::Shape{2, 3, 1}));
  EXPECT_EQ(u03.shape(), (xgrad::Shape{1, 2, 3, 1}));
  auto sq = xgrad::squeeze(u03, {0, -1});
  EXPECT_EQ(sq.shape(), (xgrad::Shape{2, 3}));
  auto rl = xgrad::reshape_like(x, ref);
  EXPECT_EQ(rl.shape(), (xgrad::Shape{3, 2}));
  auto f = xgrad::compile({u0, ul, u03, sq, rl});
  const auto& r = f.run({{x, xv}, {ref, refv}});
  const Sh want[] = {{1, 2, 3}, {2, 3, 1}, {1, 2, 3, 1}, {2, 3}, {3, 2}};
  for (std::size_t k = 0; k < 5; ++k) {
    ASSERT_EQ(shape_of(r[k]), want[k]);
    for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(r[k].data()[i], xv.data()[i]);
  }
  EXPECT_THROW(xgrad::squeeze(x, {0}), xgrad::ShapeError);
  // An open extent may be squeezed at build time; a bound extent other than 1 is rejected.
  auto open = g.input("open", {xgrad::open, 3});
  auto sq_open = xgrad::squeeze(open, {0});
  EXPECT_EQ(sq_open.shape(), (xgrad::Shape{3}));
  xt::xarray<T> one_row = {{1, 2, 3}};
  xt::xarray<T> two_rows = {{1, 2, 3}, {4, 5, 6}};
  expect_close(xgrad::eval(sq_open, {{open, one_row}}), make_ref({3}, {1, 2, 3}), 0);
  EXPECT_THROW(xgrad::eval(sq_open, {{open, two_rows}}), xgrad::ShapeError);
  EXPECT_THROW(xgrad::reshape_like(x, g.input("r4", {4})), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, BroadcastToLikeAndSumToLike) {
  using T = TypeParam;
  std::mt19937 gen(15);
  Graph<T> g;
  auto v = g.input("v", {3});
  auto c = g.input("c", {3, 1});
  auto s = g.input("s", {});
  auto big = g.input("big", {2, 3, 4});
  auto batch = g.input("batch", {xgrad::open, 3});
  auto r4 = g.input("r4", {4});
  auto vv = rnd<T>({3}, gen), cv = rnd<T>({3, 1}, gen), sv = rnd<T>({}, gen);
  auto bigv = rnd<T>({2, 3, 4}, gen), batchv = rnd<T>({5, 3}, gen);
  auto f = xgrad::compile({
      xgrad::broadcast_to(v, {2, 3}),
      xgrad::broadcast_to(c, {2, 3, 4}),
      xgrad::broadcast_to(s, {2, 2}),
      xgrad::broadcast_like(v, batch),
      xgrad::sum_to_like(big, c),
      xgrad::sum_to_like(big, s),
      xgrad::sum_to_like(big, r4),
      xgrad::sum_to_like(batch, v),
  });
  auto r4v = rnd<T>({4}, gen);
  const auto& r = f.run({{v, vv}, {c, cv}, {s, sv}, {big, bigv}, {batch, batchv}, {r4, r4v}});
  Ref bigr = to_ref(bigv);
  expect_close(r[0], broadcast_ref(to_ref(vv), {2, 3}), 0);
  expect_close(r[1], broadcast_ref(to_ref(cv), {2, 3, 4}), 0);
  expect_close(r[2], broadcast_ref(to_ref(sv), {2, 2}), 0);
  expect_close(r[3], broadcast_ref(to_ref(vv), {5, 3}), 0);
  expect_close(r[4], reshaped(reduce_ref(bigr, {0, 2}, false, Red::sum), {3, 1}), kTol<T>);
  expect_close(r[5], reduce_ref(bigr, {}, false, Red::sum), kTol<T>);
  expect_close(r[6], reduce_ref(bigr, {0, 1}, false, Red::sum), kTol<T>);
  expect_close(r[7], reduce_ref(to_ref(batchv), {0}, false, Red::sum), kTol<T>);
  EXPECT_THROW(xgrad::broadcast_to(v, {4}), xgrad::ShapeError);
  EXPECT_THROW(xgrad::broadcast_to(big, {3, 4}), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, GatherRowsWithInt64IndicesAcrossRuns) {
  using T = TypeParam;
  std::mt19937 gen(16);
  Graph<T> g;
  auto x = g.input("x", {4, 3});
  auto idx = g.input("idx", {xgrad::open}, xgrad::DType::int64);
  auto y = xgrad::gather_rows(x, idx);
  EXPECT_EQ(y.shape(), (xgrad::Shape{xgrad::open, 3}));
  auto f = xgrad::compile({y});
  auto xv = rnd<T>({4, 3}, gen);
  for (const I64& iv : {I64{2, 0, 2}, I64{3}, I64{1, 1, 0, 3, 2}}) {
    const auto& r = f.run({{x, xv}, {idx, iv}});
    ASSERT_EQ(shape_of(r[0]), (Sh{iv.size(), 3}));
    for (std::size_t k = 0; k < iv.size(); ++k)
      for (std::size_t j = 0; j < 3; ++j)
        EXPECT_EQ(r[0](k, j), xv(static_cast<std::size_t>(iv(k)), j));
  }
  // int32 values bind to the int64 input too.
  xt::xarray<std::int32_t> i32 = {3, 0};
  const auto& r = f.run({{x, xv}, {idx, i32}});
  EXPECT_EQ(r[0](0, 1), xv(3, 1));
  EXPECT_EQ(r[0](1, 2), xv(0, 2));
  I64 out_of_range = {0, 4};
  EXPECT_THROW(f.run({{x, xv}, {idx, out_of_range}}), xgrad::ValueError);
  I64 negative = {-1};
  EXPECT_THROW(f.run({{x, xv}, {idx, negative}}), xgrad::ValueError);
  // Floating-point values do not bind to an integer input.
  xt::xarray<T> fidx = {1};
  EXPECT_THROW(f.run({{x, xv}, {idx, fidx}}), xgrad::BindingError);
}

TYPED_TEST(OpsForward, GatherRowsOf3dTensor) {
  using T = TypeParam;
  std::mt19937 gen(17);
  Graph<T> g;
  auto x = g.input("x", {3, 2, 2});
  auto idx = g.input("idx", {2}, xgrad::DType::int64);
  auto xv = rnd<T>({3, 2, 2}, gen);
  I64 iv = {2, 1};
  auto r = xgrad::eval(xgrad::gather_rows(x, idx), {{x, xv}, {idx, iv}});
  ASSERT_EQ(shape_of(r), (Sh{2, 2, 2}));
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t i = 0; i < 4; ++i)
      EXPECT_EQ(r.data()[k * 4 + i], xv.data()[static_cast<std::size_t>(iv(k)) * 4 + i]);
}

TYPED_TEST(OpsForward, ScatterAddRows) {
  using T = TypeParam;
  std::mt19937 gen(18);
  Graph<T> g;
  auto rows = g.input("rows", {xgrad::open, 2});
  auto idx = g.input("idx", {xgrad::open}, xgrad::DType::int64);
  auto ref = g.input("ref", {4, 2});
  auto rv = rnd<T>({3, 2}, gen);
  auto refv = rnd<T>({4, 2}, gen);
  I64 iv = {0, 2, 0};
  auto r =
      xgrad::eval(xgrad::scatter_add_rows(rows, idx, ref), {{rows, rv}, {idx, iv}, {ref, refv}});
  Ref want = make_ref({4, 2}, {double(rv(0, 0)) + rv(2, 0), double(rv(0, 1)) + rv(2, 1), 0, 0,
                               rv(1, 0), rv(1, 1), 0, 0});
  expect_close(r, want, kTol<T>);
}

TYPED_TEST(OpsForward, SliceWithNegativeAndClampedBounds) {
  using T = TypeParam;
  std::mt19937 gen(19);
  Graph<T> g;
  auto x = g.input("x", {4, 5});
  auto t = g.input("t", {2, 3, 4});
  auto xv = rnd<T>({4, 5}, gen);
  auto tv = rnd<T>({2, 3, 4}, gen);
  struct Case {
    Dim axis, b, e;
    std::size_t nax, nb, ne;
  };
  const std::vector<Case> cases = {
      {0, -3, -1, 0, 1, 3}, {1, 1, 100, 1, 1, 5}, {-1, -100, 2, 1, 0, 2}, {1, -2, 5, 1, 3, 5},
      {0, 0, -1, 0, 0, 3},  {-2, 2, 3, 0, 2, 3},  {1, -1, 5, 1, 4, 5},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("slice axis " + std::to_string(c.axis) + " " + std::to_string(c.b) + ":" +
                 std::to_string(c.e));
    auto y = xgrad::slice(x, c.axis, c.b, c.e);
    expect_close(xgrad::eval(y, {{x, xv}}), slice_ref(to_ref(xv), c.nax, c.nb, c.ne), 0);
  }
  expect_close(xgrad::eval(xgrad::slice(t, 1, -2, 3), {{t, tv}}), slice_ref(to_ref(tv), 1, 1, 3),
               0);
  expect_close(xgrad::eval(xgrad::slice(t, -1, 1, -1), {{t, tv}}), slice_ref(to_ref(tv), 2, 1, 3),
               0);
  // An empty slice (begin after end) has extent 0.
  EXPECT_EQ(xgrad::slice(x, 0, 3, 1).shape(), (xgrad::Shape{0, 5}));
}

TYPED_TEST(OpsForward, SliceOpenAxis) {
  using T = TypeParam;
  std::mt19937 gen(20);
  Graph<T> g;
  auto x = g.input("x", {xgrad::open, 3});
  auto f = xgrad::compile({xgrad::slice(x, 0, 1, -1), xgrad::slice(x, 0, -2, 1000)});
  for (std::size_t n : {4u, 6u}) {
    auto xv = rnd<T>({n, 3}, gen);
    const auto& r = f.run({{x, xv}});
    expect_close(r[0], slice_ref(to_ref(xv), 0, 1, n - 1), 0);
    expect_close(r[1], slice_ref(to_ref(xv), 0, n - 2, n), 0);
  }
}

TYPED_TEST(OpsForward, PadLikeAndZerosLike) {
  using T = TypeParam;
  std::mt19937 gen(21);
  Graph<T> g;
  auto x = g.input("x", {2, 3});
  auto ref = g.input("ref", {5, 3});
  auto col = g.input("col", {5, 1});
  auto batch = g.input("batch", {xgrad::open, 3});
  auto xv = rnd<T>({2, 3}, gen), refv = rnd<T>({5, 3}, gen), colv = rnd<T>({5, 1}, gen);
  auto bv = rnd<T>({2, 3}, gen);
  auto f = xgrad::compile({xgrad::pad_like(x, ref, 0, 1), xgrad::pad_like(x, ref, 0, -2),
                           xgrad::pad_like(col, ref, 1, 2), xgrad::pad_like(col, ref, -1, -3),
                           xgrad::zeros_like(batch)});
  const auto& r = f.run({{x, xv}, {ref, refv}, {col, colv}, {batch, bv}});
  auto padded = [&](const Ref& small, std::size_t axis, std::size_t begin) {
    Ref out = Ref::from_shape({5, 3});
    for (double& e : out) e = 0;
    Sh ss = shape_of(small);
    for (std::size_t k = 0; k < small.size(); ++k) {
      Sh i = unravel(k, ss);
      i[axis] += begin;
      out.data()[ravel(i, {5, 3})] = small.data()[k];
    }
    return out;
  };
  expect_close(r[0], padded(to_ref(xv), 0, 1), 0);
  expect_close(r[1], padded(to_ref(xv), 0, 3), 0);
  expect_close(r[2], padded(to_ref(colv), 1, 2), 0);
  expect_close(r[3], padded(to_ref(colv), 1, 0), 0);
  expect_close(r[4], make_ref({2, 3}, {0, 0, 0, 0, 0, 0}), 0);
  EXPECT_THROW(xgrad::pad_like(x, ref, 0, 4), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, ConcatenateAxes) {
  using T = TypeParam;
  std::mt19937 gen(22);
  Graph<T> g;
  auto a = g.input("a", {2, 3});
  auto b = g.input("b", {1, 3});
  auto c = g.input("c", {3, 3});
  auto d = g.input("d", {2, 1});
  auto av = rnd<T>({2, 3}, gen), bv = rnd<T>({1, 3}, gen), cv = rnd<T>({3, 3}, gen),
       dv = rnd<T>({2, 1}, gen);
  auto y0 = xgrad::concatenate(std::vector<Expr<T>>{a, b, c}, 0);
  auto y1 = xgrad::concatenate(std::vector<Expr<T>>{a, d}, 1);
  auto ym = xgrad::concatenate(std::vector<Expr<T>>{d, a, d}, -1);
  EXPECT_EQ(y0.shape(), (xgrad::Shape{6, 3}));
  EXPECT_EQ(y1.shape(), (xgrad::Shape{2, 4}));
  EXPECT_EQ(ym.shape(), (xgrad::Shape{2, 5}));
  auto f = xgrad::compile({y0, y1, ym});
  const auto& r = f.run({{a, av}, {b, bv}, {c, cv}, {d, dv}});
  Ref w0 = Ref::from_shape({6, 3}), w1 = Ref::from_shape({2, 4}), wm = Ref::from_shape({2, 5});
  for (std::size_t j = 0; j < 3; ++j) {
    w0(0, j) = av(0, j);
    w0(1, j) = av(1, j);
    w0(2, j) = bv(0, j);
    for (std::size_t i = 0; i < 3; ++i) w0(3 + i, j) = cv(i, j);
  }
  for (std::size_t i = 0; i < 2; ++i) {
    for (std::size_t j = 0; j < 3; ++j) w1(i, j) = wm(i, j + 1) = av(i, j);
    w1(i, 3) = wm(i, 0) = wm(i, 4) = dv(i, 0);
  }
  expect_close(r[0], w0, 0);
  expect_close(r[1], w1, 0);
  expect_close(r[2], wm, 0);
  EXPECT_EQ(xgrad::concatenate(std::vector<Expr<T>>{a}, 0), a);
  EXPECT_THROW(xgrad::concatenate(std::vector<Expr<T>>{}, 0), xgrad::ValueError);
  EXPECT_THROW(xgrad::concatenate(std::vector<Expr<T>>{a, d}, 0), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, ConcatenateOpenBatch) {
  using T = TypeParam;
  std::mt19937 gen(23);
  Graph<T> g;
  auto a = g.input("a", {xgrad::open, 2});
  auto b = g.input("b", {xgrad::open, 3});
  auto y = xgrad::concatenate(std::vector<Expr<T>>{a, b}, 1);
  EXPECT_EQ(y.shape(), (xgrad::Shape{xgrad::open, 5}));
  auto rows = xgrad::concatenate(std::vector<Expr<T>>{a, a}, 0);
  auto f = xgrad::compile({y, rows});
  for (std::size_t n : {3u, 1u}) {
    auto av = rnd<T>({n, 2}, gen), bv = rnd<T>({n, 3}, gen);
    const auto& r = f.run({{a, av}, {b, bv}});
    ASSERT_EQ(shape_of(r[0]), (Sh{n, 5}));
    ASSERT_EQ(shape_of(r[1]), (Sh{2 * n, 2}));
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < 2; ++j) {
        EXPECT_EQ(r[0](i, j), av(i, j));
        EXPECT_EQ(r[1](i, j), av(i, j));
        EXPECT_EQ(r[1](n + i, j), av(i, j));
      }
      for (std::size_t j = 0; j < 3; ++j) EXPECT_EQ(r[0](i, 2 + j), bv(i, j));
    }
  }
}

// ------------------------------------------------------------------ losses and softmax

/// softmax or log_softmax along an axis, by loops.
Ref softmax_ref(const Ref& x, std::size_t axis, bool log) {
  Sh s = shape_of(x);
  std::size_t inner = 1;
  for (std::size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  std::size_t len = s[axis], outer = x.size() / (len * inner);
  Ref r = Ref::from_shape(s);
  for (std::size_t o = 0; o < outer; ++o) {
    for (std::size_t i = 0; i < inner; ++i) {
      const double* base = x.data() + o * len * inner + i;
      double lse = logsumexp(base, len, inner);
      for (std::size_t j = 0; j < len; ++j) {
        double v = base[j * inner] - lse;
        r.data()[o * len * inner + i + j * inner] = log ? v : std::exp(v);
      }
    }
  }
  return r;
}

TYPED_TEST(OpsForward, SoftmaxAndLogSoftmaxAlongAxes) {
  using T = TypeParam;
  std::mt19937 gen(24);
  Graph<T> g;
  auto x = g.input("x", {3, 4});
  auto t = g.input("t", {2, 3, 2});
  auto xv = rnd<T>({3, 4}, gen, -3, 3);
  auto tv = rnd<T>({2, 3, 2}, gen, -3, 3);
  auto f = xgrad::compile({xgrad::softmax(x), xgrad::softmax(x, 0), xgrad::log_softmax(x),
                           xgrad::log_softmax(x, -2), xgrad::softmax(t, 1),
                           xgrad::log_softmax(t, 1), xgrad::sum(xgrad::softmax(x), {1})});
  const auto& r = f.run({{x, xv}, {t, tv}});
  Ref xr = to_ref(xv), tr = to_ref(tv);
  expect_close(r[0], softmax_ref(xr, 1, false), kTol<T>);
  expect_close(r[1], softmax_ref(xr, 0, false), kTol<T>);
  expect_close(r[2], softmax_ref(xr, 1, true), kTol<T>);
  expect_close(r[3], softmax_ref(xr, 0, true), kTol<T>);
  expect_close(r[4], softmax_ref(tr, 1, false), kTol<T>);
  expect_close(r[5], softmax_ref(tr, 1, true), kTol<T>);
  expect_close(r[6], make_ref({3}, {1, 1, 1}), kTol<T>);
  EXPECT_THROW(xgrad::softmax(g.input("s", {})), xgrad::ShapeError);
  EXPECT_THROW(xgrad::log_softmax(x, 2), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, SoftmaxStableForHugeLogits) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {xgrad::open, 3});
  xt::xarray<T> xv = {{1000, -1000, 0}, {1000, 1000, -1000}, {-1000, -1000, -1000}};
  auto f = xgrad::compile({xgrad::softmax(x), xgrad::log_softmax(x)});
  const auto& r = f.run({{x, xv}});
  expect_all_finite(r[0]);
  expect_all_finite(r[1]);
  expect_close(r[0], make_ref({3, 3}, {1, 0, 0, 0.5, 0.5, 0, 1. / 3, 1. / 3, 1. / 3}), kTol<T>);
  const double l3 = -std::log(3.0), l2 = -std::log(2.0);
  // Tolerance at the scale of the logits; LogSoftmaxPrecisionUnderLargeShift is tighter.
  expect_close(r[1], make_ref({3, 3}, {0, -2000, -1000, l2, l2, -2000 + l2, l3, l3, l3}),
               kTol<T> * 1000);
}

TYPED_TEST(OpsForward, LogSoftmaxAndCrossEntropyPrecisionUnderLargeShift) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {2, 2});
  auto labels = g.input("labels", {2}, xgrad::DType::int64);
  xt::xarray<T> xv = {{1000, 1000}, {-1000, -1000}};
  I64 lv = {0, 1};
  auto f = xgrad::compile({xgrad::log_softmax(x), xgrad::cross_entropy(x, labels)});
  const auto& r = f.run({{x, xv}, {labels, lv}});
  const double l2 = std::log(2.0);
  expect_close(r[0], make_ref({2, 2}, {-l2, -l2, -l2, -l2}), kTol<T>);
  EXPECT_NEAR(r[1](), l2, kTol<T>);
}

TYPED_TEST(OpsForward, OneHot) {
  using T = TypeParam;
  Graph<T> g;
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto y = xgrad::one_hot(labels, 4);
  EXPECT_EQ(y.shape(), (xgrad::Shape{xgrad::open, 4}));
  auto f = xgrad::compile({y});
  I64 lv = {3, 0, 2};
  expect_close(f.run({{labels, lv}})[0], make_ref({3, 4}, {0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0}), 0);
  I64 bad = {4};
  EXPECT_THROW(f.run({{labels, bad}}), xgrad::ValueError);
  I64 neg = {-1};
  EXPECT_THROW(f.run({{labels, neg}}), xgrad::ValueError);
  EXPECT_THROW(xgrad::one_hot(labels, 0), xgrad::ValueError);
}

TYPED_TEST(OpsForward, CrossEntropyWithIntegerLabels) {
  using T = TypeParam;
  std::mt19937 gen(25);
  Graph<T> g;
  auto z = g.input("z", {xgrad::open, 4});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto f = xgrad::compile({xgrad::cross_entropy(z, labels)});
  for (const I64& lv : {I64{1, 3, 0}, I64{2, 2}}) {
    auto zv = rnd<T>({lv.size(), 4}, gen, -3, 3);
    Ref zr = to_ref(zv);
    double want = 0;
    for (std::size_t r = 0; r < lv.size(); ++r)
      want += logsumexp(&zr(r, 0), 4) - zr(r, static_cast<std::size_t>(lv(r)));
    want /= static_cast<double>(lv.size());
    EXPECT_NEAR(f.run({{z, zv}, {labels, lv}})[0](), want, kTol<T> * std::max(1.0, want));
  }
  // Huge logits: no overflow, exact values.
  xt::xarray<T> huge = {{1000, -1000, 0, 0}, {1000, -1000, 0, 0}};
  I64 hl = {1, 0};
  EXPECT_NEAR(f.run({{z, huge}, {labels, hl}})[0](), 1000.0, kTol<T> * 1000);
  I64 bad = {0, 4};
  EXPECT_THROW(f.run({{z, huge}, {labels, bad}}), xgrad::ValueError);
  EXPECT_THROW(xgrad::cross_entropy(g.input("z3", {2, 3}), g.input("l3", {3})), xgrad::ShapeError);
}

TYPED_TEST(OpsForward, MseAndRmse) {
  using T = TypeParam;
  std::mt19937 gen(26);
  auto sq = [](double a, double b) { return (a - b) * (a - b); };
  Graph<T> g;
  auto p = g.input("p", {xgrad::open, 3});
  auto t = g.input("t", {3});
  auto q = g.input("q", {2, 3});
  // A target broadcast explicitly against an open batch (losses do not broadcast their
  // operands), over successive batch sizes.
  auto tb = xgrad::broadcast_like(t, p);
  auto f = xgrad::compile({xgrad::mse(p, tb), xgrad::rmse(p, tb)});
  for (std::size_t n : {2u, 5u, 1u}) {
    auto pv = rnd<T>({n, 3}, gen), tv = rnd<T>({3}, gen);
    const auto& r = f.run({{p, pv}, {t, tv}});
    double m = reduce_ref(map2(to_ref(pv), to_ref(tv), {n, 3}, sq), {}, false, Red::mean)();
    EXPECT_NEAR(r[0](), m, kTol<T>);
    EXPECT_NEAR(r[1](), std::sqrt(m), kTol<T>);
  }
  // Fully known shapes, either argument order.
  auto pk = g.input("pk", {2, 3});
  auto f2 = xgrad::compile(
      {xgrad::mse(pk, q), xgrad::rmse(q, pk), xgrad::mse(pk, xgrad::broadcast_to(t, {2, 3}))});
  auto pv = rnd<T>({2, 3}, gen), qv = rnd<T>({2, 3}, gen), tv = rnd<T>({3}, gen);
  const auto& r = f2.run({{pk, pv}, {q, qv}, {t, tv}});
  double m = reduce_ref(map2(to_ref(pv), to_ref(qv), {2, 3}, sq), {}, false, Red::mean)();
  double mt = reduce_ref(map2(to_ref(pv), to_ref(tv), {2, 3}, sq), {}, false, Red::mean)();
  EXPECT_NEAR(r[0](), m, kTol<T>);
  EXPECT_NEAR(r[1](), std::sqrt(m), kTol<T>);
  EXPECT_NEAR(r[2](), mt, kTol<T>);
}

TYPED_TEST(OpsForward, RmseExtremeMagnitudesAndZeroResidual) {
  using T = TypeParam;
  const double big = std::is_same_v<T, float> ? 1e30 : 1e200;
  const double tiny = std::is_same_v<T, float> ? 1e-30 : 1e-200;
  Graph<T> g;
  auto p = g.input("p", {2});
  auto t = g.input("t", {2});
  auto f = xgrad::compile({xgrad::rmse(p, t), xgrad::mse(p, t)});
  auto run = [&](double p0, double p1, double t0, double t1) {
    xt::xarray<T> pv = {static_cast<T>(p0), static_cast<T>(p1)};
    xt::xarray<T> tv = {static_cast<T>(t0), static_cast<T>(t1)};
    const auto& r = f.run({{p, pv}, {t, tv}});
    return std::make_pair(static_cast<double>(r[0]()), static_cast<double>(r[1]()));
  };
  // sqrt((9 + 16) / 2) * scale
  const double c = 5 / std::sqrt(2.0);
  EXPECT_NEAR(run(3 * big, -4 * big, 0, 0).first, c * big, kTol<T> * c * big);
  EXPECT_NEAR(run(3 * tiny, 0, 0, 4 * tiny).first, c * tiny, kTol<T> * c * tiny);
  auto zero = run(1.5, -2, 1.5, -2);
  EXPECT_EQ(zero.first, 0.0);
  EXPECT_EQ(zero.second, 0.0);
  EXPECT_NEAR(run(1, 2, 0, 0).first, std::sqrt(2.5), kTol<T>);
}

}  // namespace
