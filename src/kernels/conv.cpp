// Convolutions as im2col + gemm: each sample's receptive fields are unrolled into a
// (c*kh*kw) x (oh*ow) matrix, so the arithmetic runs in one BLAS product per sample.
// The unrolled matrix lives in a per-thread buffer that grows to the largest shape seen,
// so steady-state runs allocate nothing. Per sample, not per batch: a sample's matrix
// stays in cache between its unrolling and its product, where a whole batch's would not
// (docs/benchmarks.md, workload 6), so the convolution and its weight gradient each
// unroll the input again rather than share one batch-sized matrix.
#include "conv.hpp"

#include <algorithm>
#include <cstring>
#include <vector>
#include <xtensor-blas/xblas.hpp>

#include "loops.hpp"

// Rows of a feature map are 8 to 30 elements: the copy loops below stay loops, since
// GCC would otherwise turn each into a call to memmove, which costs more than the copy.
#if defined(__GNUC__) && !defined(__clang__)
#define XGRAD_SHORT_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define XGRAD_SHORT_LOOPS
#endif

namespace xgrad::kernels {
namespace {

using I = xt::blas_index_t;
using detail::in_pos;

/// C (m x n, leading dimension ldc) = op(A) @ op(B) + beta C, row-major.
template <class T>
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* A,
          std::size_t lda, const T* B, std::size_t ldb, T beta, T* C, std::size_t ldc) {
  using cxxblas::StorageOrder;
  using cxxblas::Transpose;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == T(0))
      for (std::size_t r = 0; r < m; ++r) std::fill(C + r * ldc, C + r * ldc + n, T(0));
    return;
  }
  cxxblas::gemm<I>(StorageOrder::RowMajor, ta ? Transpose::Trans : Transpose::NoTrans,
                   tb ? Transpose::Trans : Transpose::NoTrans, static_cast<I>(m), static_cast<I>(n),
                   static_cast<I>(k), T(1), A, static_cast<I>(lda), B, static_cast<I>(ldb), beta, C,
                   static_cast<I>(ldc));
}

template <class T>
T* scratch(std::size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

/// Stride 1, no padding, no dilation: every tap row of the unrolled matrix is a plain
/// copy of input rows, with no bounds to settle.
bool plain(const ConvGeometry& g) {
  return g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1;
}

/// d[0, n) = s[0, n) for short n: 32-byte blocks, then single elements.
template <class T>
XGRAD_SHORT_LOOPS inline void copy_short(const T* __restrict s, T* __restrict d, std::size_t n) {
  constexpr std::size_t L = 32 / sizeof(T);
  std::size_t k = 0;
  for (; k + L <= n; k += L) std::memcpy(d + k, s + k, 32);
  for (; k < n; ++k) d[k] = s[k];
}

/// d[0, n) += s[0, n) for short n.
template <class T>
XGRAD_SHORT_LOOPS inline void add_short(const T* __restrict s, T* __restrict d, std::size_t n) {
  constexpr std::size_t L = 32 / sizeof(T);
  std::size_t k = 0;
  for (; k + L <= n; k += L)
    for (std::size_t l = 0; l < L; ++l) d[k + l] += s[k + l];
  for (; k < n; ++k) d[k] += s[k];
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

/// One sample x (c, h, w) unrolled into col, whose rows (c*kh*kw of them, oh*ow long)
/// lie ld elements apart. Bounds are settled per row of the unrolled matrix, so the inner
/// loop is a plain (strided) copy.
template <class T>
XGRAD_SHORT_LOOPS void im2col_sample(const T* __restrict x, T* __restrict col, std::size_t ld,
                                     const ConvGeometry& g) {
  const bool fast = plain(g);
  for (std::size_t ch = 0; ch < g.c; ++ch) {
    const T* xc = x + ch * g.h * g.w;
    for (std::size_t i = 0; i < g.kh; ++i) {
      for (std::size_t j = 0; j < g.kw; ++j, col += ld) {
        if (fast) {
          const T* src = xc + i * g.w + j;
          if (g.ow == g.w) {  // 1-wide window: the rows are contiguous
            std::copy(src, src + g.oh * g.w, col);
            continue;
          }
          for (std::size_t r = 0; r < g.oh; ++r) copy_short(src + r * g.w, col + r * g.ow, g.ow);
          continue;
        }
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
            copy_short(src, dst + q.lo, q.hi - q.lo);
          } else {
            for (std::size_t k = 0, n = q.hi - q.lo; k < n; ++k) dst[q.lo + k] = src[k * g.sw];
          }
        }
      }
    }
  }
}

