// conv2d, max_pool2d and avg_pool2d: forward against direct loops, gradients (first and
// second order) against central differences in double, shape errors, printing.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

// Every row of the table has its forward, gradient and error tests below.
static_assert(XGRAD_TEST_ROWS(XGRAD_CONV_OPS) == 4, "convolution or pooling op without tests");

using xgrad::Dim;
using xgrad::Expr;
using xgrad::Graph;
using xgrad_test::contains;

namespace {

xt::xarray<double> random(std::vector<std::size_t> shape, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
  for (double& v : a) v = u(rng);
  return a;
}

// The definition, written out: y[n, o, r, q] = sum_{c, i, j} x[n, c, r*s - p + i*d,
// q*s - p + j*d] w[o, c, i, j], zero outside x.
xt::xarray<double> conv_loops(const xt::xarray<double>& x, const xt::xarray<double>& w,
                              xgrad::Conv2dOptions o) {
  const std::size_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  const std::size_t O = w.shape(0), KH = w.shape(2), KW = w.shape(3);
  const Dim sh = o.stride[0], sw = o.stride[1], ph = o.padding[0], pw = o.padding[1];
  const Dim dh = o.dilation[0], dw = o.dilation[1];
  const std::size_t OH = (H + 2 * ph - dh * (KH - 1) - 1) / sh + 1;
  const std::size_t OW = (W + 2 * pw - dw * (KW - 1) - 1) / sw + 1;
  xt::xarray<double> y = xt::zeros<double>({N, O, OH, OW});
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t oc = 0; oc < O; ++oc)
      for (std::size_t r = 0; r < OH; ++r)
        for (std::size_t q = 0; q < OW; ++q)
          for (std::size_t c = 0; c < C; ++c)
            for (std::size_t i = 0; i < KH; ++i)
              for (std::size_t j = 0; j < KW; ++j) {
                const Dim yy = Dim(r) * sh - ph + Dim(i) * dh, xx = Dim(q) * sw - pw + Dim(j) * dw;
                if (yy >= 0 && yy < Dim(H) && xx >= 0 && xx < Dim(W))
                  y(n, oc, r, q) += x(n, c, yy, xx) * w(oc, c, i, j);
              }
  return y;
}

struct Geometry {
  std::vector<std::size_t> x, w;
  xgrad::Conv2dOptions o;
};
const std::vector<Geometry> kGeometries = {
    {{2, 3, 7, 6}, {4, 3, 3, 3}, {}},
    {{1, 2, 8, 8}, {3, 2, 3, 2}, {.stride = {2, 1}, .padding = {1, 2}}},
    {{2, 1, 9, 9}, {2, 1, 3, 3}, {.stride = {2, 2}, .padding = {1, 1}, .dilation = {2, 1}}},
    {{3, 4, 5, 5}, {2, 4, 1, 1}, {}},  // 1x1: the sample is its own unrolled matrix
    {{1, 1, 4, 4}, {1, 1, 4, 4}, {}},  // one output element
};

}  // namespace

TEST(Conv2d, ForwardMatchesTheDefinition) {
  for (const Geometry& geo : kGeometries) {
    Graph<double> g;
    auto xv = random(geo.x, 1), wv = random(geo.w, 2);
    auto x = g.parameter("x", xv), w = g.parameter("w", wv);
    auto y = xgrad::conv2d(x, w, geo.o);
    const auto want = conv_loops(xv, wv, geo.o);
    ASSERT_EQ(y.shape(), xgrad::Shape(want.shape().begin(), want.shape().end()));
    EXPECT_TRUE(xt::allclose(xgrad::eval(y), want, 1e-12, 1e-12));
  }
}

TEST(Conv2d, FloatAgreesWithDouble) {
  Graph<float> g;
  auto xv = random({2, 3, 7, 6}, 3), wv = random({4, 3, 3, 3}, 4);
  auto x = g.parameter("x", xt::xarray<float>(xv)), w = g.parameter("w", xt::xarray<float>(wv));
  auto y = xgrad::eval(xgrad::conv2d(x, w));
  EXPECT_TRUE(xt::allclose(xt::xarray<double>(y), conv_loops(xv, wv, {}), 1e-5, 1e-5));
}

