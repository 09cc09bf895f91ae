// libFuzzer target: the input decodes into a graph of random ops over the public ops API
// (random operands, shapes and attributes), which is then compiled, run (twice, with two
// batch sizes for an input of open extent), differentiated and run again, sometimes to
// second order. Every step must either succeed or throw an xgrad::Error.
//
// Extents stay small (at most 4, results at most 4096 elements) so that each input runs
// in well under a millisecond; the overflow of huge extents is the shape rules' own test.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "fuzz_util.hpp"

namespace {

using E = xgrad::Expr<double>;
using xgrad::Dim;
using xgrad::Shape;

// The input as a stream of choices; past its end every choice is 0.
class Choices {
 public:
  Choices(const std::uint8_t* p, std::size_t n) : p_(p), n_(n) {}
  bool done() const { return n_ == 0; }
  unsigned byte() {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  /// An integer in [lo, hi].
  int in(int lo, int hi) { return lo + static_cast<int>(byte() % unsigned(hi - lo + 1)); }
  bool flag() { return byte() & 1; }
  /// A value, now and then a special one.
  double value() {
    const unsigned b = byte();
    switch (b % 16) {
      case 0:
        return 0.0;
      case 1:
        return -0.0;
      case 2:
        return std::numeric_limits<double>::infinity();
      case 3:
        return -std::numeric_limits<double>::infinity();
      case 4:
        return std::numeric_limits<double>::quiet_NaN();
      case 5:
        return 1e300;
      case 6:
        return 1e-310;
      default:
        return (static_cast<int>(b) - 128) / 16.0;
    }
  }
  Dim axis() { return in(-4, 4); }
  std::vector<Dim> axes() {
    std::vector<Dim> a(byte() % 3);
    for (Dim& d : a) d = axis();
    return a;
  }
  /// A target shape: rank 0 to 4, extents -1 (inferred or open) to 4.
  Shape shape() {
    Shape s(byte() % 5);
    for (Dim& d : s) d = in(-1, 4);
    return s;
  }
  std::array<Dim, 2> pair(int lo, int hi) { return {in(lo, hi), in(lo, hi)}; }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
};

// An array of the given extents filled with chosen values (integers when whole is set).
xt::xarray<double> array(Choices& c, const std::vector<std::size_t>& shape, bool whole) {
  xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
  for (double& v : a) v = whole ? c.in(-1, 4) : c.value();
  return a;
}

std::vector<std::size_t> extents(Choices& c, std::size_t max_rank) {
  std::vector<std::size_t> s(c.byte() % (max_rank + 1));
  for (auto& d : s) d = static_cast<std::size_t>(c.in(0, 4));
  return s;
}

// At most 4096 elements, counting an open extent as 4.
bool small(const E& e) {
  std::size_t n = 1;
  for (Dim d : e.shape()) n *= d < 0 ? 4 : static_cast<std::size_t>(d);
  return n <= 4096;
}

using Unary = E (*)(E);
using Binary = E (*)(E, E);
const Unary unary_ops[] = {
    xgrad::neg<double>,  xgrad::square<double>,  xgrad::sqrt<double>,       xgrad::exp<double>,
    xgrad::log<double>,  xgrad::abs<double>,     xgrad::sin<double>,        xgrad::cos<double>,
    xgrad::tanh<double>, xgrad::sigmoid<double>, xgrad::relu<double>,       xgrad::softplus<double>,
    xgrad::sign<double>, xgrad::step<double>,    xgrad::zeros_like<double>, xgrad::norm<double>};
const Binary binary_ops[] = {xgrad::add<double>,
                             xgrad::sub<double>,
                             xgrad::mul<double>,
                             xgrad::div<double>,
                             xgrad::pow<double>,
                             xgrad::maximum<double>,
                             xgrad::minimum<double>,
                             xgrad::safe_div<double>,
                             xgrad::xlogy<double>,
                             xgrad::equal<double>,
                             [](E a, E b) { return xgrad::mse(a, b); },
                             xgrad::rmse<double>,
                             xgrad::reshape_like<double>,
                             xgrad::broadcast_like<double>,
                             xgrad::sum_to_like<double>,
                             [](E a, E b) { return xgrad::cross_entropy(a, b); },
                             xgrad::gather_rows<double>};

// One op of the chosen kind over operands from the pool.
E build(Choices& c, xgrad::Graph<double>& g, const std::vector<E>& pool) {
  auto pick = [&]() -> E { return pool[c.byte() % pool.size()]; };
  constexpr unsigned kinds = 20;
  switch (c.byte() % kinds) {
    case 0:
      return unary_ops[c.byte() % std::size(unary_ops)](pick());
    case 1: {
      const E a = pick();
      return binary_ops[c.byte() % std::size(binary_ops)](a, pick());
    }
    case 2: {
      const E x = pick();
      switch (c.byte() % 3) {
        case 0:
          return xgrad::pow(x, c.value());
        case 1:
          return xgrad::leaky_relu(x, c.value());
        default: {
          const double lo = c.value();
          return xgrad::clamp(x, lo, c.value());
        }
      }
    }
    case 3: {
      const E a = pick(), b = pick();
      const bool ta = c.flag();
      return xgrad::matmul(a, b, ta, c.flag());
    }
    case 4:
      return xgrad::transpose(pick(), c.axes());
    case 5: {
      const E x = pick();
      return c.flag() ? xgrad::softmax(x, c.axis()) : xgrad::log_softmax(x, c.axis());
    }
    case 6: {
      const E x = pick();
      return xgrad::one_hot(x, c.in(-1, 5));
    }
    case 7: {
      const E x = pick();
      return c.flag() ? xgrad::layer_norm(x, static_cast<std::size_t>(c.in(0, 4)), c.value())
                      : xgrad::batch_norm_batch_stats(x, c.value());
    }
    case 8: {
      const E x = pick();
      const double p = c.in(-1, 5) / 4.0;
      const std::uint64_t seed = c.byte();
      return xgrad::dropout(x, p, seed, c.flag() ? g.scalar(c.in(0, 9)) : pick());
    }
    case 9: {
      const E x = pick();
      const auto axes = c.axes();
      const bool keep = c.flag();
      switch (c.byte() % 4) {
        case 0:
          return xgrad::sum(x, axes, keep);
        case 1:
          return xgrad::mean(x, axes, keep);
        case 2:
          return xgrad::max(x, axes, keep);
        default:
          return xgrad::size_of(x, axes);
      }
    }
    case 10: {
      const E x = pick();
      return xgrad::reshape(x, c.shape());
    }
    case 11: {
      const E x = pick();
      return c.flag() ? xgrad::unsqueeze(x, c.axes()) : xgrad::squeeze(x, c.axes());
    }
    case 12: {
      const E x = pick();
      return xgrad::broadcast_to(x, c.shape());
    }
    case 13: {
      const E x = pick(), i = pick();
      return xgrad::scatter_add_rows(x, i, pick());
    }
    case 14: {
      const E x = pick();
      const Dim axis = c.axis(), begin = c.in(-5, 5);
      return xgrad::slice(x, axis, begin, c.in(-5, 5));
    }
    case 15: {
      const E x = pick(), ref = pick();
      const Dim axis = c.axis();
      return xgrad::pad_like(x, ref, axis, c.in(-2, 4));
    }
    case 16: {
      std::vector<E> xs(1 + c.byte() % 3);
      for (E& x : xs) x = pick();
      return xgrad::concatenate(xs, c.axis());
    }
    case 17: {
      const E x = pick(), w = pick();
      xgrad::Conv2dOptions o;
      o.stride = c.pair(0, 2);
      o.padding = c.pair(-1, 2);
      o.dilation = c.pair(0, 2);
      return xgrad::conv2d(x, w, o);
    }
    case 18: {
      const E x = pick();
      const auto window = c.pair(0, 3);
      xgrad::Pool2dOptions o;
      o.stride = c.pair(-1, 2);
      o.padding = c.pair(-1, 2);
      o.count_include_pad = c.flag();
      return c.flag() ? xgrad::max_pool2d(x, window, o) : xgrad::avg_pool2d(x, window, o);
    }
    default:
      // A constant: a scalar, or an array of whole numbers (labels, indices).
      if (c.flag()) return g.scalar(c.value());
      return g.constant(array(c, extents(c, 2), true));
  }
}

void run_case(Choices& c) {
  xgrad::Graph<double> g;
  std::vector<E> pool, params;
  for (int k = 0, n = c.in(1, 3); k < n; ++k) {
    params.push_back(g.parameter("p" + std::to_string(k), array(c, extents(c, 4), false)));
    pool.push_back(params.back());
  }
  // An input of open batch extent, run with two batch sizes.
  auto row = extents(c, 3);
  Shape in_shape{xgrad::open};
  for (auto d : row) in_shape.push_back(static_cast<Dim>(d));
  const E x = g.input("x", in_shape);
  pool.push_back(x);
  std::vector<xt::xarray<double>> batches;
  for (int k = 0; k < 2; ++k) {
    std::vector<std::size_t> s{static_cast<std::size_t>(c.in(0, 4))};
    s.insert(s.end(), row.begin(), row.end());
    batches.push_back(array(c, s, false));
  }
  const std::size_t first_op = pool.size();
  for (int k = 0; k < 24 && !c.done(); ++k) {
    try {
      const E e = build(c, g, pool);
      if (small(e)) pool.push_back(e);
    } catch (const xgrad::Error&) {
      // Refused at build time, as it may be: the next op is built from the same pool.
    }
  }
  if (pool.size() == first_op) return;
  std::vector<E> outs(pool.begin() + static_cast<std::ptrdiff_t>(first_op), pool.end());
  if (outs.size() > 3) outs.erase(outs.begin(), outs.end() - 3);
  xgrad::CompileOptions opts;
  opts.check_finite = c.flag();

  xgrad_fuzz::expect_only_xgrad_errors([&] {
    xgrad::Function<double> f(outs, opts);
    for (const auto& b : batches) f.run({{x, b}});
  });
  xgrad_fuzz::expect_only_xgrad_errors([&] {
    E y = pool.back();
    if (y.rank() != 0) y = xgrad::sum(y);
    std::vector<E> wrt = params;
    wrt.push_back(x);
    std::vector<E> grads = xgrad::grad(y, wrt, {.allow_unconnected = true});
    if (c.flag()) {
      // Second order: the gradient of the first parameter's gradient.
      const auto g2 = xgrad::grad(xgrad::sum(grads[0]), wrt, {.allow_unconnected = true});
      grads.insert(grads.end(), g2.begin(), g2.end());
    }
    grads.push_back(y);
    xgrad::Function<double> f(grads, opts);
    for (const auto& b : batches) f.run({{x, b}});
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Choices c(data, size);
  xgrad_fuzz::expect_only_xgrad_errors([&] { run_case(c); });
  return 0;
}
