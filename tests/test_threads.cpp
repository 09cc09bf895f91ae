// What docs/design.md ("Threads") promises, checked (and run under ThreadSanitizer by
// .ci/run): objects of different graphs are independent, so whole training loops run in
// two threads at once and give what they give alone; several Functions of one graph run
// at once while nothing changes the graph; two epochs of one loader prefetch at once.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <xgrad/xgrad.hpp>

namespace {

namespace data = xgrad::data;

std::string bytes_of(const xt::xarray<float>& a) {
  return {reinterpret_cast<const char*>(a.data()), a.size() * sizeof(float)};
}

// A small training loop over a graph of its own: conv2d, pooling, dropout, an nn::Linear
// layer (its initialisation draws from the shared seed stream, so it is seeded here),
// matmul through BLAS, Adam. Returns the trained parameters' bytes.
std::string train_alone(std::uint32_t seed) {
  xgrad::Graph<float> g;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.5f);
  auto random = [&](std::vector<std::size_t> shape) {
    xt::xarray<float> a = xt::xarray<float>::from_shape(shape);
    for (float& v : a) v = normal(rng);
    return a;
  };
  auto x = g.input("x", {xgrad::open, 2, 6, 6});
  auto t = g.input("t", {xgrad::open, 3});
  auto w = g.parameter("w", random({4, 2, 3, 3}));
  auto step = g.parameter("step", xt::xarray<float>(0.f));
  xgrad::nn::Linear<float> head(g, 4 * 2 * 2, 3, {.seed = seed});
  auto h = xgrad::max_pool2d(xgrad::relu(xgrad::conv2d(x, w)), {2, 2});
  h = xgrad::dropout(h, 0.25, seed, step);
  auto y = head(xgrad::reshape(h, {-1, 16}));
  auto loss = xgrad::mse(y, t);
  std::vector<xgrad::Expr<float>> params{w};
  for (auto p : head.parameters()) params.push_back(p);
  std::vector<xgrad::Expr<float>> outs{loss};
  for (auto gr : xgrad::grad(loss, params)) outs.push_back(gr);
  auto f = xgrad::compile(outs, {}, {{step, step + 1.f}});
  xgrad::optim::Adam<float> adam(params, xgrad::optim::constant(1e-2));
  const xt::xarray<float> xs = random({5, 2, 6, 6}), ts = random({5, 3});
  for (int k = 0; k < 40; ++k) {
    const auto& out = f.run({{x, xs}, {t, ts}});
    adam.step(out[0](), out, 1);
  }
  std::string out;
  for (auto p : params) out += bytes_of(g.value(p));
  return out;
}

TEST(Threads, TwoGraphsTrainInTwoThreadsAtOnce) {
  const std::string a = train_alone(1), b = train_alone(2);
  ASSERT_NE(a, b);
  std::string ta, tb;
  std::thread t1([&] { ta = train_alone(1); });
  std::thread t2([&] { tb = train_alone(2); });
  t1.join();
  t2.join();
  EXPECT_TRUE(ta == a) << "thread 1 differs from the same loop alone";
  EXPECT_TRUE(tb == b) << "thread 2 differs from the same loop alone";
}

TEST(Threads, FunctionsOfOneGraphRunAtOnceWhileTheGraphIsUnchanged) {
  xgrad::Graph<double> g;
  auto x = g.input("x", {xgrad::open, 4});
  auto w = g.parameter("w", xt::xarray<double>{{1, -2}, {0.5, 3}, {2, 1}, {-1, 0}});
  auto y = xgrad::tanh(xgrad::matmul(x, w));
  auto loss = xgrad::mean(xgrad::square(y));
  auto value = xgrad::compile({y});
  auto gradient = xgrad::compile({loss, xgrad::grad(loss, {w})[0]});
  auto inputs = [](int thread, int k) {
    xt::xarray<double> a = xt::xarray<double>::from_shape({std::size_t(1 + k % 5), 4});
    for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = 0.1 * double(thread + k) - 0.01 * i;
    return a;
  };
  // Expected results, computed one after the other.
  std::vector<xt::xarray<double>> want_y, want_g;
  for (int k = 0; k < 200; ++k) {
    want_y.push_back(value.run({{x, inputs(0, k)}})[0]);
    want_g.push_back(gradient.run({{x, inputs(1, k)}})[1]);
  }
  int bad_y = 0, bad_g = 0;
  std::thread t1([&] {
    for (int k = 0; k < 200; ++k) bad_y += value.run({{x, inputs(0, k)}})[0] != want_y[k];
  });
  std::thread t2([&] {
    for (int k = 0; k < 200; ++k) bad_g += gradient.run({{x, inputs(1, k)}})[1] != want_g[k];
  });
  t1.join();
  t2.join();
  EXPECT_EQ(bad_y, 0);
  EXPECT_EQ(bad_g, 0);
}

TEST(Threads, TwoEpochsOfOneLoaderPrefetchAtOnce) {
  const std::size_t n = 300;
  xt::xarray<double> xs = xt::xarray<double>::from_shape({n, 3});
  for (std::size_t i = 0; i < xs.size(); ++i) xs.data()[i] = double(i);
  data::TensorDataset<double> set(xs, xt::arange<double>(double(n)));
  data::DataLoader<double> loader(set, {.batch_size = 16, .seed = 9, .prefetch = 2});
  auto sums = [&](std::size_t epoch) {
    std::vector<double> s;
    for (const auto& b : loader.epoch(epoch)) s.push_back(xt::sum(b.features)() + b.targets(0));
    return s;
  };
  const auto want3 = sums(3), want4 = sums(4);
  std::vector<double> got3, got4;
  std::thread t1([&] { got3 = sums(3); });
  std::thread t2([&] { got4 = sums(4); });
  t1.join();
  t2.join();
  EXPECT_EQ(got3, want3);
  EXPECT_EQ(got4, want4);
  EXPECT_NE(want3, want4);
}

}  // namespace
