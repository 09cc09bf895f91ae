// A compiled Function, once planned, runs without allocating: counting.hpp replaces global
// operator new/delete (every overload), and on glibc without AddressSanitizer interposes
// the malloc family as well, which also catches xtensor containers (their xsimd aligned
// allocator calls malloc, not operator new).
// operator new must not be called at all; malloc calls are split by caller: code in this
// executable (xgrad is linked statically, xtensor is header-only) must not allocate;
// calls made inside shared libraries are reported but not failed. The BLAS is one:
// OpenBLAS 0.3.21's AVX-512 small-matrix dgemm kernel (dgemm_small_kernel_b0_nn_SKYLAKEX)
// mallocs a buffer on every call for some shapes, e.g. row-major 8x16 @ 16x3
// (OPENBLAS_CORETYPE=Haswell avoids that kernel).
// This file is its own executable (see tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <utility>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "counting.hpp"

namespace {

using Counts = alloc_counting::Counts;

/// alloc_counting::count_allocations, noting the malloc calls made inside shared libraries.
template <class F>
Counts count_allocations(F&& f) {
  Counts c = alloc_counting::count_allocations(std::forward<F>(f));
  if (c.malloc_foreign) {
    std::printf("note: %ld malloc calls from shared libraries (e.g. the BLAS), not counted\n",
                c.malloc_foreign);
  }
  return c;
}

/// Keeps the compiler from eliding an allocation the test makes on purpose.
template <class P>
void escape(P* p) {
  asm volatile("" : : "g"(p) : "memory");
}

TEST(AllocCounter, SeesEveryKindOfAllocation) {
  Counts c = count_allocations([] {
    int* a = new int(1);
    escape(a);
    delete a;
    int* b = new int[4];
    escape(b);
    delete[] b;
    struct alignas(64) Wide {
      double v[8];
    };
    Wide* w = new Wide;
    escape(w);
    delete w;
    int* n = new (std::nothrow) int(2);
    escape(n);
    delete n;
    std::vector<double> v(100);
    escape(v.data());
  });
  EXPECT_EQ(c.news(), 5);
  if constexpr (alloc_counting::counts_malloc) {
    Counts m = count_allocations([] {
      void* p = std::malloc(32);
      escape(p);
      std::free(p);
      xt::xarray<double> x = xt::zeros<double>({3, 3});  // xsimd's aligned allocator
      escape(x.data());
    });
    EXPECT_GE(m.malloc_own, 2);
  }
}

// The seed's linear-regression step: loss and gradient of sum((y - X beta)^2) / 2, X (?, 3).
TEST(NoAlloc, LinearRegressionStep) {
  xt::xarray<double> X = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {2, 3, 1}};
  xt::xarray<double> y = {6, 8, 9, 11};
  xgrad::Graph<double> g;
  auto Xi = g.input("X", {xgrad::open, 3});
  auto yi = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::xarray<double>{10.1, 15.1, -6.5});
  auto loss = xgrad::sum(xgrad::square(yi - xgrad::matmul(Xi, beta))) / 2.0;
  auto gb = xgrad::grad(loss, {beta})[0];
  auto step = xgrad::compile({loss, gb});
  double first = step.run({{Xi, X}, {yi, y}})[0]();  // warm-up: plans the buffers
  ASSERT_EQ(step.plan_count(), 1u);

  double* b = g.value(beta).data();
  Counts c = count_allocations([&] {
    for (int it = 0; it < 100; ++it) {
      const auto& r = step.run({{Xi, X}, {yi, y}});
      const double* d = r[1].data();
      for (int j = 0; j < 3; ++j) b[j] -= 0.01 * d[j];
    }
  });
  EXPECT_EQ(c.news(), 0) << "operator new calls in 100 runs";
  EXPECT_EQ(c.malloc_own, 0) << "malloc-family calls in 100 runs";
  EXPECT_EQ(step.plan_count(), 1u);
  EXPECT_LT(step.run({{Xi, X}, {yi, y}})[0](), first);
}

/// A two-layer classifier: matmul + bias + relu, then cross-entropy on int64 labels.
struct Mlp {
  xgrad::Graph<double> g;
  xgrad::Expr<double> X, labels, W1, b1, W2, b2, loss;
  std::vector<xgrad::Expr<double>> params;
  xgrad::Function<double> step;

