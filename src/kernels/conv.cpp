// Convolutions as im2col + gemm: each sample's receptive fields are unrolled into a
// (c*kh*kw) x (oh*ow) matrix, so the arithmetic runs in one BLAS product per sample.
// The unrolled matrix lives in a per-thread buffer that grows to the largest shape seen,
// so steady-state runs allocate nothing.
#include "conv.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>
#include <xtensor-blas/xblas.hpp>

namespace xgrad::kernels {
namespace {

using I = xt::blas_index_t;

/// C (m x n) = op(A) @ op(B) + beta C, row-major.
template <class T>
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* A, const T* B,
          T beta, T* C) {
  using cxxblas::StorageOrder;
  using cxxblas::Transpose;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == T(0)) std::fill(C, C + m * n, T(0));
    return;
  }
  const I lda = static_cast<I>(ta ? m : k), ldb = static_cast<I>(tb ? k : n);
  cxxblas::gemm<I>(StorageOrder::RowMajor, ta ? Transpose::Trans : Transpose::NoTrans,
                   tb ? Transpose::Trans : Transpose::NoTrans, static_cast<I>(m), static_cast<I>(n),
                   static_cast<I>(k), T(1), A, lda, B, ldb, beta, C, static_cast<I>(n));
}

template <class T>
T* scratch(std::size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

/// True when a sample's unrolled matrix is the sample itself (1x1 window, stride 1, no
/// padding): no copy needed.
bool direct(const ConvGeometry& g) {
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

/// Input row of output row r at window row i (may fall into the padding: < 0 or >= h).
inline std::ptrdiff_t in_pos(std::size_t r, std::size_t i, std::size_t s, std::size_t p,
                             std::size_t d) {
  return static_cast<std::ptrdiff_t>(r * s + i * d) - static_cast<std::ptrdiff_t>(p);
}

/// col (c*kh*kw, oh*ow) from one sample x (c, h, w).
template <class T>
void im2col(const T* x, T* col, const ConvGeometry& g) {
  for (std::size_t ch = 0; ch < g.c; ++ch) {
    const T* xc = x + ch * g.h * g.w;
    for (std::size_t i = 0; i < g.kh; ++i) {
      for (std::size_t j = 0; j < g.kw; ++j, col += g.oh * g.ow) {
        for (std::size_t r = 0; r < g.oh; ++r) {
          const std::ptrdiff_t y = in_pos(r, i, g.sh, g.ph, g.dh);
          T* dst = col + r * g.ow;
          if (y < 0 || y >= static_cast<std::ptrdiff_t>(g.h)) {
            std::fill(dst, dst + g.ow, T(0));
            continue;
          }
          const T* row = xc + static_cast<std::size_t>(y) * g.w;
          for (std::size_t q = 0; q < g.ow; ++q) {
            const std::ptrdiff_t xx = in_pos(q, j, g.sw, g.pw, g.dw);
            dst[q] = (xx < 0 || xx >= static_cast<std::ptrdiff_t>(g.w))
                         ? T(0)
                         : row[static_cast<std::size_t>(xx)];
          }
        }
      }
    }
  }
}

/// x (c, h, w) += the columns of col folded back: the adjoint of im2col.
template <class T>
void col2im(const T* col, T* x, const ConvGeometry& g) {
  for (std::size_t ch = 0; ch < g.c; ++ch) {
    T* xc = x + ch * g.h * g.w;
    for (std::size_t i = 0; i < g.kh; ++i) {
      for (std::size_t j = 0; j < g.kw; ++j, col += g.oh * g.ow) {
        for (std::size_t r = 0; r < g.oh; ++r) {
          const std::ptrdiff_t y = in_pos(r, i, g.sh, g.ph, g.dh);
          if (y < 0 || y >= static_cast<std::ptrdiff_t>(g.h)) continue;
          T* row = xc + static_cast<std::size_t>(y) * g.w;
          const T* src = col + r * g.ow;
          for (std::size_t q = 0; q < g.ow; ++q) {
            const std::ptrdiff_t xx = in_pos(q, j, g.sw, g.pw, g.dw);
            if (xx >= 0 && xx < static_cast<std::ptrdiff_t>(g.w))
              row[static_cast<std::size_t>(xx)] += src[q];
          }
        }
      }
    }
  }
}

/// Calls f(out_index, in_index) for every input position of every window of one
/// channel plane, window by window.
template <class F>
void windows(const ConvGeometry& g, F&& f) {
  for (std::size_t r = 0; r < g.oh; ++r) {
    for (std::size_t q = 0; q < g.ow; ++q) {
      f.begin();
      for (std::size_t i = 0; i < g.kh; ++i) {
        const std::ptrdiff_t y = in_pos(r, i, g.sh, g.ph, g.dh);
        for (std::size_t j = 0; j < g.kw; ++j) {
          const std::ptrdiff_t x = in_pos(q, j, g.sw, g.pw, g.dw);
          const bool inside = y >= 0 && y < static_cast<std::ptrdiff_t>(g.h) && x >= 0 &&
                              x < static_cast<std::ptrdiff_t>(g.w);
          f.visit(inside,
                  inside ? static_cast<std::size_t>(y) * g.w + static_cast<std::size_t>(x) : 0);
        }
      }
      f.end(r * g.ow + q);
    }
  }
}

/// Index in the plane of the largest k of each window (first at ties, NaN wins), or the
/// plane size when the window lies wholly in the padding.
template <class T>
struct ArgMax {
  const T* k;
  std::size_t plane;
  T best{};
  std::size_t at = 0;
  bool any = false;
  void begin() {
    any = false;
    at = plane;
  }
  void visit(bool inside, std::size_t p) {
    if (!inside) return;
    const T v = k[p];
    if (!any || v > best || (std::isnan(v) && !std::isnan(best))) {
      best = v;
      at = p;
      any = true;
    }
  }
};

}  // namespace

template <class T>
void conv2d(const T* x, const T* w, T* y, const ConvGeometry& g) {
  const std::size_t ckk = g.c * g.kh * g.kw, ohw = g.oh * g.ow;
  T* col = direct(g) ? nullptr : scratch<T>(ckk * ohw);
  for (std::size_t s = 0; s < g.n; ++s) {
    const T* xs = x + s * g.c * g.h * g.w;
    if (col) im2col(xs, col, g);
    gemm<T>(false, false, g.o, ohw, ckk, w, col ? col : xs, T(0), y + s * g.o * ohw);
  }
}

template <class T>
void conv2d_grad_input(const T* dy, const T* w, T* dx, const ConvGeometry& g) {
  const std::size_t ckk = g.c * g.kh * g.kw, ohw = g.oh * g.ow, chw = g.c * g.h * g.w;
  if (direct(g)) {
    for (std::size_t s = 0; s < g.n; ++s)
      gemm<T>(true, false, ckk, ohw, g.o, w, dy + s * g.o * ohw, T(0), dx + s * chw);
    return;
  }
  std::fill(dx, dx + g.n * chw, T(0));
  T* col = scratch<T>(ckk * ohw);
  for (std::size_t s = 0; s < g.n; ++s) {
    gemm<T>(true, false, ckk, ohw, g.o, w, dy + s * g.o * ohw, T(0), col);
    col2im(col, dx + s * chw, g);
  }
}

template <class T>
void conv2d_grad_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
  const std::size_t ckk = g.c * g.kh * g.kw, ohw = g.oh * g.ow;
  std::fill(dw, dw + g.o * ckk, T(0));
  T* col = direct(g) ? nullptr : scratch<T>(ckk * ohw);
  for (std::size_t s = 0; s < g.n; ++s) {
    const T* xs = x + s * g.c * g.h * g.w;
    if (col) im2col(xs, col, g);
    gemm<T>(false, true, g.o, ckk, ohw, dy + s * g.o * ohw, col ? col : xs, T(1), dw);
  }
}

