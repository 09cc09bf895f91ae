// Convolution and pooling kernels over NCHW arrays: im2col + BLAS gemm for convolutions
// and their two adjoints (conv.cpp), window loops for pooling (pool.cpp). Internal to src/.
#pragma once

#include <algorithm>
#include <cstddef>

#include "../exec/thread_pool.hpp"

namespace xgrad::kernels {

/// The extents of one 2-d convolution or pooling: batch n, channels c (in) and o (out),
/// input h x w, window kh x kw, output oh x ow, stride, zero padding and dilation.
struct ConvGeometry {
  std::size_t n = 0, c = 0, h = 0, w = 0, o = 0, kh = 0, kw = 0, oh = 0, ow = 0;
  std::size_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
};

/// y (n, o, oh, ow) = x (n, c, h, w) correlated with w (o, c, kh, kw), plus b[o] on
/// output channel o when b is not null.
template <class T>
void conv2d(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g);
/// db (o) = dy (n, o, oh, ow) summed over samples and positions: the adjoint of the bias.
template <class T>
void conv2d_grad_bias(const T* dy, T* db, const ConvGeometry& g);
/// dw (o, c, kh, kw) = the adjoint of conv2d in w applied to dy, for input x.
template <class T>
void conv2d_grad_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g);
/// dx (n, c, h, w) = the adjoint of conv2d in x applied to dy (n, o, oh, ow): col2im of
/// w^T @ dy.
template <class T>
void conv2d_grad_input(const T* dy, const T* w, T* dx, const ConvGeometry& g);

/// idx (n, c, oh, ow) = the offset i*kw + j of the largest k in each window (the first at
/// ties; NaN wins, as in PyTorch; padding never wins), or -1 for a window wholly in the
/// padding. Stored as T: offsets within a window are small integers, exact in float.
template <class T>
void pool_argmax(const T* k, T* idx, const ConvGeometry& g);
/// y (n, c, oh, ow) = v (n, c, h, w) at the offsets idx of each window (0 where -1).
template <class T>
void pool_gather(const T* idx, const T* v, T* y, const ConvGeometry& g);
/// dx (n, c, h, w) = dy added at the offsets idx of each window: pool_gather's adjoint.
template <class T>
void pool_scatter(const T* idx, const T* dy, T* dx, const ConvGeometry& g);
/// y = the mean of each window; padding counts as zeros when include_pad, else the mean
/// is over the window's positions inside the input.
template <class T>
void avg_pool(const T* x, T* y, const ConvGeometry& g, bool include_pad);
/// dx = the adjoint of avg_pool applied to dy.
template <class T>
void avg_pool_grad(const T* dy, T* dx, const ConvGeometry& g, bool include_pad);

namespace detail {
/// Calls f(sub, first) on parts of the batch: `sub` is g for images [first, first + sub.n).
/// The parts run concurrently when each has at least exec::kMinPartWork of `image_work` (the
/// operations per image); for kernels whose every image is computed alone, so the result
/// does not depend on the partition.
template <class F>
void by_images(const ConvGeometry& g, double image_work, const F& f) {
  exec::parallel_for_work(g.n, image_work, exec::kMinPartWork,
                          [&](std::size_t b, std::size_t e, std::size_t) {
                            ConvGeometry sub = g;
                            sub.n = e - b;
                            f(sub, b);
                          });
}

/// Input row of output row r at window row i (may fall into the padding: < 0 or >= h).
inline std::ptrdiff_t in_pos(std::size_t r, std::size_t i, std::size_t s, std::size_t p,
                             std::size_t d) {
  return static_cast<std::ptrdiff_t>(r * s + i * d) - static_cast<std::ptrdiff_t>(p);
}
}  // namespace detail

}  // namespace xgrad::kernels