  static xgrad::Function<double> build(Mlp& m) {
    std::mt19937 rng(11);
    std::normal_distribution<double> n(0.0, 0.5);
    auto randn = [&](std::size_t r, std::size_t c) {
      xt::xarray<double> a = xt::zeros<double>({r, c});
      for (auto& v : a) v = n(rng);
      return a;
    };
    m.X = m.g.input("X", {xgrad::open, 4});
    m.labels = m.g.input("labels", {xgrad::open}, xgrad::DType::int64);
    m.W1 = m.g.parameter("W1", randn(4, 16));
    m.b1 = m.g.parameter("b1", xt::xarray<double>(xt::zeros<double>({16})));
    m.W2 = m.g.parameter("W2", randn(16, 3));
    m.b2 = m.g.parameter("b2", xt::xarray<double>(xt::zeros<double>({3})));
    auto h = xgrad::relu(xgrad::matmul(m.X, m.W1) + m.b1);
    auto logits = xgrad::matmul(h, m.W2) + m.b2;
    m.loss = xgrad::cross_entropy(logits, m.labels).named("loss");
    m.params = {m.W1, m.b1, m.W2, m.b2};
    std::vector<xgrad::Expr<double>> outs{m.loss};
    for (auto d : xgrad::grad(m.loss, m.params)) outs.push_back(d);
    return xgrad::compile(outs);
  }
  Mlp() : step(build(*this)) {}

  // One SGD step; plain loops so that only the library could allocate.
  double train(const xt::xarray<double>& xv, const std::vector<std::int64_t>& yv) {
    const auto& r = step.run({{X, xv}, {labels, yv}});
    for (std::size_t k = 0; k < params.size(); ++k) {
      auto& p = g.value(params[k]);
      const double* d = r[k + 1].data();
      for (std::size_t i = 0; i < p.size(); ++i) p.data()[i] -= 0.1 * d[i];
    }
    return r[0]();
  }
};

void make_batch(std::size_t n, unsigned seed, xt::xarray<double>& xv,
                std::vector<std::int64_t>& yv) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.3);
  xv = xt::zeros<double>({n, std::size_t{4}});
  yv.assign(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t cls = static_cast<std::int64_t>(i % 3);
    yv[i] = cls;
    for (std::size_t j = 0; j < 4; ++j) {
      xv(i, j) = (static_cast<std::int64_t>(j) == cls ? 2.0 : 0.0) + noise(rng);
    }
  }
}

TEST(NoAlloc, MlpCrossEntropyStepAndReplanning) {
  Mlp m;
  xt::xarray<double> x8, x5;
  std::vector<std::int64_t> y8, y5;
  make_batch(8, 1, x8, y8);
  make_batch(5, 2, x5, y5);

  double first = m.train(x8, y8);  // warm-up
  ASSERT_EQ(m.step.plan_count(), 1u);
  double last = first;
  Counts c8 = count_allocations([&] {
    for (int it = 0; it < 100; ++it) last = m.train(x8, y8);
  });
  EXPECT_EQ(c8.news(), 0) << "operator new calls in 100 runs, batch 8";
  EXPECT_EQ(c8.malloc_own, 0) << "malloc-family calls in 100 runs, batch 8";
  EXPECT_EQ(m.step.plan_count(), 1u);
  EXPECT_LT(last, first);

  // A different batch size re-plans once, then runs allocation-free again.
  m.train(x5, y5);
  EXPECT_EQ(m.step.plan_count(), 2u);
  Counts c5 = count_allocations([&] {
    for (int it = 0; it < 100; ++it) m.train(x5, y5);
  });
  EXPECT_EQ(c5.news(), 0) << "operator new calls in 100 runs, batch 5";
  EXPECT_EQ(c5.malloc_own, 0) << "malloc-family calls in 100 runs, batch 5";
  EXPECT_EQ(m.step.plan_count(), 2u);

  // Back to the first size: one more plan, still no allocation per run afterwards.
  m.train(x8, y8);
  EXPECT_EQ(m.step.plan_count(), 3u);
  Counts again = count_allocations([&] {
    for (int it = 0; it < 100; ++it) m.train(x8, y8);
  });
  EXPECT_EQ(again.news(), 0);
  EXPECT_EQ(again.malloc_own, 0);
}

