/// @file nn/conv.hpp
/// @brief Convolution and pooling layers over NCHW inputs.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "xgrad/nn/module.hpp"
#include "xgrad/ops/conv.hpp"

namespace xgrad::nn {

/// Options of Conv2d: the op's geometry, a bias, and the initial values' seed.
struct Conv2dOptions {
  std::array<Dim, 2> stride{1, 1};    ///< Step between windows.
  std::array<Dim, 2> padding{0, 0};   ///< Zeros added on each side.
  std::array<Dim, 2> dilation{1, 1};  ///< Spacing of a window's taps.
  bool bias = true;                   ///< Add a bias per output channel.
  /// Seed of the initial weights and bias; none: the next seed of nn::manual_seed's stream.
  std::optional<std::uint64_t> seed = std::nullopt;
};

/// y = conv2d(x, weight) + bias for x (n, in_channels, h, w): weight (out, in, kh, kw)
/// and bias (out), initialised as LibTorch does (kaiming_uniform(a = sqrt(5)), bias
/// uniform in +-1/sqrt(fan_in)).
template <class T>
class Conv2d : public Module<T> {
 public:
  /// A layer from in_channels to out_channels with a kh x kw window.
  Conv2d(Graph<T>& g, std::size_t in_channels, std::size_t out_channels,
         std::array<std::size_t, 2> window, Conv2dOptions options = {});
  /// conv2d(x, weight) + bias.
  Expr<T> forward(Expr<T> x) override;
  /// The (out, in, kh, kw) weight node.
  Expr<T> weight() const { return weight_; }
  /// The (out) bias node (invalid without a bias).
  Expr<T> bias() const { return bias_; }

 private:
  xgrad::Conv2dOptions geometry_;
  Expr<T> weight_, bias_;
};

/// max_pool2d as a layer.
template <class T>
class MaxPool2d : public Module<T> {
 public:
  /// Pools over kh x kw windows (the stride defaults to the window).
  MaxPool2d(Graph<T>& g, std::array<Dim, 2> window, Pool2dOptions options = {})
      : Module<T>(g), window_(window), options_(options) {}
  /// max_pool2d(x, window).
  Expr<T> forward(Expr<T> x) override { return max_pool2d(x, window_, options_); }

 private:
  std::array<Dim, 2> window_;
  Pool2dOptions options_;
};

/// avg_pool2d as a layer.
template <class T>
class AvgPool2d : public Module<T> {
 public:
  /// Averages over kh x kw windows (the stride defaults to the window).
  AvgPool2d(Graph<T>& g, std::array<Dim, 2> window, Pool2dOptions options = {})
      : Module<T>(g), window_(window), options_(options) {}
  /// avg_pool2d(x, window).
  Expr<T> forward(Expr<T> x) override { return avg_pool2d(x, window_, options_); }

 private:
  std::array<Dim, 2> window_;
  Pool2dOptions options_;
};

/// @cond INTERNAL
extern template class Conv2d<float>;
extern template class Conv2d<double>;
extern template class MaxPool2d<float>;
extern template class MaxPool2d<double>;
extern template class AvgPool2d<float>;
extern template class AvgPool2d<double>;
/// @endcond

}  // namespace xgrad::nn