TEST(Conv2d, GradientsAndSecondDerivativesMatchCentralDifferences) {
  for (const Geometry& geo : kGeometries) {
    Graph<double> g;
    auto x = g.parameter("x", random(geo.x, 5)), w = g.parameter("w", random(geo.w, 6));
    auto y = xgrad::conv2d(x, w, geo.o);
    auto r = xgrad::check_gradients(xgrad::tanh(y), {x, w});
    EXPECT_TRUE(r.ok) << r.summary();
    // The gradients are conv_transpose2d and conv2d_weight nodes: differentiate them again.
    auto grads = xgrad::grad(xgrad::sum(xgrad::square(y)), {x, w});
    for (auto gr : grads) {
      auto r2 = xgrad::check_gradients(gr, {x, w});
      EXPECT_TRUE(r2.ok) << r2.summary();
    }
  }
}

TEST(Conv2d, OpenBatchReplansForEachBatchSize) {
  Graph<double> g;
  auto x = g.input("x", {xgrad::open, 2, 6, 6});
  auto wv = random({3, 2, 3, 3}, 7);
  auto w = g.parameter("w", wv);
  auto y = xgrad::conv2d(x, w, {.padding = {1, 1}});
  EXPECT_EQ(y.shape(), (xgrad::Shape{xgrad::open, 3, 6, 6}));
  auto f = xgrad::compile({y, xgrad::grad(xgrad::sum(y), {w})[0]});
  for (std::size_t n : {3u, 5u, 3u}) {
    auto xv = random({n, 2, 6, 6}, 8 + n);
    const auto& out = f.run({{x, xv}});
    EXPECT_TRUE(xt::allclose(out[0], conv_loops(xv, wv, {.padding = {1, 1}})));
  }
}

TEST(Conv2d, BadShapesAndOptionsNameTheOpAndShapes) {
  Graph<double> g;
  auto x = g.input("x", {2, 3, 8, 8});
  auto w = g.parameter("w", random({4, 2, 3, 3}, 1));
  try {
    xgrad::conv2d(x, w);
    FAIL();
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "conv2d")) << e.what();
    EXPECT_TRUE(contains(e.what(), "(2, 3, 8, 8)")) << e.what();
    EXPECT_TRUE(contains(e.what(), "(4, 2, 3, 3)")) << e.what();
  }
  auto big = g.parameter("big", random({1, 3, 9, 9}, 1));
  EXPECT_THROW(xgrad::conv2d(x, big), xgrad::ShapeError);  // window larger than the input
  auto v = g.input("v", {2, 3, 8});
  EXPECT_THROW(xgrad::conv2d(v, w), xgrad::ShapeError);
  auto w3 = g.parameter("w3", random({4, 3, 3, 3}, 1));
  try {
    xgrad::conv2d(x, w3, {.stride = {0, 1}});
    FAIL();
  } catch (const xgrad::ValueError& e) {
    EXPECT_TRUE(contains(e.what(), "conv2d: strides")) << e.what();
  }
  EXPECT_THROW(xgrad::conv2d(x, w3, {.padding = {-1, 0}}), xgrad::ValueError);
}

TEST(Conv2d, GradientPrintsAsTransposedConvolution) {
  Graph<double> g;
  auto x = g.input("x", {1, 1, 5, 5});
  auto w = g.parameter("W", random({1, 1, 3, 3}, 1));
  auto y = xgrad::conv2d(x, w, {.stride = {2, 2}});
  EXPECT_EQ(xgrad::to_string(y), "conv2d(x, W, stride=2)");
  auto gx = xgrad::grad(xgrad::sum(y), {x, w});
  EXPECT_TRUE(contains(xgrad::to_string(gx[0]), "conv_transpose2d(")) << xgrad::to_string(gx[0]);
  EXPECT_TRUE(contains(xgrad::to_string(gx[1]), "conv2d_weight(x, ")) << xgrad::to_string(gx[1]);
  EXPECT_TRUE(contains(xgrad::to_dot(gx[0]), "conv_transpose2d"));
}

TEST(Conv2dBias, AddsOneValuePerOutputChannel) {
  for (const Geometry& geo : kGeometries) {
    Graph<double> g;
    auto xv = random(geo.x, 21), wv = random(geo.w, 22), bv = random({geo.w[0]}, 23);
    auto x = g.parameter("x", xv), w = g.parameter("w", wv), b = g.parameter("b", bv);
    auto want = conv_loops(xv, wv, geo.o);
    for (std::size_t n = 0; n < want.shape(0); ++n)
      for (std::size_t o = 0; o < want.shape(1); ++o)
        for (std::size_t r = 0; r < want.shape(2); ++r)
          for (std::size_t q = 0; q < want.shape(3); ++q) want(n, o, r, q) += bv(o);
    EXPECT_TRUE(xt::allclose(xgrad::eval(xgrad::conv2d_bias(x, w, b, geo.o)), want, 1e-12, 1e-12));
  }
}