template <class T>
void pool_select(const T* k, const T* v, T* y, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w, out = g.oh * g.ow;
  for (std::size_t p = 0; p < g.n * g.c; ++p) {
    struct : ArgMax<T> {
      const T* v;
      T* y;
      void end(std::size_t o) { y[o] = this->at < this->plane ? v[this->at] : T(0); }
    } f;
    f.k = k + p * plane;
    f.plane = plane;
    f.v = v + p * plane;
    f.y = y + p * out;
    windows(g, f);
  }
}

template <class T>
void pool_scatter(const T* k, const T* dy, T* dx, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w, out = g.oh * g.ow;
  std::fill(dx, dx + g.n * g.c * plane, T(0));
  for (std::size_t p = 0; p < g.n * g.c; ++p) {
    struct : ArgMax<T> {
      const T* dy;
      T* dx;
      void end(std::size_t o) {
        if (this->at < this->plane) dx[this->at] += dy[o];
      }
    } f;
    f.k = k + p * plane;
    f.plane = plane;
    f.dy = dy + p * out;
    f.dx = dx + p * plane;
    windows(g, f);
  }
}

namespace {
/// Positions of one window inside the input, and how many positions it has in all
/// (padding included).
struct Window {
  std::size_t y0, y1, x0, x1;  // the part inside the input, as [y0, y1) x [x0, x1) (dilation 1)
  std::size_t all;             // kh * kw
};
/// Pooling windows are dense (dilation 1), so the part of a window inside the input is a
/// rectangle.
Window window(const ConvGeometry& g, std::size_t r, std::size_t q) {
  auto clip = [](std::ptrdiff_t v, std::size_t hi) {
    return static_cast<std::size_t>(
        std::clamp<std::ptrdiff_t>(v, 0, static_cast<std::ptrdiff_t>(hi)));
  };
  const std::ptrdiff_t y = in_pos(r, 0, g.sh, g.ph, 1), x = in_pos(q, 0, g.sw, g.pw, 1);
  return {clip(y, g.h), clip(y + static_cast<std::ptrdiff_t>(g.kh), g.h), clip(x, g.w),
          clip(x + static_cast<std::ptrdiff_t>(g.kw), g.w), g.kh * g.kw};
}
}  // namespace