// An MLP step at two threads with products large enough to be split between them: the
// pool's workers run parts without allocating either.
TEST(NoAlloc, MlpStepAtTwoThreads) {
  const int old = xgrad::num_threads();
  xgrad::set_num_threads(2);
  std::mt19937 rng(5);
  std::normal_distribution<double> n(0.0, 0.1);
  auto randn = [&](std::size_t r, std::size_t c) {
    xt::xarray<double> a = xt::zeros<double>({r, c});
    for (auto& v : a) v = n(rng);
    return a;
  };
  xgrad::Graph<double> g;
  auto X = g.input("X", {xgrad::open, 256});
  auto W1 = g.parameter("W1", randn(256, 256));
  auto W2 = g.parameter("W2", randn(256, 8));
  auto h = xgrad::relu(xgrad::matmul(X, W1));
  auto loss = xgrad::mean(xgrad::square(xgrad::matmul(h, W2)));
  auto grads = xgrad::grad(loss, {W1, W2});
  auto step = xgrad::compile({loss, grads[0], grads[1]});
  const xt::xarray<double> xv = randn(512, 256);
  step.run({{X, xv}});  // warm-up: plans, and each thread's scratch
  Counts c = count_allocations([&] {
    for (int it = 0; it < 20; ++it) step.run({{X, xv}});
  });
  xgrad::set_num_threads(old);
  EXPECT_EQ(c.news(), 0) << "operator new calls in 20 runs at 2 threads";
  EXPECT_EQ(c.malloc_own, 0) << "malloc-family calls in 20 runs at 2 threads";
  EXPECT_EQ(step.plan_count(), 1u);
}

TEST(NoAlloc, SinglePrecisionStep) {
  xgrad::Graph<float> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto w = g.parameter("w", xt::xarray<float>{0.5f, -0.5f, 1.0f});
  auto loss = xgrad::mean(xgrad::square(xgrad::tanh(xgrad::matmul(X, w))));
  auto dw = xgrad::grad(loss, {w})[0];
  auto step = xgrad::compile({loss, dw});
  xt::xarray<float> xv = {{1, 2, 3}, {0, 1, 0}, {2, 0, 1}};
  step.run({{X, xv}});
  Counts c = count_allocations([&] {
    for (int it = 0; it < 100; ++it) step.run({{X, xv}});
  });
  EXPECT_EQ(c.news(), 0);
  EXPECT_EQ(c.malloc_own, 0);
}

// A training step that also writes state: Dropout's step counter and BatchNorm1d's
// running statistics and count, copied into their buffers after every run.
TEST(NoAlloc, TrainingStepWithStateUpdates) {
  xgrad::Graph<double> g;
  xgrad::nn::Sequential<double> model(g);
  model.add<xgrad::nn::Linear>(4, 8, xgrad::nn::LinearOptions{.seed = 1});
  model.add<xgrad::nn::BatchNorm1d>(8);
  model.add<xgrad::nn::ReLU>();
  model.add<xgrad::nn::Dropout>(0.25, 2);
  model.add<xgrad::nn::Linear>(8, 3, xgrad::nn::LinearOptions{.seed = 3});
  auto X = g.input("X", {xgrad::open, 4});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto loss = xgrad::cross_entropy(model(X), labels);
  std::vector<xgrad::Expr<double>> outs{loss};
  for (auto d : xgrad::grad(loss, model.parameters())) outs.push_back(d);
  auto updates = model.updates();
  ASSERT_EQ(updates.size(), 4u);
  auto step = xgrad::compile(outs, {}, updates);
  xt::xarray<double> x8, x5;
  std::vector<std::int64_t> y8, y5;
  make_batch(8, 1, x8, y8);
  make_batch(5, 2, x5, y5);
  step.run({{X, x8}, {labels, y8}});  // warm-up: plans the buffers
  const auto& bn = dynamic_cast<xgrad::nn::BatchNorm1d<double>&>(model[1]);
  const auto& drop = dynamic_cast<xgrad::nn::Dropout<double>&>(model[3]);
  const double mean_before = g.value(bn.running_mean())(0);
  Counts c = count_allocations([&] {
    for (int it = 0; it < 100; ++it) step.run({{X, x8}, {labels, y8}});
  });
  EXPECT_EQ(c.news(), 0) << "operator new calls in 100 runs with updates";
  EXPECT_EQ(c.malloc_own, 0) << "malloc-family calls in 100 runs with updates";
  EXPECT_EQ(g.value(drop.step())(), 101.0);
  EXPECT_EQ(g.value(bn.num_batches_tracked())(), 101.0);
  EXPECT_NE(g.value(bn.running_mean())(0), mean_before);
  // A smaller last batch re-plans once, then runs allocation-free again.
  step.run({{X, x5}, {labels, y5}});
  Counts c5 = count_allocations([&] {
    for (int it = 0; it < 100; ++it) step.run({{X, x5}, {labels, y5}});
  });
  EXPECT_EQ(c5.news(), 0);
  EXPECT_EQ(c5.malloc_own, 0);
  EXPECT_EQ(step.plan_count(), 2u);
  EXPECT_EQ(g.value(drop.step())(), 202.0);
}

}  // namespace

