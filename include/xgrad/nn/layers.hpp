/// @file layers.hpp
/// @brief Layers: Linear, Flatten, activation layers, and Sequential.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "xgrad/nn/module.hpp"

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
#define XGRAD_NN_EXTERN(T)          \
  extern template class Linear<T>;  \
  extern template class Flatten<T>; \
  extern template class ReLU<T>;    \
  extern template class Tanh<T>;    \
  extern template class Sigmoid<T>; \
  extern template class Sequential<T>;
XGRAD_NN_EXTERN(float)
XGRAD_NN_EXTERN(double)
#undef XGRAD_NN_EXTERN
/// @endcond

}  // namespace xgrad::nn
