// The project's catalogue of bad inputs: each case feeds one through the public API and
// states the error kind it must raise and the words its message must contain (the op,
// the node, the shape or value). It walks the classes a bad-input trial found: crashes
// (bounds that wrap, element counts that overflow, handles that outlive their graph),
// silent results (empty batches, bindings given twice, NaN inputs, gradients that do not
// exist, out-of-range hyper-parameters, short batches), very large allocations, and
// messages that named too little. A regression shows up as a failing case by name.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>
#include <xgrad/data/data.hpp>
#include <xgrad/optim/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "test_util.hpp"

namespace {

using xgrad::Dim;
using xgrad::Expr;
using xgrad::Graph;
namespace opt = xgrad::optim;

constexpr Dim k2e32 = Dim{1} << 32;
constexpr Dim k2e25 = Dim{1} << 25;  // (2^25, 2^25) doubles: 8 PiB, beyond any address space

template <class E>
bool is(const xgrad::Error& e) {
  return dynamic_cast<const E*>(&e) != nullptr;
}

/// One bad input: what to run, the error kind it must raise, words its message contains.
struct Case {
  const char* name;
  bool (*kind)(const xgrad::Error&);
  const char* kind_name;
  std::function<void()> run;
  std::vector<std::string> words;
};
#define XGRAD_KIND(E) &is<xgrad::E>, #E

xt::xarray<double> ones(std::vector<std::size_t> shape) { return xt::ones<double>(shape); }

/// A data set whose gather() returns one row fewer than asked for.
struct ShortData : xgrad::data::Dataset<double> {
  std::size_t size() const override { return 10; }
  xgrad::data::Batch<double> gather(std::span<const std::size_t> idx) const override {
    xgrad::data::Batch<double> b(idx.subspan(0, idx.size() - 1), {2}, {});
    b.features.fill(1);
    b.targets.fill(0);
    return b;
  }
};

/// A container a TensorArg accepts, with a shape of no elements whose extents overflow.
struct HugeEmpty {
  using value_type = double;
  std::array<std::size_t, 3> dims{0, std::size_t{1} << 32, std::size_t{1} << 32};
  const double* data() const { return nullptr; }
  const std::array<std::size_t, 3>& shape() const { return dims; }
  xt::layout_type layout() const { return xt::layout_type::row_major; }
  std::size_t dimension() const { return 3; }
};

std::vector<Case> crashes() {
  return {
      {"step_first_grad_wraps",
       XGRAD_KIND(ValueError),
       [] {
         Graph<double> g;
         auto w = g.parameter("w", ones({2}));
         opt::SGD<double> sgd({w}, 0.1);
         std::vector<xt::xarray<double>> out{ones({2})};
         sgd.step(out, std::numeric_limits<std::size_t>::max());  // k - 1 with k == 0
       },
       {"SGD", "gradients starting at output 18446744073709551615", "only 1 outputs"}},
      {"step_loss_first_grad_wraps",
       XGRAD_KIND(ValueError),
       [] {
         Graph<double> g;
         auto w = g.parameter("w", ones({2}));
         opt::Adam<double> adam({w}, 0.1);
         std::vector<xt::xarray<double>> out{ones({2})};
         adam.step(1.0, out, std::numeric_limits<std::size_t>::max());
       },
       {"Adam", "gradients starting at output"}},
      {"broadcast_to_overflows",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         auto p = g.parameter("p", ones({1, 1}));
         broadcast_to(p, {k2e32, k2e32});
       },
       {"broadcast_to", "overflows", "(4294967296, 4294967296)", "'p'"}},
      {"reshape_empty_overflows",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         auto x = g.parameter("x_empty", xt::xarray<double>::from_shape({0}));
         reshape(x, {k2e32, k2e32});
       },
       {"reshape", "overflows", "'x_empty'"}},
      {"reshape_open_overflows",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         auto x = g.input("x", {xgrad::open, 2});
         reshape(x, {-1, k2e32, k2e32});
       },
       {"reshape", "overflows", "(-1, 4294967296, 4294967296)"}},
      {"runtime_broadcast_overflows",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         auto x = g.input("x", {xgrad::open, xgrad::open});
         auto f = xgrad::compile({unsqueeze(x, {2}) + unsqueeze(x, {1})});
         auto v = xt::xarray<double>::from_shape({0, std::size_t{1} << 33});
         f.run({{x, v}});
       },
       {"add", "overflows", "(0, 8589934592, 8589934592)", "(0, 1, 8589934592)"}},
      {"binding_overflows",
       XGRAD_KIND(BindingError),
       [] {
         Graph<double> g;
         auto x = g.input("x", {xgrad::open, xgrad::open, xgrad::open});
         auto f = xgrad::compile({x * 2.0});
         f.run({{x, HugeEmpty{}}});
       },
       {"'x'", "overflows"}},
      {"function_after_graph",
       XGRAD_KIND(GraphError),
       [] {
         auto g = std::make_unique<Graph<double>>();
         auto w = g->parameter("w", ones({2}));
         auto f = xgrad::compile({sum(w)});
         g.reset();
         f.run();
       },
       {"run", "graph", "destroyed"}},
      {"optimizer_after_graph",
       XGRAD_KIND(GraphError),
       [] {
         auto g = std::make_unique<Graph<double>>();
         auto w = g->parameter("w", ones({2}));
         opt::SGD<double> sgd({w}, 0.1);
         g.reset();
         std::vector<xt::xarray<double>> grads{ones({2})};
         sgd.step(grads);
       },
       {"SGD", "destroyed"}},
      {"two_graphs_in_one_op",
       XGRAD_KIND(GraphError),
       [] {
         Graph<double> g1, g2;
         auto a = g1.parameter("a", ones({2}));
         auto b = g2.parameter("b", ones({2}));
         a* b;
       },
       {"mul", "different graphs", "'a'", "'b'"}},
  };
}

