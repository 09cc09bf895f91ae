/// @file nn/norm.hpp
/// @brief Normalisation layers (LayerNorm, BatchNorm1d, BatchNorm2d) and Embedding.
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

/// Options of the batch normalisation layers (PyTorch's defaults).
struct BatchNormOptions {
  double eps = 1e-5;      ///< Added to the variance before the square root (> 0).
  double momentum = 0.1;  ///< Weight of the batch in the running averages, in [0, 1].
  bool affine = true;     ///< Multiply by weight and add bias, per channel.
};

/// Batch normalisation over channel axis 1, as PyTorch's BatchNorm layers: the shared
/// implementation of BatchNorm1d and BatchNorm2d.
///
/// State, with PyTorch's state_dict names: parameters "weight" (c, starting at 1) and
/// "bias" (c, 0) when affine; buffers "running_mean" (c, 0), "running_var" (c, 1) and
/// "num_batches_tracked" (0-d, 0; counted in T, wrapping at 2^24 as wrapping_increment).
///
/// Training mode normalises each channel with the batch's mean and biased variance over
/// the other axes, and registers the updates (see Module::updates())
/// running_mean <- (1 - momentum) running_mean + momentum mean and running_var <-
/// (1 - momentum) running_var + momentum var * n / (n - 1), the unbiased variance over
/// the n values per channel (n is read at run time when the batch is open; a run with
/// one value per channel takes 0 for that variance, and a static shape with one is a
/// ValueError). Evaluation mode normalises with the running statistics.
template <class T>
class BatchNorm : public Module<T> {
 public:
  /// The normalised x, times weight plus bias.
  Expr<T> forward(Expr<T> x) override;
  /// Number of channels c.
  std::size_t num_features() const { return channels_; }
  /// The (c) weight node (invalid without affine).
  Expr<T> weight() const { return weight_; }
  /// The (c) bias node (invalid without affine).
  Expr<T> bias() const { return bias_; }
  /// The (c) running mean buffer.
  Expr<T> running_mean() const { return mean_; }
  /// The (c) running (unbiased) variance buffer.
  Expr<T> running_var() const { return var_; }
  /// The 0-d count of training runs.
  Expr<T> num_batches_tracked() const { return count_; }

 protected:
  /// A layer over c channels for inputs of rank `rank` (or `rank2`, when nonzero), named
  /// `name` in errors.
  BatchNorm(Graph<T>& g, std::size_t channels, const BatchNormOptions& options, const char* name,
            std::size_t rank, std::size_t rank2 = 0);

 private:
  std::size_t channels_;
  BatchNormOptions o_;
  const char* name_;
  std::size_t rank_, rank2_;
  Expr<T> weight_, bias_, mean_, var_, count_;
};

/// Batch normalisation of (n, c) or (n, c, l) inputs (see BatchNorm).
template <class T>
class BatchNorm1d : public BatchNorm<T> {
 public:
  /// A layer over `channels` features.
  BatchNorm1d(Graph<T>& g, std::size_t channels, BatchNormOptions options = {})
      : BatchNorm<T>(g, channels, options, "nn::BatchNorm1d", 2, 3) {}
};

/// Batch normalisation of (n, c, h, w) inputs (see BatchNorm).
template <class T>
class BatchNorm2d : public BatchNorm<T> {
 public:
  /// A layer over `channels` channels.
  BatchNorm2d(Graph<T>& g, std::size_t channels, BatchNormOptions options = {})
      : BatchNorm<T>(g, channels, options, "nn::BatchNorm2d", 4) {}
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
extern template class BatchNorm<float>;
extern template class BatchNorm<double>;
extern template class Embedding<float>;
extern template class Embedding<double>;
/// @endcond

}  // namespace xgrad::nn
