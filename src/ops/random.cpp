// Dropout from a stateless hash. A counter-based hash of (seed, step, index) needs no
// generator state in the graph or the plan, so a run depends on nothing but its operands
// and attributes: repeatable, resumable, and the same whatever order elements are visited.
#include "xgrad/ops/random.hpp"

#include <charconv>
#include <cmath>

#include "common.hpp"

namespace xgrad {
namespace detail {
namespace {

constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ULL;  // splitmix64's increment

/// splitmix64's output function: a bijection of 64-bit words that mixes every input bit
/// into every output bit.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Attributes: real = p, ints = {seed's bits}.
std::uint64_t seed_of(const Attrs& a) { return static_cast<std::uint64_t>(a.ints[0]); }

template <class T>
Expr<T> dropout_node(Expr<T> x, Expr<T> step, const Attrs& a);

/// y = x * mask / (1 - p); operand 1 is the 0-d step.
template <class T>
class DropoutOp final : public Op<T> {
 public:
  std::string_view name() const override { return "dropout"; }
  Shape infer_shape(std::span<const Shape> in, const Attrs&) const override {
    if (!in[1].empty()) {
      throw std::invalid_argument("the step must be 0-d, got " + shape_str(in[1]));
    }
    return in[0];
  }
  void forward(std::span<const ConstTensor<T>> in, Tensor<T> out, const Attrs& a) const override {
    const double s = static_cast<double>(in[1].data[0]);
    if (!std::isfinite(s) || std::fabs(s) >= 0x1p62) {
      throw ValueError("dropout: the step's value " + std::to_string(s) +
                       " is not a representable integer");
    }
    // The run's stream: splitmix64 started from a key that mixes seed and step, so element
    // i's word is the stream's i-th output, computed directly.
    const auto step = static_cast<std::uint64_t>(std::llround(s));
    const std::uint64_t key = mix64(seed_of(a) ^ mix64(step * kGamma + kGamma));
    // u = (h >> 11) 2^-53 >= p, in integers (p 2^53 is exact in double).
    const auto threshold = static_cast<std::uint64_t>(std::ceil(a.real * 0x1p53));
    const T scale = static_cast<T>(1 / (1 - a.real));
    const T* x = in[0].data;
    for (std::size_t i = 0; i < out.size; ++i) {
      const bool keep = (mix64(key + (i + 1) * kGamma) >> 11) >= threshold;
      out.data[i] = keep ? x[i] * scale : T(0);
    }
  }
  void backward(const Node<T>& n, Expr<T> y, Expr<T> g, std::span<const bool> wanted,
                std::span<Expr<T>> gr) const override {
    // The mask is piecewise constant in the step: no gradient flows to it.
    if (wanted[0]) gr[0] = dropout_node(g, arg(y, n, 1), n.attrs);
  }
  std::string format(std::span<const std::string> args, const Attrs& a) const override {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, a.real);
    return "dropout(" + args[0] + ", p=" + std::string(buf, r.ptr) +
           ", seed=" + std::to_string(seed_of(a)) + ", step=" + args[1] + ")";
  }
};

template <class T>
Expr<T> dropout_node(Expr<T> x, Expr<T> step, const Attrs& a) {
  return x.graph().apply(instance<DropoutOp<T>>(), {x.id(), step.id()}, a);
}

}  // namespace
}  // namespace detail

template <class T>
Expr<T> dropout(Expr<T> x, double p, std::uint64_t seed, Expr<T> step) {
  detail::same_graph("dropout", x, step);
  if (!(p >= 0 && p < 1)) {
    throw ValueError("dropout: p " + std::to_string(p) + " for " + x.graph().describe(x.id()) +
                     " must lie in [0, 1)");
  }
  if (p == 0) return x;
  Attrs a;
  a.real = p;
  a.ints = {static_cast<Dim>(seed)};
  return detail::dropout_node(x, step, a);
}

template Expr<float> dropout(Expr<float>, double, std::uint64_t, Expr<float>);
template Expr<double> dropout(Expr<double>, double, std::uint64_t, Expr<double>);

}  // namespace xgrad
