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

/// Output columns q whose input column q*s - p + j*d lies inside [0, w): [lo, hi).
struct Cols {
  std::size_t lo, hi;
};
inline Cols inside_cols(std::size_t j, const ConvGeometry& g) {
  const std::ptrdiff_t off =
      static_cast<std::ptrdiff_t>(j * g.dw) - static_cast<std::ptrdiff_t>(g.pw);
  const auto s = static_cast<std::ptrdiff_t>(g.sw), w = static_cast<std::ptrdiff_t>(g.w);
  const std::ptrdiff_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
  const std::ptrdiff_t hi = w - off <= 0 ? 0 : (w - off - 1) / s + 1;
  const auto ow = static_cast<std::ptrdiff_t>(g.ow);
  return {static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(lo, 0, ow)),
          static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(std::max(lo, hi), 0, ow))};
}

/// col (c*kh*kw, oh*ow) from one sample x (c, h, w). Bounds are settled per row of the
/// unrolled matrix, so the inner loop is a plain (strided) copy.
// Rows of a feature map are 8 to 30 elements: the copy loops below stay loops, since
// GCC would otherwise turn each into a call to memmove, which costs more than the copy.
template <class T>
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
void im2col(const T* __restrict x, T* __restrict col, const ConvGeometry& g) {
  for (std::size_t ch = 0; ch < g.c; ++ch) {
    const T* xc = x + ch * g.h * g.w;
    for (std::size_t i = 0; i < g.kh; ++i) {
      for (std::size_t j = 0; j < g.kw; ++j, col += g.oh * g.ow) {
        const Cols q = inside_cols(j, g);
        const std::ptrdiff_t x0 =
            static_cast<std::ptrdiff_t>(q.lo * g.sw + j * g.dw) - static_cast<std::ptrdiff_t>(g.pw);
        for (std::size_t r = 0; r < g.oh; ++r) {
          const std::ptrdiff_t y = in_pos(r, i, g.sh, g.ph, g.dh);
          T* dst = col + r * g.ow;
          if (y < 0 || y >= static_cast<std::ptrdiff_t>(g.h) || q.lo >= q.hi) {
            std::fill(dst, dst + g.ow, T(0));
            continue;
          }
          std::fill(dst, dst + q.lo, T(0));
          std::fill(dst + q.hi, dst + g.ow, T(0));
          const T* src = xc + static_cast<std::size_t>(y) * g.w + x0;
          if (g.sw == 1) {
            for (std::size_t k = 0, n = q.hi - q.lo; k < n; ++k) dst[q.lo + k] = src[k];
          } else {
            for (std::size_t k = 0, n = q.hi - q.lo; k < n; ++k) dst[q.lo + k] = src[k * g.sw];
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
        const Cols q = inside_cols(j, g);
        if (q.lo >= q.hi) continue;
        const std::ptrdiff_t x0 =
            static_cast<std::ptrdiff_t>(q.lo * g.sw + j * g.dw) - static_cast<std::ptrdiff_t>(g.pw);
        for (std::size_t r = 0; r < g.oh; ++r) {
          const std::ptrdiff_t y = in_pos(r, i, g.sh, g.ph, g.dh);
          if (y < 0 || y >= static_cast<std::ptrdiff_t>(g.h)) continue;
          T* __restrict dst = xc + static_cast<std::size_t>(y) * g.w + x0;
          const T* __restrict src = col + r * g.ow + q.lo;
          if (g.sw == 1) {
            for (std::size_t k = 0, n = q.hi - q.lo; k < n; ++k) dst[k] += src[k];
          } else {
            for (std::size_t k = 0, n = q.hi - q.lo; k < n; ++k) dst[k * g.sw] += src[k];
          }
        }
      }
    }
  }
}

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

namespace {
/// Index in the plane of the largest k of window (r, q) (the first at ties; NaN wins), or
/// the plane size for a window wholly in the padding.
template <class T>
std::size_t argmax(const T* k, const ConvGeometry& g, std::size_t r, std::size_t q) {
  // "v > best, or v is NaN and best is not": NaN wins, as in PyTorch; the first maximum
  // wins ties.
  auto wins = [](T v, T best) { return v > best || (v != v && best == best); };
  const Window w = window(g, r, q);
  if (w.y0 >= w.y1 || w.x0 >= w.x1) return g.h * g.w;
  std::size_t at = w.y0 * g.w + w.x0;
  if (w.y1 - w.y0 == 2 && w.x1 - w.x0 == 2) {  // the usual 2x2 window, unrolled
    std::size_t p = at;
    for (std::size_t c : {at + 1, at + g.w, at + g.w + 1}) {
      if (wins(k[c], k[p])) p = c;
    }
    return p;
  }
  T best = k[at];
  for (std::size_t i = w.y0; i < w.y1; ++i) {
    for (std::size_t j = w.x0; j < w.x1; ++j) {
      const std::size_t p = i * g.w + j;
      if (wins(k[p], best)) {
        best = k[p];
        at = p;
      }
    }
  }
  return at;
}
}  // namespace

/// Calls f(out, at) with the plane index `at` of each window's first maximum of k, for
/// every window of every plane in order. Without padding every window lies inside the
/// input and the 2x2 case needs no clipping at all.
template <class T, class F>
void for_each_argmax(const T* k, const ConvGeometry& g, F&& f) {
  const std::size_t plane = g.h * g.w;
  auto wins = [](T v, T best) { return v > best || (v != v && best == best); };
  const bool dense2x2 = g.kh == 2 && g.kw == 2 && g.ph == 0 && g.pw == 0;
  for (std::size_t p = 0; p < g.n * g.c; ++p, k += plane) {
    for (std::size_t r = 0; r < g.oh; ++r) {
      if (dense2x2) {
        const std::size_t row = r * g.sh * g.w;
        for (std::size_t q = 0; q < g.ow; ++q) {
          const std::size_t a = row + q * g.sw;
          std::size_t at = wins(k[a + 1], k[a]) ? a + 1 : a;
          if (wins(k[a + g.w], k[at])) at = a + g.w;
          if (wins(k[a + g.w + 1], k[at])) at = a + g.w + 1;
          f(p, r * g.ow + q, at);
        }
        continue;
      }
      for (std::size_t q = 0; q < g.ow; ++q) f(p, r * g.ow + q, argmax(k, g, r, q));
    }
  }
}

template <class T>
void pool_select(const T* k, const T* v, T* y, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w, out = g.oh * g.ow;
  for_each_argmax(k, g, [&](std::size_t p, std::size_t o, std::size_t at) {
    y[p * out + o] = at < plane ? v[p * plane + at] : T(0);
  });
}

template <class T>
void pool_scatter(const T* k, const T* dy, T* dx, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w, out = g.oh * g.ow;
  std::fill(dx, dx + g.n * g.c * plane, T(0));
  for_each_argmax(k, g, [&](std::size_t p, std::size_t o, std::size_t at) {
    if (at < plane) dx[p * plane + at] += dy[p * out + o];
  });
}

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