std::vector<Case> silent_results() {
  auto empty_run = [](auto build, std::vector<std::size_t> shape) {
    return [build, shape] {
      Graph<double> g;
      auto x = g.input("x", std::vector<Dim>(shape.size(), xgrad::open));
      auto f = xgrad::compile({build(g, x)});
      f.run({{x, xt::xarray<double>::from_shape(shape)}});
    };
  };
  return {
      {"mean_of_empty_batch",
       XGRAD_KIND(ShapeError),
       empty_run([](Graph<double>&, Expr<double> x) { return mean(x); }, {0, 3}),
       {"mean", "empty", "'x'", "(0, 3)"}},
      {"max_of_empty_batch",
       XGRAD_KIND(ShapeError),
       empty_run([](Graph<double>&, Expr<double> x) { return max(x); }, {0, 3}),
       {"max", "empty", "'x'"}},
      {"mse_of_empty_batch",
       XGRAD_KIND(ShapeError),
       empty_run([](Graph<double>&, Expr<double> x) { return mse(x, 2.0 * x); }, {0}),
       {"mean", "empty", "(0,)"}},
      {"rmse_of_empty_batch",
       XGRAD_KIND(ShapeError),
       empty_run([](Graph<double>&, Expr<double> x) { return rmse(x, 2.0 * x); }, {0}),
       {"rmse", "no elements", "(0,)"}},
      {"rmse_of_static_empty",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         auto e = g.parameter("e", xt::xarray<double>::from_shape({0}));
         rmse(e, g.constant(xt::xarray<double>::from_shape({0})));
       },
       {"rmse", "no elements", "'e'", "(0,)"}},
      {"cross_entropy_of_empty_batch",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         auto z = g.input("z", {xgrad::open, 3});
         auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
         auto f = xgrad::compile({cross_entropy(z, labels)});
         xt::xarray<std::int64_t> l = xt::xarray<std::int64_t>::from_shape({0});
         f.run({{z, xt::xarray<double>::from_shape({0, 3})}, {labels, l}});
       },
       {"cross_entropy", "empty batch", "'z'", "(0, 3)"}},
      {"mean_of_static_empty",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         mean(g.parameter("e", xt::xarray<double>::from_shape({0, 2})));
       },
       {"mean", "empty", "'e'"}},
      {"input_bound_twice",
       XGRAD_KIND(BindingError),
       [] {
         Graph<double> g;
         auto x = g.input("x", {2});
         auto f = xgrad::compile({sum(x)});
         f.run({{x, ones({2})}, {x, ones({2})}});
       },
       {"'x'", "bound twice"}},
      {"check_finite_input",
       XGRAD_KIND(ValueError),
       [] {
         Graph<double> g;
         auto x = g.input("x", {2});
         auto f = xgrad::compile({sum(x)}, {.check_finite = true});
         xt::xarray<double> v = {1.0, std::nan("")};
         f.run({{x, v}});
       },
       {"check_finite", "'x'", "nan", "flat index 1"}},
      {"grad_of_labels",
       XGRAD_KIND(GraphError),
       [] {
         Graph<double> g;
         auto z = g.input("z", {4, 3});
         auto labels = g.input("labels", {4}, xgrad::DType::int64);
         grad(cross_entropy(z, labels), {labels});
       },
       {"cross_entropy", "labels", "class indices"}},
      {"adam_eps_zero",
       XGRAD_KIND(ValueError),
       [] {
         Graph<double> g;
         opt::Adam<double>({g.parameter("w", ones({2}))}, 0.1, {.eps = 0});
       },
       {"Adam", "eps = 0"}},
      {"adagrad_eps_zero",
       XGRAD_KIND(ValueError),
       [] {
         Graph<double> g;
         opt::AdaGrad<double>({g.parameter("w", ones({2}))}, 0.1, {.eps = 0});
       },
       {"AdaGrad", "eps = 0"}},
      {"rmsprop_eps_infinite",
       XGRAD_KIND(ValueError),
       [] {
         Graph<double> g;
         opt::RMSProp<double>({g.parameter("w", ones({2}))}, 0.1, {.eps = HUGE_VAL});
       },
       {"RMSProp", "eps = inf"}},
      {"adam_beta1_one",
       XGRAD_KIND(ValueError),
       [] {
         Graph<double> g;
         opt::Adam<double>({g.parameter("w", ones({2}))}, 0.1, {.beta1 = 1});
       },
       {"Adam", "beta1 = 1"}},
      {"momentum_one",
       XGRAD_KIND(ValueError),
       [] {
         Graph<double> g;
         opt::Momentum<double>({g.parameter("w", ones({2}))}, 0.1, {.momentum = 1});
       },
       {"Momentum", "momentum = 1"}},
      {"negative_lr",
       XGRAD_KIND(ValueError),
       [] {
         Graph<double> g;
         opt::SGD<double>({g.parameter("w", ones({2}))}, -0.1);
       },
       {"-0.1"}},
      {"schedule_negative_gamma",
       XGRAD_KIND(ValueError),
       [] { opt::exponential(0.1, -0.5); },
       {"exponential", "gamma = -0.5"}},
      {"stopping_negative_eps",
       XGRAD_KIND(ValueError),
       [] { opt::grad_norm_below(-1); },
       {"grad_norm_below", "eps = -1"}},
      {"short_gather",
       XGRAD_KIND(data::DataError),
       [] {
         ShortData d;
         xgrad::data::DataLoader<double> loader(d, {.batch_size = 4});
         loader.batch(0, 0);
       },
       {"DataLoader", "ShortData", "3 feature rows", "4 indices"}},
  };
}

