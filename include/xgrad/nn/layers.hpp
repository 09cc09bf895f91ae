/// @file layers.hpp
/// @brief Layers: Linear, Flatten, Dropout, activation layers (ReLU, LeakyReLU, GELU, Tanh,
/// Sigmoid), and Sequential.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "xgrad/nn/module.hpp"
#include "xgrad/ops/elementwise.hpp"

namespace xgrad::nn {

/// Options of Linear.
struct LinearOptions {
  /// Add a bias vector.
  bool bias = true;
  /// Seed of the initial weights and bias; none: the next seeds of nn::manual_seed's stream.
  std::optional<std::uint64_t> seed = std::nullopt;
};

/// y = x @ weight^T + bias, for x of shape (..., in) (usually (batch, in)). weight has
/// shape (out, in) and bias (out), as in PyTorch, so state dictionaries port either way;
/// both start as LibTorch does: kaiming_uniform(a = sqrt(5)) and uniform in
/// +-1/sqrt(in).
template <class T>
class Linear : public Module<T> {
 public:
  /// A layer from `in` to `out` features whose parameters live in g.
  Linear(Graph<T>& g, std::size_t in, std::size_t out, LinearOptions options = {});
  /// x @ weight^T + bias.
  Expr<T> forward(Expr<T> x) override;
  /// The (out, in) weight node.
  Expr<T> weight() const { return weight_; }
  /// The (out) bias node (invalid without a bias).
  Expr<T> bias() const { return bias_; }
  /// Input features.
  std::size_t in_features() const { return in_; }
  /// Output features.
  std::size_t out_features() const { return out_; }

 private:
  std::size_t in_, out_;
  Expr<T> weight_, bias_;
};

/// Merges the axes from start_dim on into one: (n, c, h, w) -> (n, c*h*w) by default. The
/// merged extents must be known when the graph is built.
template <class T>
class Flatten : public Module<T> {
 public:
  /// A flatten layer; start_dim may count from the end (negative).
  explicit Flatten(Graph<T>& g, Dim start_dim = 1) : Module<T>(g), start_(start_dim) {}
  /// The reshaped x.
  Expr<T> forward(Expr<T> x) override;

 private:
  Dim start_;
};

/// Inverted dropout (xgrad::dropout) in training mode, the identity in evaluation mode.
///
/// The layer keeps a 0-d buffer "step", starting at 0, that selects each run's mask: a
/// training-mode forward() returns dropout(x, p, seed, step) and registers the update
/// step = wrapping_increment(step), so a Function compiled with Module::updates() draws a
/// new mask every run, and a run is repeated exactly from the seed and the saved step.
/// The counter wraps to 0 after 2^24 runs (see wrapping_increment), where masks repeat.
/// Each distinct node the layer is applied to gets a mask stream of its own (the first
/// from `seed`, the next ones from seeds derived from it in order of first use), so one
/// Dropout used at several places drops independently there.
template <class T>
class Dropout : public Module<T> {
 public:
  /// Drops elements with probability p, in [0, 1) (ValueError otherwise). Without a seed,
  /// the next seed of nn::manual_seed's stream.
  explicit Dropout(Graph<T>& g, double p = 0.5, std::optional<std::uint64_t> seed = std::nullopt);
  /// dropout(x) in training mode (registering the step's update), x in evaluation mode
  /// or when p is 0.
  Expr<T> forward(Expr<T> x) override;
  /// The 0-d step buffer.
  Expr<T> step() const { return step_; }
  /// The drop probability.
  double p() const { return p_; }
  /// The seed of the first mask stream.
  std::uint64_t seed() const { return seed_; }

 private:
  double p_;
  std::uint64_t seed_;
  Expr<T> step_;
  std::vector<NodeId> inputs_;  // nodes seen in training mode, in order of first use
};

/// A layer applying a function of one node, without parameters: the activation layers.
template <class T>
class Lambda : public Module<T> {
 public:
  /// A layer computing f(x).
  Lambda(Graph<T>& g, Expr<T> (*f)(Expr<T>)) : Module<T>(g), f_(f) {}
  /// f(x).
  Expr<T> forward(Expr<T> x) override { return f_(x); }