/// x (c, h, w) += the rows of col (ld elements apart) folded back: im2col_sample's adjoint.
template <class T>
XGRAD_SHORT_LOOPS void col2im_sample(const T* col, std::size_t ld, T* x, const ConvGeometry& g) {
  const bool fast = plain(g);
  for (std::size_t ch = 0; ch < g.c; ++ch) {
    T* xc = x + ch * g.h * g.w;
    for (std::size_t i = 0; i < g.kh; ++i) {
      for (std::size_t j = 0; j < g.kw; ++j, col += ld) {
        if (fast) {
          T* dst = xc + i * g.w + j;
          for (std::size_t r = 0; r < g.oh; ++r) add_short(col + r * g.ow, dst + r * g.w, g.ow);
          continue;
        }
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
            add_short(src, dst, q.hi - q.lo);
          } else {
            for (std::size_t k = 0, n = q.hi - q.lo; k < n; ++k) dst[k * g.sw] += src[k];
          }
        }
      }
    }
  }
}

}  // namespace

namespace {
/// True when a sample's unrolled matrix is the sample itself (1x1 window, stride 1, no
/// padding): no copy needed.
bool direct(const ConvGeometry& g) { return g.kh == 1 && g.kw == 1 && plain(g); }

template <class T>
void conv2d_images(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g) {
  const std::size_t ckk = g.c * g.kh * g.kw, ohw = g.oh * g.ow, chw = g.c * g.h * g.w;
  T* col = direct(g) ? nullptr : scratch<T>(ckk * ohw);
  for (std::size_t s = 0; s < g.n; ++s) {
    const T* xs = x + s * chw;
    T* ys = y + s * g.o * ohw;
    if (col) im2col_sample(xs, col, ohw, g);
    gemm<T>(false, false, g.o, ohw, ckk, w, ckk, col ? col : xs, ohw, T(0), ys, ohw);
    if (!b) continue;
    for (std::size_t oc = 0; oc < g.o; ++oc) {  // while the sample's output is in cache
      T* row = ys + oc * ohw;
      const T bias = b[oc];
      for (std::size_t k = 0; k < ohw; ++k) row[k] += bias;
    }
  }
}

template <class T>
void conv2d_grad_weight_images(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
  const std::size_t ckk = g.c * g.kh * g.kw, ohw = g.oh * g.ow, chw = g.c * g.h * g.w;
  const std::size_t m = g.o * ckk;
  std::fill(dw, dw + m, T(0));
  // One product per sample into a small buffer, summed here: BLAS's small-matrix kernels
  // serve beta = 0 only, and accumulating in BLAS (beta = 1) takes its packing path.
  T* buf = scratch<T>((direct(g) ? 0 : ckk * ohw) + m);
  T* part = buf;
  T* col = direct(g) ? nullptr : buf + m;
  for (std::size_t s = 0; s < g.n; ++s) {
    const T* xs = x + s * chw;
    if (col) im2col_sample(xs, col, ohw, g);
    gemm<T>(false, true, g.o, ckk, ohw, dy + s * g.o * ohw, ohw, col ? col : xs, ohw, T(0), part,
            ckk);
    for (std::size_t k = 0; k < m; ++k) dw[k] += part[k];
  }
}

template <class T>
void conv2d_grad_input_images(const T* dy, const T* w, T* dx, const ConvGeometry& g) {
  const std::size_t ckk = g.c * g.kh * g.kw, ohw = g.oh * g.ow, chw = g.c * g.h * g.w;
  std::fill(dx, dx + g.n * chw, T(0));
  if (direct(g)) {
    for (std::size_t s = 0; s < g.n; ++s)
      gemm<T>(true, false, ckk, ohw, g.o, w, ckk, dy + s * g.o * ohw, ohw, T(0), dx + s * chw, ohw);
    return;
  }
  T* col = scratch<T>(ckk * ohw);
  for (std::size_t s = 0; s < g.n; ++s) {
    gemm<T>(true, false, ckk, ohw, g.o, w, ckk, dy + s * g.o * ohw, ohw, T(0), col, ohw);
    col2im_sample(col, ohw, dx + s * chw, g);
  }
}

}  // namespace

