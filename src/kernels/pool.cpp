// Pooling kernels over NCHW arrays. Max pooling finds each window's maximum once
// (pool_argmax, a node of the plan): the pooled values and the gradient's scatter then
// read the stored offsets instead of searching the windows again.
#include <algorithm>
#include <cstddef>

#include "conv.hpp"

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

/// "v > best, or v is NaN and best is not", without branches: NaN wins, as in PyTorch;
/// the first maximum wins ties.
template <class T>
inline bool wins(T v, T best) {
  return (v > best) | ((v != v) & (best == best));
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

}  // namespace

template <class T>
void pool_argmax(const T* k, T* idx, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w;
  const bool d2 = dense2x2(g);
  for (std::size_t p = 0; p < g.n * g.c; ++p, k += plane) {
    for (std::size_t r = 0; r < g.oh; ++r) {
      if (d2) {
        const T* a = k + r * g.sh * g.w;
        const T* b = a + g.w;
        for (std::size_t q = 0; q < g.ow; ++q, a += g.sw, b += g.sw) {
          T best = a[0];
          int at = 0;
          auto pick = [&](T v, int o) {
            const bool win = wins(v, best);
            best = win ? v : best;
            at = win ? o : at;
          };
          pick(a[1], 1);
          pick(b[0], 2);
          pick(b[1], 3);
          *idx++ = static_cast<T>(at);
        }
        continue;
      }
      for (std::size_t q = 0; q < g.ow; ++q) *idx++ = static_cast<T>(argmax(k, g, r, q));
    }
  }
}

template <class T>
void pool_gather(const T* idx, const T* v, T* y, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w, out = g.oh * g.ow;
  if (!dense2x2(g)) std::fill(y, y + g.n * g.c * out, T(0));  // windows wholly in the padding
  for_each_offset(idx, g, [&](std::size_t p, std::size_t o, std::size_t at) {
    y[p * out + o] = v[p * plane + at];
  });
}

template <class T>
void pool_scatter(const T* idx, const T* dy, T* dx, const ConvGeometry& g) {
  const std::size_t plane = g.h * g.w, out = g.oh * g.ow;
  std::fill(dx, dx + g.n * g.c * plane, T(0));
  for_each_offset(idx, g, [&](std::size_t p, std::size_t o, std::size_t at) {
    dx[p * plane + at] += dy[p * out + o];
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