template <class T>
void avg_pool(const T* x, T* y, const ConvGeometry& g, bool include_pad) {
  const std::size_t plane = g.h * g.w;
  for (std::size_t p = 0; p < g.n * g.c; ++p, x += plane) {
    for (std::size_t r = 0; r < g.oh; ++r) {
      for (std::size_t q = 0; q < g.ow; ++q) {
        const Window w = window(g, r, q);
        T acc = 0;
        for (std::size_t i = w.y0; i < w.y1; ++i)
          for (std::size_t j = w.x0; j < w.x1; ++j) acc += x[i * g.w + j];
        const std::size_t count = include_pad ? w.all : (w.y1 - w.y0) * (w.x1 - w.x0);
        *y++ = count ? acc / static_cast<T>(count) : T(0);
      }
    }
  }
}

template <class T>
void avg_pool_grad(const T* dy, T* dx, const ConvGeometry& g, bool include_pad) {
  const std::size_t plane = g.h * g.w;
  std::fill(dx, dx + g.n * g.c * plane, T(0));
  for (std::size_t p = 0; p < g.n * g.c; ++p, dx += plane) {
    for (std::size_t r = 0; r < g.oh; ++r) {
      for (std::size_t q = 0; q < g.ow; ++q) {
        const Window w = window(g, r, q);
        const std::size_t count = include_pad ? w.all : (w.y1 - w.y0) * (w.x1 - w.x0);
        const T d = *dy++;
        if (!count) continue;
        const T share = d / static_cast<T>(count);
        for (std::size_t i = w.y0; i < w.y1; ++i)
          for (std::size_t j = w.x0; j < w.x1; ++j) dx[i * g.w + j] += share;
      }
    }
  }
}

#define XGRAD_INSTANTIATE(T)                                                     \
  template void conv2d(const T*, const T*, T*, const ConvGeometry&);             \
  template void conv2d_grad_input(const T*, const T*, T*, const ConvGeometry&);  \
  template void conv2d_grad_weight(const T*, const T*, T*, const ConvGeometry&); \
  template void pool_select(const T*, const T*, T*, const ConvGeometry&);        \
  template void pool_scatter(const T*, const T*, T*, const ConvGeometry&);       \
  template void avg_pool(const T*, T*, const ConvGeometry&, bool);               \
  template void avg_pool_grad(const T*, T*, const ConvGeometry&, bool);
XGRAD_INSTANTIATE(float)
XGRAD_INSTANTIATE(double)

}  // namespace xgrad::kernels
