// nn::Module, the layers and the initialisers: names, order, modes, forward values against
// hand computations, gradients against central differences, initial value statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <xgrad/nn/nn.hpp>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

// layer_norm and batch_norm_batch_stats are tested with their layers below.
static_assert(XGRAD_TEST_ROWS(XGRAD_NORM_OPS) == 2, "normalisation op without tests");

namespace nn = xgrad::nn;
using xgrad::Expr;
using xgrad::Graph;
using xgrad_test::contains;

namespace {

// A user module, written as the header's example shows (the "under 30 lines" promise).
struct Net : nn::Module<double> {
  nn::Linear<double> fc1, fc2;
  explicit Net(Graph<double>& g) : Module(g), fc1(g, 4, 3), fc2(g, 3, 2) {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }
  Expr<double> forward(Expr<double> x) override { return fc2(xgrad::relu(fc1(x))); }
};

std::vector<std::string> names(const std::vector<nn::Named<double>>& v) {
  std::vector<std::string> out;
  for (const auto& n : v) out.push_back(n.name);
  return out;
}

}  // namespace

TEST(NnModule, UserModuleHasHierarchicalNamesInRegistrationOrder) {
  Graph<double> g;
  Net net(g);
  EXPECT_EQ(names(net.named_parameters()),
            (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  // The graph's nodes carry the same names, so formulas and drawings read like the model.
  EXPECT_EQ(net.fc1.weight().name(), "fc1.weight");
  EXPECT_EQ(net.parameters().size(), 4u);
  EXPECT_EQ(net.parameters()[2], net.fc2.weight());
  EXPECT_EQ(net.fc1.weight().shape(), (xgrad::Shape{3, 4}));  // (out, in) as in PyTorch
}

TEST(NnModule, SequentialNamesLayersByIndexAndNests) {
  Graph<double> g;
  nn::Sequential<double> model(g);
  auto& inner = model.add<nn::Sequential>();
  inner.add<nn::Linear>(5, 4);
  inner.add<nn::ReLU>();
  model.add<nn::Linear>(4, 2, nn::LinearOptions{.bias = false});
  EXPECT_EQ(model.size(), 2u);
  EXPECT_EQ(names(model.named_parameters()),
            (std::vector<std::string>{"0.0.weight", "0.0.bias", "1.weight"}));
  EXPECT_EQ(g.node(model.parameters()[0].id()).name, "0.0.weight");
  auto x = g.input("x", {xgrad::open, 5});
  EXPECT_EQ(model(x).shape(), (xgrad::Shape{xgrad::open, 2}));
  EXPECT_THROW(model[2], xgrad::ValueError);
}

TEST(NnModule, TrainAndEvalReachEverySubmodule) {
  Graph<double> g;
  Net net(g);
  EXPECT_TRUE(net.fc2.training());
  net.eval();
  EXPECT_FALSE(net.training());
  EXPECT_FALSE(net.fc1.training());
  net.train();
  EXPECT_TRUE(net.fc2.training());
}

TEST(NnModule, RegistrationErrorsNameTheProblem) {
  Graph<double> g;
  struct Bad : nn::Module<double> {
    nn::Linear<double> a;
    explicit Bad(Graph<double>& gr) : Module(gr), a(gr, 2, 2) {}
    Expr<double> forward(Expr<double> x) override { return x; }
    void twice() {
      register_module("a", a);
      register_module("a", a);
    }
    void dotted() { register_parameter("w.x", xt::xarray<double>{1.0}); }
  } bad(g);
  try {
    bad.twice();
    FAIL();
  } catch (const xgrad::ValueError& e) {
    EXPECT_TRUE(contains(e.what(), "'a' is already used")) << e.what();
  }
  EXPECT_THROW(bad.dotted(), xgrad::ValueError);
  Graph<double> other;
  Net net(g);
  auto x = other.input("x", {2, 4});
  try {
    net(x);
    FAIL();
  } catch (const xgrad::GraphError& e) {
    EXPECT_TRUE(contains(e.what(), "another graph")) << e.what();
  }
  auto y = g.input("y", {2, 5});
  try {
    net.fc1(y);
    FAIL();
  } catch (const xgrad::ShapeError& e) {
    EXPECT_TRUE(contains(e.what(), "nn::Linear(4 -> 3)")) << e.what();
    EXPECT_TRUE(contains(e.what(), "'y'")) << e.what();
  }
  EXPECT_THROW(nn::Linear<double>(g, 0, 3), xgrad::ValueError);
}

TEST(NnLinear, ForwardMatchesHandComputationAndGradientsCheck) {
  Graph<double> g;
  nn::Linear<double> fc(g, 3, 2, {.seed = 5});
  g.value(fc.weight()) = xt::xarray<double>{{1, 2, 3}, {-1, 0.5, 2}};
  g.value(fc.bias()) = xt::xarray<double>{0.25, -1};
  auto x = g.input("x", {xgrad::open, 3});
  auto y = fc(x);
  const xt::xarray<double> xv{{1, 0, -1}, {2, 1, 0.5}};
  const auto out = xgrad::eval(y, {{x, xv}});
  // Row 0: (1 - 3 + 0.25, -1 - 2 - 1); row 1: (2 + 2 + 1.5 + 0.25, -2 + 0.5 + 1 - 1).
  EXPECT_DOUBLE_EQ(out(0, 0), -1.75);
  EXPECT_DOUBLE_EQ(out(0, 1), -4.0);
  EXPECT_DOUBLE_EQ(out(1, 0), 5.75);
  EXPECT_DOUBLE_EQ(out(1, 1), -1.5);
  auto loss = xgrad::sum(xgrad::tanh(y));
  auto r = xgrad::check_gradients(loss, fc.parameters(), {{x, xv}});
  EXPECT_TRUE(r.ok) << r.summary();
  // A 3-d input maps its last axis.
  auto x3 = g.input("x3", {2, 2, 3});
  EXPECT_EQ(fc(x3).shape(), (xgrad::Shape{2, 2, 2}));
}

TEST(NnLinear, DefaultsFollowLibTorchAndSeedsReproduce) {
  Graph<float> g;
  nn::Linear<float> a(g, 100, 50, {.seed = 1}), b(g, 100, 50, {.seed = 1}),
      c(g, 100, 50, {.seed = 2});
  EXPECT_EQ(g.value(a.weight()), g.value(b.weight()));
  EXPECT_NE(g.value(a.weight()), g.value(c.weight()));
  const float bound = 1.0f / std::sqrt(100.0f);  // kaiming_uniform(a = sqrt 5) over fan_in
  EXPECT_LE(xt::amax(xt::abs(g.value(a.weight())))(), bound);
  EXPECT_GT(xt::amax(xt::abs(g.value(a.weight())))(), 0.95f * bound);
  EXPECT_LE(xt::amax(xt::abs(g.value(a.bias())))(), bound);
  // Without a seed, layers draw from the manual_seed stream: equal after equal seeds,
  // different from each other.
  nn::manual_seed(7);
  nn::Linear<float> d(g, 10, 10), e(g, 10, 10);
  nn::manual_seed(7);
  nn::Linear<float> f(g, 10, 10);
  EXPECT_EQ(g.value(d.weight()), g.value(f.weight()));
  EXPECT_NE(g.value(d.weight()), g.value(e.weight()));
}

TEST(NnFlatten, MergesTrailingAxes) {
  Graph<double> g;
  nn::Flatten<double> flat(g);
  auto x = g.input("x", {xgrad::open, 2, 3, 4});
  auto y = flat(x);
  EXPECT_EQ(y.shape(), (xgrad::Shape{xgrad::open, 24}));
  xt::xarray<double> v = xt::arange<double>(48).reshape({2, 2, 3, 4});
  auto out = xgrad::eval(y, {{x, v}});
  EXPECT_EQ(out.shape(0), 2u);
  EXPECT_DOUBLE_EQ(out(1, 23), 47);
  nn::Flatten<double> bad(g, 7);
  EXPECT_THROW(bad(x), xgrad::ShapeError);
}

TEST(NnInit, FansAndGainsFollowPyTorch) {
  EXPECT_EQ(nn::init::fans({20, 10}), (std::pair<std::size_t, std::size_t>{10, 20}));
  EXPECT_EQ(nn::init::fans({6, 3, 5, 5}), (std::pair<std::size_t, std::size_t>{75, 150}));
  EXPECT_DOUBLE_EQ(nn::init::gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(nn::init::gain("tanh"), 5.0 / 3);
  EXPECT_DOUBLE_EQ(nn::init::gain("leaky_relu", std::sqrt(5.0)), std::sqrt(1.0 / 3));
  EXPECT_THROW(nn::init::gain("swish"), xgrad::ValueError);
  EXPECT_THROW(nn::init::fans({}), xgrad::ValueError);
}

TEST(NnInit, DistributionsHaveTheirMomentsAndBounds) {
  xt::xarray<double> w = xt::xarray<double>::from_shape({400, 250});  // 100000 values
  const double n = static_cast<double>(w.size());
  auto mean = [&] { return xt::sum(w)() / n; };
  auto stddev = [&] {
    const double m = mean();
    return std::sqrt(xt::sum(xt::square(w - m))() / n);
  };
  nn::init::normal(w, 1.5, 2.0, 3);
  EXPECT_NEAR(mean(), 1.5, 0.03);
  EXPECT_NEAR(stddev(), 2.0, 0.02);
  nn::init::uniform(w, -1.0, 3.0, 3);
  EXPECT_GE(xt::amin(w)(), -1.0);
  EXPECT_LT(xt::amax(w)(), 3.0);
  EXPECT_NEAR(mean(), 1.0, 0.02);
  EXPECT_NEAR(stddev(), 4 / std::sqrt(12.0), 0.01);
  nn::init::xavier_uniform(w, 1.0, 4);  // +-sqrt(6 / 650)
  EXPECT_LE(xt::amax(xt::abs(w))(), std::sqrt(6.0 / 650));
  EXPECT_NEAR(stddev(), std::sqrt(2.0 / 650), 2e-3);
  nn::init::xavier_normal(w, 2.0, 4);
  EXPECT_NEAR(stddev(), 2 * std::sqrt(2.0 / 650), 2e-3);
  nn::init::kaiming_normal(w, 0, nn::init::FanMode::fan_in, "relu", 5);  // fan_in 250
  EXPECT_NEAR(stddev(), std::sqrt(2.0 / 250), 1e-3);
  nn::init::kaiming_uniform(w, 0, nn::init::FanMode::fan_out, "relu", 5);  // fan_out 400
  EXPECT_LE(xt::amax(xt::abs(w))(), std::sqrt(2.0) * std::sqrt(3.0 / 400));
  EXPECT_NEAR(stddev(), std::sqrt(2.0 / 400), 1e-3);
  nn::init::constant(w, 0.5);
  EXPECT_EQ(xt::amin(w)(), 0.5);
  nn::init::zeros(w);
  EXPECT_EQ(xt::amax(xt::abs(w))(), 0.0);
  nn::init::ones(w);
  EXPECT_EQ(mean(), 1.0);
  EXPECT_THROW(nn::init::uniform(w, 2.0, 1.0), xgrad::ValueError);
  EXPECT_THROW(nn::init::normal(w, 0.0, -1.0), xgrad::ValueError);
}

TEST(NnInit, SameSeedSameValuesOtherSeedOtherValues) {
  xt::xarray<float> a = xt::xarray<float>::from_shape({50}), b = a, c = a;
  nn::init::normal(a, 0, 1, 11);
  nn::init::normal(b, 0, 1, 11);
  nn::init::normal(c, 0, 1, 12);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(NnInit, OrthogonalGivesOrthonormalRowsOrColumns) {
  for (auto shape : {std::vector<std::size_t>{6, 4}, std::vector<std::size_t>{3, 8},
                     std::vector<std::size_t>{4, 2, 3}}) {
    xt::xarray<double> w = xt::xarray<double>::from_shape(shape);
    nn::init::orthogonal(w, 2.0, 9);
    const std::size_t rows = shape[0], cols = w.size() / rows;
    xt::xarray<double> m = xt::reshape_view(w, {rows, cols});
    // W^T W = gain^2 I for tall matrices, W W^T = gain^2 I for wide ones.
    const bool tall = rows >= cols;
    const std::size_t k = tall ? cols : rows;
    for (std::size_t i = 0; i < k; ++i) {
      for (std::size_t j = 0; j < k; ++j) {
        double d = 0;
        for (std::size_t t = 0; t < (tall ? rows : cols); ++t)
          d += tall ? m(t, i) * m(t, j) : m(i, t) * m(j, t);
        EXPECT_NEAR(d, i == j ? 4.0 : 0.0, 1e-12) << i << "," << j;
      }
    }
  }
  xt::xarray<double> v = xt::xarray<double>::from_shape({5});
  EXPECT_THROW(nn::init::orthogonal(v), xgrad::ValueError);
}

TEST(NnConv2d, ForwardIsConvPlusBiasAndDefaultsFollowLibTorch) {
  Graph<double> g;
  nn::Conv2d<double> conv(g, 2, 3, {3, 3}, {.padding = {1, 1}, .seed = 4});
  EXPECT_EQ(conv.weight().shape(), (xgrad::Shape{3, 2, 3, 3}));
  EXPECT_EQ(names(conv.named_parameters()), (std::vector<std::string>{"weight", "bias"}));
  const double bound = 1 / std::sqrt(18.0);  // fan_in = 2 * 3 * 3
  EXPECT_LE(xt::amax(xt::abs(g.value(conv.weight())))(), bound);
  EXPECT_LE(xt::amax(xt::abs(g.value(conv.bias())))(), bound);
  auto x = g.input("x", {xgrad::open, 2, 5, 5});
  auto y = conv(x);
  EXPECT_EQ(y.shape(), (xgrad::Shape{xgrad::open, 3, 5, 5}));
  xt::xarray<double> xv = xt::ones<double>({1, 2, 5, 5});
  auto out = xgrad::eval(y, {{x, xv}});
  // The centre of a ones image sees the whole window: sum of channel o's weights + bias.
  for (std::size_t o = 0; o < 3; ++o) {
    double want = g.value(conv.bias())(o);
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 3; ++j) want += g.value(conv.weight())(o, c, i, j);
    EXPECT_NEAR(out(0, o, 2, 2), want, 1e-12);
  }
  auto r = xgrad::check_gradients(xgrad::tanh(y), conv.parameters(), {{x, xv}});
  EXPECT_TRUE(r.ok) << r.summary();
  EXPECT_THROW(nn::Conv2d<double>(g, 0, 3, {3, 3}), xgrad::ValueError);
}

TEST(NnSequential, LeNetShapesFlowThroughConvPoolFlattenLinear) {
  Graph<float> g;
  nn::manual_seed(1);
  nn::Sequential<float> net(g);
  net.add<nn::Conv2d>(1, 6, std::array<std::size_t, 2>{5, 5});
  net.add<nn::ReLU>();
  net.add<nn::MaxPool2d>(std::array<xgrad::Dim, 2>{2, 2});
  net.add<nn::Conv2d>(6, 16, std::array<std::size_t, 2>{5, 5});
  net.add<nn::ReLU>();
  net.add<nn::AvgPool2d>(std::array<xgrad::Dim, 2>{2, 2});
  net.add<nn::Flatten>();
  net.add<nn::Linear>(256, 10);
  auto x = g.input("x", {xgrad::open, 1, 28, 28});
  EXPECT_EQ(net(x).shape(), (xgrad::Shape{xgrad::open, 10}));
  EXPECT_EQ(net.parameters().size(), 6u);
  EXPECT_EQ(net.named_parameters()[2].name, "3.weight");
}

TEST(NnLayerNorm, NormalisesTrailingAxesAndGradientsCheck) {
  Graph<double> g;
  nn::LayerNorm<double> ln(g, {4}, 1e-5);
  auto x = g.input("x", {xgrad::open, 4});
  const xt::xarray<double> xv{{1, 2, 3, 4}, {-2, 0, 0, 6}};
  auto y = xgrad::eval(ln(x), {{x, xv}});
  for (std::size_t r = 0; r < 2; ++r) {
    double m = 0, v = 0;
    for (std::size_t j = 0; j < 4; ++j) m += xv(r, j) / 4;
    for (std::size_t j = 0; j < 4; ++j) v += (xv(r, j) - m) * (xv(r, j) - m) / 4;
    for (std::size_t j = 0; j < 4; ++j)
      EXPECT_NEAR(y(r, j), (xv(r, j) - m) / std::sqrt(v + 1e-5), 1e-12);
  }
  g.value(ln.parameters()[0]) = xt::xarray<double>{0.5, 1, 2, -1};
  auto loss = xgrad::sum(xgrad::tanh(ln(x)) * xgrad::tanh(x));
  auto r = xgrad::check_gradients(loss, ln.parameters(), {{x, xv}});
  EXPECT_TRUE(r.ok) << r.summary();
  auto z = g.parameter("z", xv);
  auto r2 = xgrad::check_gradients(xgrad::sum(xgrad::square(ln(z)) * z), {z});
  EXPECT_TRUE(r2.ok) << r2.summary();
  auto bad = g.input("bad", {2, 5});
  EXPECT_THROW(ln(bad), xgrad::ShapeError);
  EXPECT_THROW(xgrad::layer_norm(x, 1, 0.0), xgrad::ValueError);
  EXPECT_THROW(xgrad::layer_norm(x, 3), xgrad::ShapeError);
}

TEST(NnBatchNorm, BatchStatisticsNormaliseEachChannel) {
  Graph<double> g;
  xt::xarray<double> xv = xt::arange<double>(24).reshape({3, 2, 2, 2});
  xv(1, 1, 0, 1) = -7;
  auto z = g.parameter("z", xv);
  auto y = xgrad::eval(xgrad::batch_norm_batch_stats(z));
  for (std::size_t c = 0; c < 2; ++c) {
    double m = 0, v = 0;
    for (std::size_t n = 0; n < 3; ++n)
      for (std::size_t i = 0; i < 4; ++i) m += xv(n, c, i / 2, i % 2) / 12;
    for (std::size_t n = 0; n < 3; ++n)
      for (std::size_t i = 0; i < 4; ++i) {
        const double d = xv(n, c, i / 2, i % 2) - m;
        v += d * d / 12;
      }
    EXPECT_NEAR(y(2, c, 1, 1), (xv(2, c, 1, 1) - m) / std::sqrt(v + 1e-5), 1e-12);
  }
  auto r =
      xgrad::check_gradients(xgrad::sum(xgrad::batch_norm_batch_stats(z) * xgrad::sin(z)), {z});
  EXPECT_TRUE(r.ok) << r.summary();
}

TEST(NnEmbedding, LooksUpRowsAndGradientsAddUp) {
  Graph<double> g;
  nn::Embedding<double> emb(g, 5, 3, 2);
  auto idx = g.input("idx", {xgrad::open}, xgrad::DType::int64);
  const std::vector<std::int64_t> iv{4, 0, 4};
  auto rows = xgrad::eval(emb(idx), {{idx, iv}});
  const auto& w = g.value(emb.weight());
  EXPECT_EQ(rows(0, 2), w(4, 2));
  EXPECT_EQ(rows(1, 0), w(0, 0));
  auto d = xgrad::eval(xgrad::grad(xgrad::sum(emb(idx)), {emb.weight()})[0], {{idx, iv}});
  EXPECT_EQ(d(4, 1), 2.0);  // looked up twice
  EXPECT_EQ(d(0, 1), 1.0);
  EXPECT_EQ(d(2, 1), 0.0);
  auto idx2 = g.input("idx2", {2, 3}, xgrad::DType::int64);
  EXPECT_THROW(emb(idx2), xgrad::ShapeError);
}
