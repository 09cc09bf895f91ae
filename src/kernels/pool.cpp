// Pooling kernels over NCHW arrays. Max pooling finds each window's maximum once
// (pool_argmax, a node of the plan): the pooled values and the gradient's scatter then
// read the stored offsets instead of searching the windows again.
#include <algorithm>
#include <cstddef>

#include "conv.hpp"

// -O2's vectoriser takes only loops that need no remainder; this loop's length is a row
// of windows.
#if defined(__GNUC__) && !defined(__clang__)
#define XGRAD_VECTORISE __attribute__((noinline, optimize("vect-cost-model=dynamic")))
#else
#define XGRAD_VECTORISE
#endif

namespace xgrad::kernels {
namespace {

using detail::in_pos;

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

/// The 2x2 windows of a pooling without padding: every window lies inside the input.
bool dense2x2(const ConvGeometry& g) { return g.kh == 2 && g.kw == 2 && g.ph == 0 && g.pw == 0; }

/// "v > best, or v is NaN and best is not", as selects: NaN wins, as in PyTorch;
/// the first maximum wins ties.
template <class T>
inline bool wins(T v, T best) {
  return !(v <= best) && best == best;
}

/// Offset i*kw + j of the first maximum of window (r, q), or -1 for a window wholly in
/// the padding.
template <class T>
std::ptrdiff_t argmax(const T* k, const ConvGeometry& g, std::size_t r, std::size_t q) {
  const Window w = window(g, r, q);
  if (w.y0 >= w.y1 || w.x0 >= w.x1) return -1;
  const std::ptrdiff_t top = in_pos(r, 0, g.sh, g.ph, 1), left = in_pos(q, 0, g.sw, g.pw, 1);
  std::size_t at = w.y0 * g.w + w.x0;
  T best = k[at];
  for (std::size_t i = w.y0; i < w.y1; ++i) {
    for (std::size_t j = w.x0; j < w.x1; ++j) {
      const std::size_t p = i * g.w + j;
      const bool win = wins(k[p], best);
      best = win ? k[p] : best;
      at = win ? p : at;
    }
  }
  const auto yi = static_cast<std::ptrdiff_t>(at / g.w), xj = static_cast<std::ptrdiff_t>(at % g.w);
  return (yi - top) * static_cast<std::ptrdiff_t>(g.kw) + (xj - left);
}

/// idx[q] = the offset of the maximum of the 2x2 window at column q * stride of rows a
/// (top) and b, for q < n. Branch-free selects over whole rows of windows, which vectorise
/// for the usual stride S = 2 known when compiling (S = 0: the stride given at run time).
template <std::size_t S, class T>
XGRAD_VECTORISE void argmax_row2x2(const T* __restrict a, const T* __restrict b, T* __restrict idx,
                                   std::size_t n, std::size_t stride) {
  const std::size_t s = S ? S : stride;
  for (std::size_t q = 0; q < n; ++q) {
    T best = a[q * s], at = 0;
    const T v1 = a[q * s + 1], v2 = b[q * s], v3 = b[q * s + 1];
    bool win = wins(v1, best);
    best = win ? v1 : best;
    at = win ? T(1) : at;
    win = wins(v2, best);
    best = win ? v2 : best;
    at = win ? T(2) : at;
    win = wins(v3, best);
    idx[q] = win ? T(3) : at;
  }
}

/// y[q] = the value at offset idx[q] of the 2x2 window at column 2q of rows a and b.
template <class T>
XGRAD_VECTORISE void gather_row2x2(const T* __restrict a, const T* __restrict b,
                                   const T* __restrict idx, T* __restrict y, std::size_t n) {
  for (std::size_t q = 0; q < n; ++q) {
    const T t = idx[q], v0 = a[2 * q], v1 = a[2 * q + 1], v2 = b[2 * q], v3 = b[2 * q + 1];
    const T top = t == T(0) ? v0 : v1;
    const T bottom = t == T(2) ? v2 : v3;
    y[q] = t < T(2) ? top : bottom;
  }
}

/// Rows a and b of dx written whole: dy[q] at offset idx[q] of the 2x2 window at column 2q,
/// zero at its other three positions (the windows tile the rows, so nothing is added).
template <class T>
XGRAD_VECTORISE void scatter_row2x2(const T* __restrict idx, const T* __restrict dy,
                                    T* __restrict a, T* __restrict b, std::size_t n) {
  for (std::size_t q = 0; q < n; ++q) {
    const T t = idx[q], d = dy[q];
    a[2 * q] = t == T(0) ? d : T(0);
    a[2 * q + 1] = t == T(1) ? d : T(0);
    b[2 * q] = t == T(2) ? d : T(0);
    b[2 * q + 1] = t == T(3) ? d : T(0);
  }
}

/// 2x2 windows with stride 2 and no padding: each output row reads two whole input rows.
bool tiles2x2(const ConvGeometry& g) { return dense2x2(g) && g.sh == 2 && g.sw == 2; }

/// Calls f(plane, out, pos) for every window of every plane whose stored offset is not
/// -1, with pos the window's maximum in the plane.
template <class T, class F>
void for_each_offset(const T* idx, const ConvGeometry& g, F&& f) {
  const std::size_t out = g.oh * g.ow;
  const bool d2 = dense2x2(g);
  for (std::size_t p = 0; p < g.n * g.c; ++p, idx += out) {
    for (std::size_t r = 0; r < g.oh; ++r) {
      for (std::size_t q = 0; q < g.ow; ++q) {
        const T t = idx[r * g.ow + q];
        if (d2) {  // offsets 0..3: row t / 2, column t % 2 of the window
          const auto o = static_cast<std::size_t>(t);
          f(p, r * g.ow + q, (r * g.sh + (o >> 1)) * g.w + q * g.sw + (o & 1));
          continue;
        }
        if (t < 0) continue;
        const auto o = static_cast<std::size_t>(t);
        const std::ptrdiff_t y = in_pos(r, o / g.kw, g.sh, g.ph, 1);
        const std::ptrdiff_t x = in_pos(q, o % g.kw, g.sw, g.pw, 1);
        f(p, r * g.ow + q, static_cast<std::size_t>(y) * g.w + static_cast<std::size_t>(x));
      }
    }
  }
}

template <class T>
void pool_argmax_images(const T* k, T* idx, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w;
  const bool d2 = dense2x2(g);
  for (std::size_t p = 0; p < g.n * g.c; ++p, k += plane) {
    for (std::size_t r = 0; r < g.oh; ++r) {
      if (d2) {
        const T* a = k + r * g.sh * g.w;
        if (g.sw == 2) {
          argmax_row2x2<2>(a, a + g.w, idx, g.ow, 2);
        } else {
          argmax_row2x2<0>(a, a + g.w, idx, g.ow, g.sw);
        }
        idx += g.ow;
        continue;
      }
      for (std::size_t q = 0; q < g.ow; ++q) *idx++ = static_cast<T>(argmax(k, g, r, q));
    }
  }
}

template <class T>
void pool_gather_images(const T* idx, const T* v, T* y, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w, out = g.oh * g.ow;
  if (tiles2x2(g)) {
    for (std::size_t p = 0; p < g.n * g.c; ++p, v += plane) {
      for (std::size_t r = 0; r < g.oh; ++r, idx += g.ow, y += g.ow) {
        const T* a = v + 2 * r * g.w;
        gather_row2x2(a, a + g.w, idx, y, g.ow);
      }
    }
    return;
  }
  if (!dense2x2(g)) std::fill(y, y + g.n * g.c * out, T(0));  // windows wholly in the padding
  for_each_offset(idx, g, [&](std::size_t p, std::size_t o, std::size_t at) {
    y[p * out + o] = v[p * plane + at];
  });
}

template <class T>
void pool_scatter_images(const T* idx, const T* dy, T* dx, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w, out = g.oh * g.ow;
  if (tiles2x2(g)) {
    // The windows cover rows [0, 2 oh) and columns [0, 2 ow); an odd last row or column
    // gets no gradient.
    const bool covered = g.h == 2 * g.oh && g.w == 2 * g.ow;
    if (!covered) std::fill(dx, dx + g.n * g.c * plane, T(0));
    for (std::size_t p = 0; p < g.n * g.c; ++p, dx += plane) {
      for (std::size_t r = 0; r < g.oh; ++r, idx += g.ow, dy += g.ow) {
        T* a = dx + 2 * r * g.w;
        scatter_row2x2(idx, dy, a, a + g.w, g.ow);
      }
    }
    return;
  }
  std::fill(dx, dx + g.n * g.c * plane, T(0));
  for_each_offset(idx, g, [&](std::size_t p, std::size_t o, std::size_t at) {
    dx[p * plane + at] += dy[p * out + o];
  });
}

template <class T>
void avg_pool_images(const T* x, T* y, const ConvGeometry& g, bool include_pad) {
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
void avg_pool_grad_images(const T* dy, T* dx, const ConvGeometry& g, bool include_pad) {
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

}  // namespace

// With several threads the batch is split into parts of whole images (detail::by_images):
// every window belongs to one image, so the results do not depend on the partition.

template <class T>
void pool_argmax(const T* k, T* idx, const ConvGeometry& g) {
  const std::size_t in = g.c * g.h * g.w, out = g.c * g.oh * g.ow;
  detail::by_images(g, static_cast<double>(out * g.kh * g.kw),
                    [&](const ConvGeometry& s, std::size_t f) {
                      pool_argmax_images(k + f * in, idx + f * out, s);
                    });
}

template <class T>
void pool_gather(const T* idx, const T* v, T* y, const ConvGeometry& g) {
  const std::size_t in = g.c * g.h * g.w, out = g.c * g.oh * g.ow;
  detail::by_images(g, static_cast<double>(out + in), [&](const ConvGeometry& s, std::size_t f) {
    pool_gather_images(idx + f * out, v + f * in, y + f * out, s);
  });
}

template <class T>
void pool_scatter(const T* idx, const T* dy, T* dx, const ConvGeometry& g) {
  const std::size_t in = g.c * g.h * g.w, out = g.c * g.oh * g.ow;
  detail::by_images(g, static_cast<double>(out + in), [&](const ConvGeometry& s, std::size_t f) {
    pool_scatter_images(idx + f * out, dy + f * out, dx + f * in, s);
  });
}

template <class T>
void avg_pool(const T* x, T* y, const ConvGeometry& g, bool include_pad) {
  const std::size_t in = g.c * g.h * g.w, out = g.c * g.oh * g.ow;
  detail::by_images(g, static_cast<double>(out * g.kh * g.kw),
                    [&](const ConvGeometry& s, std::size_t f) {
                      avg_pool_images(x + f * in, y + f * out, s, include_pad);
                    });
}

template <class T>
void avg_pool_grad(const T* dy, T* dx, const ConvGeometry& g, bool include_pad) {
  const std::size_t in = g.c * g.h * g.w, out = g.c * g.oh * g.ow;
  detail::by_images(g, static_cast<double>(out * g.kh * g.kw),
                    [&](const ConvGeometry& s, std::size_t f) {
                      avg_pool_grad_images(dy + f * out, dx + f * in, s, include_pad);
                    });
}

#define XGRAD_INSTANTIATE(T)                                               \
  template void pool_argmax(const T*, T*, const ConvGeometry&);            \
  template void pool_gather(const T*, const T*, T*, const ConvGeometry&);  \
  template void pool_scatter(const T*, const T*, T*, const ConvGeometry&); \
  template void avg_pool(const T*, T*, const ConvGeometry&, bool);         \
  template void avg_pool_grad(const T*, T*, const ConvGeometry&, bool);
XGRAD_INSTANTIATE(float)
XGRAD_INSTANTIATE(double)
#undef XGRAD_INSTANTIATE

}  // namespace xgrad::kernels