TEST(Conv2dBias, GradientsAndSecondDerivativesMatchCentralDifferences) {
  for (const Geometry& geo : kGeometries) {
    Graph<double> g;
    auto x = g.parameter("x", random(geo.x, 24)), w = g.parameter("w", random(geo.w, 25));
    auto b = g.parameter("b", random({geo.w[0]}, 26));
    auto y = xgrad::conv2d_bias(x, w, b, geo.o);
    auto r = xgrad::check_gradients(xgrad::tanh(y), {x, w, b});
    EXPECT_TRUE(r.ok) << r.summary();
    // The bias gradient sums the output gradient per channel (a node too): differentiate
    // every gradient again, in all three operands.
    auto grads = xgrad::grad(xgrad::sum(xgrad::square(y)), {x, w, b});
    for (auto gr : grads) {
      auto r2 = xgrad::check_gradients(gr, {x, w, b});
      EXPECT_TRUE(r2.ok) << r2.summary();
    }
  }
}

TEST(Conv2dBias, HandDerivedBiasGradientAndErrors) {
  Graph<double> g;
  auto x = g.input("x", {2, 1, 3, 3});
  auto w = g.parameter("W", random({2, 1, 2, 2}, 27));
  auto b = g.parameter("b", random({2}, 28));
  auto y = xgrad::conv2d_bias(x, w, b);
  EXPECT_EQ(xgrad::to_string(y), "conv2d(x, W, b)");
  // d sum(y) / d b[o] = the number of output positions of channel o: 2 samples x 2 x 2.
  auto f = xgrad::compile({xgrad::grad(xgrad::sum(y), {b})[0]});
  const auto& out = f.run({{x, random({2, 1, 3, 3}, 29)}});
  EXPECT_EQ(out[0], (xt::xarray<double>{8, 8}));
  auto b3 = g.parameter("b3", random({3}, 30));
  try {
    xgrad::conv2d_bias(x, w, b3);
    FAIL();
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "conv2d")) << e.what();
    EXPECT_TRUE(contains(e.what(), "(3,)")) << e.what();
  }
  EXPECT_THROW(xgrad::conv2d_bias(x, w, b, {.dilation = {0, 1}}), xgrad::ValueError);
}

namespace {
xt::xarray<double> pool_loops(const xt::xarray<double>& x, std::size_t k, std::size_t s,
                              std::size_t p, bool max, bool include_pad) {
  const std::size_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  const std::size_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  xt::xarray<double> y = xt::zeros<double>({N, C, OH, OW});
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t r = 0; r < OH; ++r)
        for (std::size_t q = 0; q < OW; ++q) {
          double best = -1e300, sum = 0;
          std::size_t inside = 0;
          for (std::size_t i = 0; i < k; ++i)
            for (std::size_t j = 0; j < k; ++j) {
              const Dim yy = Dim(r * s + i) - Dim(p), xx = Dim(q * s + j) - Dim(p);
              if (yy < 0 || yy >= Dim(H) || xx < 0 || xx >= Dim(W)) continue;
              best = std::max(best, x(n, c, yy, xx));
              sum += x(n, c, yy, xx);
              ++inside;
            }
          y(n, c, r, q) = max ? best : sum / double(include_pad ? k * k : inside);
        }
  return y;
}
}  // namespace

TEST(Pool2d, ForwardMatchesTheDefinition) {
  Graph<double> g;
  auto xv = random({2, 3, 7, 8}, 11);
  auto x = g.parameter("x", xv);
  struct Case {
    Dim k, s, p;
  };
  for (Case c : {Case{2, 2, 0}, Case{3, 1, 1}, Case{3, 2, 1}, Case{2, 1, 0}}) {
    xgrad::Pool2dOptions o{.stride = {c.s, c.s}, .padding = {c.p, c.p}};
    EXPECT_TRUE(xt::allclose(xgrad::eval(xgrad::max_pool2d(x, {c.k, c.k}, o)),
                             pool_loops(xv, c.k, c.s, c.p, true, true)));
    EXPECT_TRUE(xt::allclose(xgrad::eval(xgrad::avg_pool2d(x, {c.k, c.k}, o)),
                             pool_loops(xv, c.k, c.s, c.p, false, true)));
    o.count_include_pad = false;
    EXPECT_TRUE(xt::allclose(xgrad::eval(xgrad::avg_pool2d(x, {c.k, c.k}, o)),
                             pool_loops(xv, c.k, c.s, c.p, false, false)));
  }
}