// With several threads the batch is split into parts of whole images (detail::by_images),
// each unrolled into its own thread's buffer; the weight gradient, a sum over images, adds
// the parts' partial gradients in part order, and the bias gradient is split by channels.

template <class T>
void conv2d(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g) {
  const std::size_t chw = g.c * g.h * g.w, ohw = g.oh * g.ow;
  const double work = 2.0 * static_cast<double>(g.o * g.c * g.kh * g.kw * ohw);
  detail::by_images(g, work, [&](const ConvGeometry& sub, std::size_t first) {
    conv2d_images(x + first * chw, w, b, y + first * g.o * ohw, sub);
  });
}

template <class T>
void conv2d_grad_bias(const T* dy, T* db, const ConvGeometry& g) {
  const std::size_t ohw = g.oh * g.ow;
  exec::parallel_for_work(g.o, static_cast<double>(g.n * ohw), exec::kMinPartWork,
                          [&](std::size_t b, std::size_t e, std::size_t) {
                            for (std::size_t oc = b; oc < e; ++oc) {
                              T sum = 0;
                              for (std::size_t s = 0; s < g.n; ++s)
                                // 16 lanes: one AVX-512 register of floats, two AVX2 ones.
                                sum += xgrad::detail::sum_in_lanes<T, 16>(
                                    dy + (s * g.o + oc) * ohw, ohw, [](T v) { return v; });
                              db[oc] = sum;
                            }
                          });
}

template <class T>
void conv2d_grad_weight(const T* x, const T* dy, T* dw, const ConvGeometry& g) {
  const std::size_t chw = g.c * g.h * g.w, ohw = g.oh * g.ow, m = g.o * g.c * g.kh * g.kw;
  const std::size_t parts = exec::parts_per_thread(g.n);
  thread_local std::vector<T> partials;
  if (partials.size() < (parts - 1) * m) partials.resize((parts - 1) * m);
  T* partial = partials.data();
  const double work = 2.0 * static_cast<double>(m * ohw * g.n);
  exec::parallel_for(g.n, parts, work >= exec::kMinPartWork * static_cast<double>(parts),
                     [&](std::size_t b, std::size_t e, std::size_t p) {
                       ConvGeometry sub = g;
                       sub.n = e - b;
                       conv2d_grad_weight_images(x + b * chw, dy + b * g.o * ohw,
                                                 p ? partial + (p - 1) * m : dw, sub);
                     });
  for (std::size_t p = 1; p < parts; ++p) {
    const T* s = partial + (p - 1) * m;
    for (std::size_t k = 0; k < m; ++k) dw[k] += s[k];
  }
}

template <class T>
void conv2d_grad_input(const T* dy, const T* w, T* dx, const ConvGeometry& g) {
  const std::size_t chw = g.c * g.h * g.w, ohw = g.oh * g.ow;
  const double work = 2.0 * static_cast<double>(g.o * g.c * g.kh * g.kw * ohw);
  detail::by_images(g, work, [&](const ConvGeometry& sub, std::size_t first) {
    conv2d_grad_input_images(dy + first * g.o * ohw, w, dx + first * chw, sub);
  });
}

#define XGRAD_INSTANTIATE(T)                                                     \
  template void conv2d(const T*, const T*, const T*, T*, const ConvGeometry&);   \
  template void conv2d_grad_bias(const T*, T*, const ConvGeometry&);             \
  template void conv2d_grad_weight(const T*, const T*, T*, const ConvGeometry&); \
  template void conv2d_grad_input(const T*, const T*, T*, const ConvGeometry&);
XGRAD_INSTANTIATE(float)
XGRAD_INSTANTIATE(double)
#undef XGRAD_INSTANTIATE

}  // namespace xgrad::kernels