// They ask for petabytes on purpose; AddressSanitizer's allocator aborts on that instead
// of failing, so a sanitized build leaves them out.
std::vector<Case> allocations() {
#if defined(XGRAD_TEST_ASAN)
  return {};
#endif
  return {
      {"folded_constant_petabytes",
       XGRAD_KIND(AllocationError),
       [] {
         Graph<double> g;
         broadcast_to(g.constant(ones({1}), "c"), {k2e25, k2e25});
       },
       {"broadcast_to", "(33554432, 33554432)", "9007199254740992 bytes", "'c'"}},
      {"output_petabytes",
       XGRAD_KIND(AllocationError),
       [] {
         Graph<double> g;
         auto x = g.input("x", {1});
         auto f = xgrad::compile({broadcast_to(x, {k2e25, k2e25}).named("huge")});
         f.run({{x, ones({1})}});
       },
       {"the output", "'huge'", "(33554432, 33554432)", "bytes"}},
      {"intermediate_petabytes",
       XGRAD_KIND(AllocationError),
       [] {
         Graph<double> g;
         auto x = g.input("x", {1});
         auto f = xgrad::compile({sum(broadcast_to(x, {k2e25, k2e25}).named("huge"))});
         f.run({{x, ones({1})}});
       },
       {"intermediate buffers", "'huge'", "(33554432, 33554432)", "bytes"}},
  };
}