 private:
  Expr<T> (*f_)(Expr<T>);
};

/// relu(x) as a layer.
template <class T>
class ReLU : public Lambda<T> {
 public:
  /// A ReLU layer.
  explicit ReLU(Graph<T>& g);
};
/// tanh(x) as a layer.
template <class T>
class Tanh : public Lambda<T> {
 public:
  /// A tanh layer.
  explicit Tanh(Graph<T>& g);
};
/// sigmoid(x) as a layer.
template <class T>
class Sigmoid : public Lambda<T> {
 public:
  /// A sigmoid layer.
  explicit Sigmoid(Graph<T>& g);
};

/// leaky_relu(x, negative_slope) as a layer: x where x >= 0, negative_slope * x elsewhere.
template <class T>
class LeakyReLU : public Module<T> {
 public:
  /// A LeakyReLU layer; the slope (PyTorch's default 0.01) must be finite and non-negative
  /// (ValueError otherwise), as for xgrad::leaky_relu.
  explicit LeakyReLU(Graph<T>& g, double negative_slope = 0.01);
  /// leaky_relu(x, negative_slope).
  Expr<T> forward(Expr<T> x) override;
  /// The slope for x < 0.
  double negative_slope() const { return slope_; }

 private:
  double slope_;
};

/// gelu(x, approximate) as a layer: x * Phi(x) exactly, or in the tanh form.
template <class T>
class GELU : public Module<T> {
 public:
  /// A GELU layer, exact by default as in PyTorch.
  explicit GELU(Graph<T>& g, GeluApproximate approximate = GeluApproximate::none)
      : Module<T>(g), approximate_(approximate) {}
  /// gelu(x, approximate).
  Expr<T> forward(Expr<T> x) override;
  /// Which form the layer computes.
  GeluApproximate approximate() const { return approximate_; }

 private:
  GeluApproximate approximate_;
};

/// Modules applied one after another; children are named "0", "1", ... as in PyTorch.
/// @code
/// xgrad::nn::Sequential<float> model(g);
/// model.add<xgrad::nn::Linear>(784, 256);
/// model.add<xgrad::nn::ReLU>();
/// model.add<xgrad::nn::Linear>(256, 10);
/// auto logits = model(x);
/// @endcode
template <class T>
class Sequential : public Module<T> {
 public:
  /// An empty sequence whose layers live in g.
  explicit Sequential(Graph<T>& g) : Module<T>(g) {}
  /// Appends a layer M<T>(graph, args...) and returns it.
  template <template <class> class M, class... A>
  M<T>& add(A&&... args) {
    return append(std::make_unique<M<T>>(this->graph(), std::forward<A>(args)...));
  }
  /// Appends a layer of a user class M(graph, args...) and returns it.
  template <class M, class... A>
  M& add(A&&... args) {
    return append(std::make_unique<M>(this->graph(), std::forward<A>(args)...));
  }
  /// The layers in turn.
  Expr<T> forward(Expr<T> x) override;
  /// Number of layers.
  std::size_t size() const { return layers_.size(); }
  /// Layer i (bounds-checked).
  Module<T>& operator[](std::size_t i) const;

 private:
  template <class M>
  M& append(std::unique_ptr<M> m) {
    M& ref = *m;
    this->register_module(std::to_string(layers_.size()), ref);
    layers_.push_back(std::move(m));
    return ref;
  }
  std::vector<std::unique_ptr<Module<T>>> layers_;
};

/// @cond INTERNAL
#define XGRAD_NN_EXTERN(T)            \
  extern template class Linear<T>;    \
  extern template class Flatten<T>;   \
  extern template class ReLU<T>;      \
  extern template class Tanh<T>;      \
  extern template class Sigmoid<T>;   \
  extern template class LeakyReLU<T>; \
  extern template class GELU<T>;      \
  extern template class Sequential<T>;
XGRAD_NN_EXTERN(float)
XGRAD_NN_EXTERN(double)
#undef XGRAD_NN_EXTERN
// Apart, in a pair: docs/Doxyfile.in's filter blanks each `extern template` line through
// the next line holding a semicolon, so an odd run of one-line declarations would swallow
// the end of this conditional section.
extern template class Dropout<float>;
extern template class Dropout<double>;
/// @endcond

}  // namespace xgrad::nn