TEST(Pool2d, GradientsMatchCentralDifferences) {
  Graph<double> g;
  auto x = g.parameter("x", random({2, 2, 6, 7}, 12));  // distinct values: no ties
  for (Dim p : {0, 1}) {
    xgrad::Pool2dOptions o{.stride = {2, 2}, .padding = {p, p}};
    auto m = xgrad::max_pool2d(x, {3, 3}, o);
    auto r = xgrad::check_gradients(m, {x});
    EXPECT_TRUE(r.ok) << r.summary();
    auto a = xgrad::avg_pool2d(x, {3, 3}, o);
    r = xgrad::check_gradients(a, {x});
    EXPECT_TRUE(r.ok) << r.summary();
    // Second derivatives: through avg_pool2d's adjoint, and through max pooling's.
    auto da = xgrad::grad(xgrad::sum(xgrad::square(a)), {x})[0];
    r = xgrad::check_gradients(da, {x});
    EXPECT_TRUE(r.ok) << r.summary();
    auto dm = xgrad::grad(xgrad::sum(xgrad::square(m)), {x})[0];
    r = xgrad::check_gradients(dm, {x});
    EXPECT_TRUE(r.ok) << r.summary();
  }
}

TEST(Pool2d, MaxGradientGoesToTheFirstMaximumOfEachWindow) {
  Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>{{{{1, 3, 3, 0}, {2, 0, 1, 5}}}});
  auto d = xgrad::eval(xgrad::grad(xgrad::sum(xgrad::max_pool2d(x, {2, 2})), {x})[0]);
  EXPECT_EQ(d, (xt::xarray<double>{{{{0, 1, 0, 0}, {0, 0, 0, 1}}}}));
  EXPECT_EQ(xgrad::to_string(xgrad::max_pool2d(x, {2, 2})), "max_pool2d(x, 2)");
}

TEST(Pool2d, BadOptionsAreRejected) {
  Graph<double> g;
  auto x = g.input("x", {1, 1, 4, 4});
  EXPECT_THROW(xgrad::max_pool2d(x, {0, 2}), xgrad::ValueError);
  EXPECT_THROW(xgrad::avg_pool2d(x, {2, 2}, {.padding = {2, 0}}), xgrad::ValueError);
  EXPECT_THROW(xgrad::max_pool2d(x, {5, 5}), xgrad::ShapeError);
  auto v = g.input("v", {4, 4});
  EXPECT_THROW(xgrad::avg_pool2d(v, {2, 2}), xgrad::ShapeError);
}

TEST(Pool2d, TiledTwoByTwoWindowsOnOddExtents) {
  // 2x2 windows with stride 2 tile all but an odd last row or column, which gets no
  // gradient; every other position gets its window's gradient when it is the maximum.
  Graph<double> g;
  auto xv = random({2, 3, 7, 9}, 13);
  auto x = g.parameter("x", xv);
  auto m = xgrad::max_pool2d(x, {2, 2});
  EXPECT_TRUE(xt::allclose(xgrad::eval(m), pool_loops(xv, 2, 2, 0, true, true)));
  auto r = xgrad::check_gradients(m, {x});
  EXPECT_TRUE(r.ok) << r.summary();
  auto d = xgrad::eval(xgrad::grad(xgrad::sum(m), {x})[0]);
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t c = 0; c < 3; ++c) {
      for (std::size_t q = 0; q < 9; ++q) EXPECT_EQ(d(n, c, 6, q), 0.0);
      for (std::size_t i = 0; i < 7; ++i) EXPECT_EQ(d(n, c, i, 8), 0.0);
      double total = 0;
      for (std::size_t i = 0; i < 7; ++i)
        for (std::size_t q = 0; q < 9; ++q) total += d(n, c, i, q);
      EXPECT_EQ(total, 12.0);  // one maximum per window
    }
}

TEST(Pool2d, NaNWinsItsWindowAndTakesTheGradient) {
  Graph<double> g;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (Dim k : {2, 3}) {  // the tiled 2x2 path (stride 2) and the general one (stride 1)
    xt::xarray<double> xv = xt::zeros<double>({1, 1, 3, 4});
    xv(0, 0, 1, 1) = nan;
    xv(0, 0, 0, 0) = 5;
    auto x = g.parameter(k == 2 ? "x2" : "x3", xv);
    auto m = xgrad::max_pool2d(x, {k, k}, {.stride = {k == 2 ? 2 : 1, k == 2 ? 2 : 1}});
    auto y = xgrad::eval(m);
    EXPECT_TRUE(std::isnan(y(0, 0, 0, 0)));  // NaN beats the larger 5 before it
    auto d = xgrad::eval(xgrad::grad(xgrad::sum(m), {x})[0]);
    EXPECT_EQ(d(0, 0, 0, 0), 0.0);
    EXPECT_GE(d(0, 0, 1, 1), 1.0);
  }
}