// Optimizer steps after the first (which creates per-parameter state) allocate nothing,
// for every optimizer with every shared option and a composed schedule.
namespace {
namespace opt = xgrad::optim;
using P = std::vector<xgrad::Expr<double>>;
template <class O>
void check(const char* name, O make) {
  xgrad::Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>{1.5, -0.5, 2.0});
  auto y = g.parameter("y", xt::xarray<double>(0.8));
  auto loss = xgrad::sum(xgrad::square(x)) + 2.0 * xgrad::square(y);
  auto gr = xgrad::grad(loss, {x, y});
  auto f = xgrad::compile({loss, gr[0], gr[1]});
  auto o = make(P{x, y});
  const auto& out = f.run();
  auto first = count_allocations([&] { o->step(out[0](), out, 1); });
  // The first step creates state (xtensor buffers come from malloc), proving the counter
  // sees it; where malloc is not counted (ASan), only the zero below is checked.
  if (alloc_counting::counts_malloc) {
    EXPECT_GT(first.news() + first.malloc_own, 0) << name;
  }
  o->step(out[0](), out, 1);
  auto c = count_allocations([&] {
    for (int i = 0; i < 5; ++i) o->step(out[0](), out, 1);
  });
  EXPECT_EQ(c.news() + c.malloc_own, 0)
      << name << " news " << c.news() << " mallocs " << c.malloc_own;
}
TEST(OptimNoAlloc, AllOptimizersAllOptions) {
  opt::Options all{.maximize = true,
                   .weight_decay = 0.1,
                   .decoupled_weight_decay = 0.01,
                   .clip_norm = 1,
                   .clip_value = 0.5};
  auto sched = opt::linear_warmup(
      3, opt::sequential({opt::cosine(0.1, 4), opt::reduce_on_plateau(0.01)}, {4}));
  check("gd", [&](P p) { return std::make_unique<opt::GradientDescent<double>>(p, sched, all); });
  check("mom", [&](P p) {
    return std::make_unique<opt::Momentum<double>>(p, sched, opt::MomentumConfig{}, all);
  });
  check("nest", [&](P p) {
    return std::make_unique<opt::Nesterov<double>>(p, sched, opt::MomentumConfig{}, all);
  });
  check("adagrad", [&](P p) {
    return std::make_unique<opt::AdaGrad<double>>(p, sched, opt::AdaGradConfig{}, all);
  });
  check("rms", [&](P p) {
    return std::make_unique<opt::RMSProp<double>>(
        p, sched, opt::RMSPropConfig{.momentum = 0.5, .centered = true}, all);
  });
  check("adam", [&](P p) {
    return std::make_unique<opt::Adam<double>>(p, sched, opt::AdamConfig{.amsgrad = true}, all);
  });
  check("adamw", [&](P p) {
    return std::make_unique<opt::AdamW<double>>(p, sched, opt::AdamConfig{}, 0.01, all);
  });
  check("plain adam", [&](P p) { return std::make_unique<opt::Adam<double>>(p, 0.1); });
}
}  // namespace
