/// @file nn/norm.hpp
/// @brief LayerNorm and Embedding layers.
#pragma once

#include <cstdint>
#include <optional>

#include "xgrad/nn/module.hpp"

namespace xgrad::nn {

/// layer_norm over the trailing axes given by `shape`, then * weight + bias (elementwise
/// affine, weight starting at 1 and bias at 0, as in PyTorch).
template <class T>
class LayerNorm : public Module<T> {
 public:
  /// Normalises the trailing axes of extents `shape`; affine adds weight and bias.
  LayerNorm(Graph<T>& g, Shape shape, double eps = 1e-5, bool affine = true);
  /// The normalised x.
  Expr<T> forward(Expr<T> x) override;

 private:
  Shape shape_;
  double eps_;
  Expr<T> weight_, bias_;
};

/// A table of `count` vectors of `dim` values looked up by integer index: forward takes a
/// 1-d node of indices (an int64 input, typically) and gives (len, dim). The table starts
/// normal(0, 1), as in PyTorch.
template <class T>
class Embedding : public Module<T> {
 public:
  /// A table of count x dim values.
  Embedding(Graph<T>& g, std::size_t count, std::size_t dim,
            std::optional<std::uint64_t> seed = std::nullopt);
  /// The rows of the table at the given indices.
  Expr<T> forward(Expr<T> indices) override;
  /// The (count, dim) table node.
  Expr<T> weight() const { return weight_; }

 private:
  Expr<T> weight_;
};

/// @cond INTERNAL
extern template class LayerNorm<float>;
extern template class LayerNorm<double>;
extern template class Embedding<float>;
extern template class Embedding<double>;
/// @endcond

}  // namespace xgrad::nn
