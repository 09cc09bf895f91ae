// Convolution and pooling kernels over NCHW arrays: im2col + BLAS gemm for convolutions
// and their two adjoints, window loops for pooling. Internal to src/.
#pragma once

#include <cstddef>

namespace xgrad::kernels {

/// The extents of one 2-d convolution or pooling: batch n, channels c (in) and o (out),
/// input h x w, window kh x kw, output oh x ow, stride, zero padding and dilation.
struct ConvGeometry {
  std::size_t n = 0, c = 0, h = 0, w = 0, o = 0, kh = 0, kw = 0, oh = 0, ow = 0;
  std::size_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
};

/// y (n, o, oh, ow) = x (n, c, h, w) correlated with w (o, c, kh, kw).
template <class T>
void conv2d(const T* x, const T* w, T* y, const ConvGeometry& g);
/// dx (n, c, h, w) = the adjoint of conv2d in x applied to dy (n, o, oh, ow).
template <class T>
void conv2d_grad_input(const T* dy, const T* w, T* dx, const ConvGeometry& g);
/// dw (o, c, kh, kw) = the adjoint of conv2d in w applied to dy, for input x.
template <class T>
void conv2d_grad_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g);

/// y = v at the position of the largest k in each window (first one at ties; padding
/// never wins), for k and v of shape (n, c, h, w) and y (n, c, oh, ow).
template <class T>
void pool_select(const T* k, const T* v, T* y, const ConvGeometry& g);
/// dx (n, c, h, w) = dy added at the position of the largest k in each window: the
/// adjoint of pool_select in v.
template <class T>
void pool_scatter(const T* k, const T* dy, T* dx, const ConvGeometry& g);
/// y = the mean of each window; padding counts as zeros when include_pad, else the mean
/// is over the window's positions inside the input.
template <class T>
void avg_pool(const T* x, T* y, const ConvGeometry& g, bool include_pad);
/// dx = the adjoint of avg_pool applied to dy.
template <class T>
void avg_pool_grad(const T* dy, T* dx, const ConvGeometry& g, bool include_pad);

}  // namespace xgrad::kernels
