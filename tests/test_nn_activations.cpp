// The activation layers LeakyReLU and GELU: forward values by hand against their ops,
// options and their errors, no parameters, use inside Sequential, and gradients through
// them against central differences.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <xgrad/nn/nn.hpp>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace nn = xgrad::nn;
using xgrad::Graph;

namespace {

template <class T>
class NnActivations : public ::testing::Test {};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(NnActivations, FloatTypes);

TYPED_TEST(NnActivations, LeakyReLUDefaultAndCustomSlope) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {4});
  xt::xarray<T> xv = {-2, -0.5, 0, 3};
  nn::LeakyReLU<T> d(g);
  nn::LeakyReLU<T> q(g, 0.25);
  EXPECT_EQ(d.negative_slope(), 0.01);
  EXPECT_EQ(q.negative_slope(), 0.25);
  EXPECT_TRUE(d.parameters().empty());
  auto r = xgrad::compile({d(x), q(x)}).run({{x, xv}});
  const T s = T(0.01);
  EXPECT_EQ(r[0], (xt::xarray<T>{T(-2) * s, T(-0.5) * s, 0, 3}));
  EXPECT_EQ(r[1], (xt::xarray<T>{-0.5, -0.125, 0, 3}));
  // The same node as the op.
  EXPECT_EQ(q(x), xgrad::leaky_relu(x, T(0.25)));
}

TYPED_TEST(NnActivations, LeakyReLURejectsNegativeOrNonFiniteSlopes) {
  using T = TypeParam;
  Graph<T> g;
  for (double bad :
       {-0.1, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    try {
      nn::LeakyReLU<T> l(g, bad);
      ADD_FAILURE() << "no ValueError for " << bad;
    } catch (const xgrad::ValueError& e) {
      EXPECT_TRUE(xgrad_test::contains(e.what(), "nn::LeakyReLU")) << e.what();
      EXPECT_TRUE(xgrad_test::contains(e.what(), "negative_slope")) << e.what();
    }
  }
  EXPECT_NO_THROW(nn::LeakyReLU<T>(g, 0.0));
}

TYPED_TEST(NnActivations, GELUExactAndTanh) {
  using T = TypeParam;
  Graph<T> g;
  auto x = g.input("x", {3});
  xt::xarray<T> xv = {-1, 0, 1};
  nn::GELU<T> exact(g);
  nn::GELU<T> approx(g, xgrad::GeluApproximate::tanh);
  EXPECT_EQ(exact.approximate(), xgrad::GeluApproximate::none);
  EXPECT_EQ(approx.approximate(), xgrad::GeluApproximate::tanh);
  EXPECT_TRUE(exact.parameters().empty());
  auto r = xgrad::compile({exact(x), approx(x)}).run({{x, xv}});
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-15;
  // Phi(1) = 0.841344746068543; the tanh form gives 0.841191990608277.
  EXPECT_NEAR(r[0](0), -(1 - 0.841344746068543), tol);
  EXPECT_EQ(r[0](1), T(0));
  EXPECT_NEAR(r[0](2), 0.841344746068543, tol);
  EXPECT_NEAR(r[1](0), -(1 - 0.841191990608277), tol);
  EXPECT_NEAR(r[1](2), 0.841191990608277, tol);
  EXPECT_EQ(xgrad::to_string(approx(x)), "gelu(x, tanh)");
}

TEST(NnActivations, InSequentialWithGradients) {
  Graph<double> g;
  nn::manual_seed(4);
  nn::Sequential<double> model(g);
  model.add<nn::Linear>(3, 4);
  model.add<nn::GELU>();
  model.add<nn::Linear>(4, 4);
  model.add<nn::LeakyReLU>(0.1);
  model.add<nn::Linear>(4, 1);
  model.add<nn::GELU>(xgrad::GeluApproximate::tanh);
  EXPECT_EQ(model.parameters().size(), 6u);  // the activations add none
  auto x = g.input("x", {xgrad::open, 3});
  xt::xarray<double> xv = {{0.5, -1, 2}, {1.5, 0.3, -0.7}};
  auto loss = xgrad::sum(model(x));
  xgrad::GradCheckResult r = xgrad::check_gradients(loss, model.parameters(), {{x, xv}});
  EXPECT_TRUE(r.ok) << r.summary();
  EXPECT_GT(r.checked, 0u);
}

}  // namespace
