/// @file ops/conv.hpp
/// @brief Convolution and pooling over NCHW tensors (batch, channels, height, width).
#pragma once

#include <array>

#include "xgrad/graph.hpp"
#include "xgrad/ops/table.hpp"

namespace xgrad {

/// Geometry of conv2d: per axis (height, width) stride, zero padding and dilation.
struct Conv2dOptions {
  std::array<Dim, 2> stride{1, 1};    ///< Step between windows (>= 1).
  std::array<Dim, 2> padding{0, 0};   ///< Zeros added on each side (>= 0).
  std::array<Dim, 2> dilation{1, 1};  ///< Spacing of a window's taps (>= 1).
};

/// Geometry of the pooling ops: window, stride (0: the window, as in PyTorch) and padding
/// (at most half the window).
struct Pool2dOptions {
  std::array<Dim, 2> stride{0, 0};   ///< Step between windows; 0 takes the window's extent.
  std::array<Dim, 2> padding{0, 0};  ///< Padding on each side.
  /// avg_pool2d: padded positions count as zeros in the mean (PyTorch's default).
  bool count_include_pad = true;
};

/// The convolution and pooling ops, one row each: X(name, (parameters)), expanded here
/// into declarations and in src/ops/conv.cpp into explicit instantiations.
#define XGRAD_CONV_OPS(X)                                                                  \
  /** 2-d cross-correlation (what deep-learning libraries call convolution) of x (n, c, h, \
      w) with weights w (o, c, kh, kw): y (n, o, oh, ow), oh = (h + 2 pad - dil (kh - 1) - \
      1) / stride + 1. Its gradients are convolutions again (conv_transpose2d for x, a     \
      correlation of x with the output gradient for w), so it differentiates any number of \
      times. Runs as im2col + BLAS gemm. */                                                \
  X(conv2d, (Expr<T> x, Expr<T> w, Conv2dOptions options = {}))                            \
  /** conv2d(x, w) plus b (o) added to every position of output channel o, in the same     \
      pass over the output (nn::Conv2d's form); b's gradient sums each channel of the      \
      output gradient. */                                                                  \
  X(conv2d_bias, (Expr<T> x, Expr<T> w, Expr<T> b, Conv2dOptions options = {}))            \
  /** The largest value of each kh x kw window of x (n, c, h, w); the gradient flows to    \
      the first maximum of each window. */                                                 \
  X(max_pool2d, (Expr<T> x, std::array<Dim, 2> window, Pool2dOptions options = {}))        \
  /** The mean of each kh x kw window of x (n, c, h, w). */                                \
  X(avg_pool2d, (Expr<T> x, std::array<Dim, 2> window, Pool2dOptions options = {}))

/// @name Convolution and pooling
/// @{
XGRAD_CONV_OPS(XGRAD_DETAIL_DECLARE)
/// @}

}  // namespace xgrad
