// A compiled convolutional training step (conv2d with padding and without, max and average
// pooling, their gradients and the shared unrolled inputs and window maxima) runs without
// allocating once planned, and again after re-planning for another batch size. Malloc
// calls inside shared libraries (the BLAS) are reported, not failed: see
// test_no_alloc.cpp. This file is its own executable (see tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "counting.hpp"

namespace {

using Counts = alloc_counting::Counts;

template <class F>
Counts count_allocations(F&& f) {
  Counts c = alloc_counting::count_allocations(std::forward<F>(f));
  if (c.malloc_foreign) {
    std::printf("note: %ld malloc calls from shared libraries (e.g. the BLAS), not counted\n",
                c.malloc_foreign);
  }
  return c;
}

xt::xarray<float> images(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0, 1);
  xt::xarray<float> x = xt::xarray<float>::from_shape({n, 1, 12, 12});
  for (float& v : x) v = u(rng);
  return x;
}

}  // namespace

TEST(NoAlloc, ConvolutionalTrainingStepAndReplanning) {
  namespace nn = xgrad::nn;
  xgrad::Graph<float> g;
  auto x = g.input("x", {xgrad::open, 1, 12, 12});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  nn::manual_seed(5);
  nn::Sequential<float> net(g);
  net.add<nn::Conv2d>(1, 4, std::array<std::size_t, 2>{3, 3});  // 10 x 10
  net.add<nn::ReLU>();
  net.add<nn::MaxPool2d>(std::array<xgrad::Dim, 2>{2, 2});  // 5 x 5
  net.add<nn::Conv2d>(4, 3, std::array<std::size_t, 2>{3, 3}, nn::Conv2dOptions{.padding = {1, 1}});
  net.add<nn::AvgPool2d>(std::array<xgrad::Dim, 2>{2, 2});  // 2 x 2
  net.add<nn::Flatten>();
  net.add<nn::Linear>(12, 3);
  auto loss = xgrad::cross_entropy(net(x), labels);
  std::vector<xgrad::Expr<float>> outs{loss};
  for (auto gr : xgrad::grad(loss, net.parameters())) outs.push_back(gr);
  auto step = xgrad::compile(outs);

  auto run = [&](const xt::xarray<float>& xv, const xt::xarray<std::int64_t>& yv) {
    step.run({{x, xv}, {labels, yv}});
  };
  const xt::xarray<float> x8 = images(8, 1), x3 = images(3, 2);
  const xt::xarray<std::int64_t> y8 = {0, 1, 2, 0, 1, 2, 0, 1}, y3 = {2, 1, 0};
  for (const auto& batch : {std::pair{&x8, &y8}, {&x3, &y3}, {&x8, &y8}}) {
    // Not a structured binding: lambdas may not capture those before C++20 in Clang 14.
    const xt::xarray<float>* xv = batch.first;
    const xt::xarray<std::int64_t>* yv = batch.second;
    run(*xv, *yv);  // plans for this batch size
    Counts c = count_allocations([&] {
      for (int it = 0; it < 20; ++it) run(*xv, *yv);
    });
    EXPECT_EQ(c.news(), 0) << "operator new calls in 20 runs, batch " << xv->shape(0);
    EXPECT_EQ(c.malloc_own, 0) << "malloc-family calls in 20 runs, batch " << xv->shape(0);
  }
  EXPECT_EQ(step.plan_count(), 3u);
}