std::vector<Case> vague_messages() {
  Expr<double> none;
  return {
      {"empty_handle_in_add",
       XGRAD_KIND(GraphError),
       [none] {
         Graph<double> g;
         none + g.parameter("w", ones({2}));
       },
       {"add", "invalid (empty) Expr"}},
      {"empty_handle_times_scalar",
       XGRAD_KIND(GraphError),
       [none] { none * 2.0; },
       {"mul", "invalid (empty) Expr"}},
      {"empty_handle_in_sum",
       XGRAD_KIND(GraphError),
       [none] { sum(none); },
       {"sum", "invalid (empty) Expr"}},
      {"empty_handle_in_matmul",
       XGRAD_KIND(GraphError),
       [none] {
         Graph<double> g;
         matmul(g.parameter("w", ones({2, 2})), none);
       },
       {"matmul", "operand 1", "invalid (empty) Expr"}},
      {"empty_handle_in_transpose",
       XGRAD_KIND(GraphError),
       [none] { transpose(none); },
       {"transpose", "invalid (empty) Expr"}},
      {"empty_handle_in_broadcast_to",
       XGRAD_KIND(GraphError),
       [none] { broadcast_to(none, {2}); },
       {"broadcast_to", "invalid (empty) Expr"}},
      {"empty_handle_in_grad",
       XGRAD_KIND(GraphError),
       [none] {
         Graph<double> g;
         grad(sum(g.parameter("w", ones({2}))), {none});
       },
       {"grad", "variable 0", "invalid (empty) Expr"}},
      {"empty_handle_compiled",
       XGRAD_KIND(GraphError),
       [none] { xgrad::compile({none}); },
       {"compile", "output 0", "invalid (empty) Expr"}},
      {"empty_handle_bound",
       XGRAD_KIND(BindingError),
       [none] {
         Graph<double> g;
         auto x = g.input("x", {2});
         auto f = xgrad::compile({sum(x)});
         f.run({{none, ones({2})}, {x, ones({2})}});
       },
       {"run", "binding 0", "invalid (empty) Expr"}},
      {"reshape_two_inferred",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         reshape(g.parameter("x", ones({2, 3})), {-1, -1});
       },
       {"reshape", "(-1, -1)", "'x'"}},
      {"transpose_axis_minus_5",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         transpose(g.parameter("x", ones({2, 3})), {-5, 0});
       },
       {"transpose", "-5", "'x'"}},
      {"input_rank_9",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         g.input("deep", std::vector<Dim>(9, 1));
       },
       {"input 'deep'", "rank 9", "8"}},
      {"optimizer_state_shape",
       XGRAD_KIND(ShapeError),
       [] {
         Graph<double> g;
         auto w = g.parameter("w", ones({2}));
         opt::Adam<double> adam({w}, 0.1);
         auto s = adam.state();
         s.params[0].tensors["exp_avg"] = ones({5});
         adam.load_state(s);
         std::vector<xt::xarray<double>> grads{ones({2})};
         adam.step(grads);
       },
       {"Adam", "'w'", "exp_avg", "(5)", "(2)"}},
  };
}

std::vector<Case> catalogue() {
  std::vector<Case> all;
  for (auto part : {crashes, silent_results, allocations, vague_messages}) {
    for (Case& c : part()) all.push_back(std::move(c));
  }
  return all;
}

class BadInput : public ::testing::TestWithParam<Case> {};

TEST_P(BadInput, RaisesTheNamedError) {
  const Case& c = GetParam();
  try {
    c.run();
  } catch (const xgrad::Error& e) {
    EXPECT_TRUE(c.kind(e)) << "expected " << c.kind_name << ", got: " << e.what();
    for (const std::string& w : c.words) {
      EXPECT_TRUE(xgrad_test::contains(e.what(), w))
          << "message lacks \"" << w << "\": " << e.what();
    }
    return;
  } catch (const std::exception& e) {
    FAIL() << "expected " << c.kind_name << ", got a non-xgrad exception: " << e.what();
  }
  FAIL() << "expected " << c.kind_name << ", nothing was thrown";
}

INSTANTIATE_TEST_SUITE_P(Catalogue, BadInput, ::testing::ValuesIn(catalogue()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// ---- Documented behaviour that is not an error.

TEST(BadInputDocumented, SliceClampsLikePython) {
  Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>{0, 1, 2, 3, 4});
  EXPECT_EQ(xgrad::eval(slice(x, 0, 2, 100)), (xt::xarray<double>{2, 3, 4}));
  EXPECT_EQ(xgrad::eval(slice(x, 0, -100, 2)), (xt::xarray<double>{0, 1}));
  EXPECT_EQ(xgrad::eval(slice(x, 0, 4, 2)).size(), 0u);
}

// sum_to, the sum behind bias gradients, accumulates float32 in double like sum: over
// 6000 rows its relative error stays at float32 rounding of the exact sum (accumulating
// in float gave 5e-5), tiled or not.
TEST(BadInputDocumented, Float32SumToAccumulatesInDouble) {
  const std::size_t rows = 6000, cols = 128;  // 3 MB: large enough to be row-tiled
  xt::xarray<float> v = xt::xarray<float>::from_shape({rows, cols});
  std::uint64_t state = 12345;
  for (float& e : v) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    e = 0.1f + static_cast<float>(state >> 40) / static_cast<float>(1 << 24);  // [0.1, 1.1)
  }
  std::vector<double> exact(cols, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) exact[c] += static_cast<double>(v(r, c) * 1.5f);
  for (bool tile : {false, true}) {
    Graph<float> g;
    auto x = g.input("x", {xgrad::open, static_cast<Dim>(cols)});
    auto b = g.parameter("b", xt::zeros<float>({cols}));
    auto s = sum_to_like(x * 1.5f, b);
    auto f = xgrad::compile({s}, {.tile_rows = tile, .tile_bytes = 4096});
    const auto& r = f.run({{x, v}})[0];
    if (tile) {
      EXPECT_GT(f.tiled_steps(), 0u);
    }
    double worst = 0;
    for (std::size_t c = 0; c < cols; ++c) {
      const double want = exact[c];
      worst = std::max(worst, std::abs(static_cast<double>(r(c)) - want) / want);
    }
    EXPECT_LT(worst, 2e-7) << (tile ? "tiled" : "untiled");
  }
}

// A killed save leaves "<target>.tmp.<pid>.<n>" behind; the next save of the same target
// removes those of dead processes and keeps those of live ones.
TEST(BadInputDocumented, NpyWriterRemovesStaleTemporaries) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("xgrad_stale_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string target = (dir / "w.npy").string();
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);  // a pid that no longer runs
  const std::string stale = target + ".tmp." + std::to_string(child) + ".0";
  const std::string live = target + ".tmp." + std::to_string(::getpid()) + ".999";
  const std::string other = (dir / "v.npy.tmp.1.0").string();
  for (const auto& p : {stale, live, other}) std::ofstream(p) << "partial";
  xgrad::data::save_npy(target, xt::xarray<double>{1, 2, 3});
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));   // may be a save still running
  EXPECT_TRUE(fs::exists(other));  // another target's
  EXPECT_TRUE(fs::exists(target));
  fs::remove_all(dir);
}

}  // namespace
