// The loops elementwise kernels are built from: broadcast strides, a strided loop over a
// row-major shape, and maps compiled per instruction set. Shared by the ops and the
// executor (which calls an op's map kernels directly on blocks of rows). Internal to src/.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>

#include "../exec/thread_pool.hpp"
#include "xgrad/op.hpp"

namespace xgrad::detail {

/// Element strides of `in` when iterated over `out` (0 on broadcast axes); both shapes
/// are right-aligned as in NumPy.
inline void broadcast_strides(std::span<const Dim> in, std::span<const Dim> out,
                              std::ptrdiff_t* st) {
  std::size_t r = out.size(), k = in.size();
  std::ptrdiff_t s = 1;
  for (std::size_t i = r; i-- > 0;) {
    if (i + k < r) {
      st[i] = 0;
      continue;
    }
    Dim d = in[i + k - r];
    st[i] = (d == 1 && out[i] != 1) ? 0 : s;
    s *= d;
  }
}

/// Calls body(offsets...) for every element of `shape` in row-major order, where each
/// offset walks its own strides; the innermost axis is a tight loop the compiler can
/// vectorise.
template <std::size_t N, class F>
void strided_loop(std::span<const Dim> shape, const std::array<const std::ptrdiff_t*, N>& st,
                  F&& inner) {
  std::size_t r = shape.size();
  std::size_t total = shape_size(shape);
  if (total == 0) return;
  if (r == 0) {
    std::array<std::ptrdiff_t, N> off{};
    std::array<std::ptrdiff_t, N> step{};
    inner(off, step, std::size_t{1});
    return;
  }
  std::size_t n_inner = static_cast<std::size_t>(shape[r - 1]);
  std::array<std::ptrdiff_t, N> step{};
  for (std::size_t k = 0; k < N; ++k) step[k] = st[k][r - 1];
  std::array<std::size_t, max_rank> idx{};
  std::array<std::ptrdiff_t, N> off{};
  for (std::size_t o = 0, outer = total / n_inner; o < outer; ++o) {
    inner(off, step, n_inner);
    for (std::size_t d = r - 1; d-- > 0;) {
      ++idx[d];
      for (std::size_t k = 0; k < N; ++k) off[k] += st[k][d];
      if (idx[d] < static_cast<std::size_t>(shape[d])) break;
      for (std::size_t k = 0; k < N; ++k) off[k] -= st[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

// Elementwise loops are compiled for AVX-512, AVX2 and baseline x86-64, picked at load
// time by the CPU (GCC target_clones; glibc ifunc), with the vectoriser enabled for them
// whatever the build's optimisation level. Results are bit-identical across the clones:
// no floating-point contraction or reassociation is allowed.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(XGRAD_NO_MULTIVERSIONING)
#define XGRAD_KERNEL                                                           \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), \
                 optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=off")))
#else
#define XGRAD_KERNEL
#endif

/// Maps shorter than this run as a plain loop in the caller: the call into a kernel clone
/// (through its ifunc) and the vector loop's set-up cost more than a few scalar elements
/// (workload 1's 3- and 4-element maps). Same bits: the clones allow no contraction either.
inline constexpr std::size_t kShortMap = 8;

/// y[i] = f(x[i]) (the vectorised clones; map1 picks them for long maps).
template <class T, class F>
XGRAD_KERNEL void map1_clones(const T* __restrict x, T* __restrict y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
/// y[i] = f(x[i]).
template <class T, class F>
inline void map1(const T* __restrict x, T* __restrict y, std::size_t n, F f) {
  if (n >= kShortMap) return map1_clones(x, y, n, f);
  for (std::size_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
/// y[i] = x[i] converted to U: bytes widened to floating point (a data set's pixels), which
/// -O2's vectoriser would leave scalar (the loop's length is a run of rows).
template <class S, class U>
XGRAD_KERNEL void widen(const S* __restrict x, U* __restrict y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<U>(x[i]);
}
/// acc[i] += x[i] in double: one row of a column sum (sum_to's bias gradients), which
/// -O2's vectoriser would leave scalar (the row length is known at run time only).
template <class S>
XGRAD_KERNEL void accumulate(const S* __restrict x, double* __restrict acc, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) acc[i] += static_cast<double>(x[i]);
}
/// f(x[0]) + ... + f(x[n-1]) in L independent partial sums of type Acc (L a power of two),
/// added pairwise at the end ((s0 + s1) + (s2 + s3)) + ...: one chain of dependent adds
/// would run at one element per add's latency. Every clone keeps each lane's order, so every
/// clone gives the same bits. The optimizers' gradient norm and conv2d's bias gradient.
template <class Acc, std::size_t L, class S, class F>
XGRAD_KERNEL Acc sum_in_lanes(const S* x, std::size_t n, F f) {
  static_assert(L > 0 && (L & (L - 1)) == 0, "lanes: a power of two");
  Acc s[L] = {};
  std::size_t i = 0;
  for (; i + L <= n; i += L) {
    for (std::size_t k = 0; k < L; ++k) s[k] += f(x[i + k]);
  }
  for (; i < n; ++i) s[0] += f(x[i]);
  for (std::size_t w = 1; w < L; w *= 2) {
    for (std::size_t k = 0; k < L; k += 2 * w) s[k] += s[k + w];
  }
  return s[0];
}
/// acc + x[0] + x[1] + ... in double, in order: the one loop of a whole-tensor sum, so that
/// the sum op, a row-tiled group's blocks and the executor's direct steps give one result.
template <class S>
double sum_in_order(const S* x, std::size_t n, double acc = 0) {
  for (std::size_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]);
  return acc;
}
/// y[i] = f(x[i]) where y may be x (the vectorised clones).
template <class T, class F>
XGRAD_KERNEL void map1_inplace_clones(const T* x, T* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
/// y[i] = f(x[i]) where y may be x.
template <class T, class F>
inline void map1_inplace(const T* x, T* y, std::size_t n, F f) {
  if (n >= kShortMap) return map1_inplace_clones(x, y, n, f);
  for (std::size_t i = 0; i < n; ++i) y[i] = f(x[i]);
}
/// y[i] = f(a[i], b[i]) (the vectorised clones).
template <class T, class F>
XGRAD_KERNEL void map2_clones(const T* a, const T* b, T* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}
/// y[i] = f(a[i], b).
template <class T, class F>
XGRAD_KERNEL void map2_scalar_b_clones(const T* a, T b, T* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(a[i], b);
}
/// y[i] = f(a, b[i]).
template <class T, class F>
XGRAD_KERNEL void map2_scalar_a_clones(T a, const T* b, T* y, std::size_t n, F f) {
  for (std::size_t i = 0; i < n; ++i) y[i] = f(a, b[i]);
}
/// y[i] = f(a[i], b[i]).
template <class T, class F>
inline void map2(const T* a, const T* b, T* y, std::size_t n, F f) {
  if (n >= kShortMap) return map2_clones(a, b, y, n, f);
  for (std::size_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}
/// y[i] = f(a[i], b).
template <class T, class F>
inline void map2_scalar_b(const T* a, T b, T* y, std::size_t n, F f) {
  if (n >= kShortMap) return map2_scalar_b_clones(a, b, y, n, f);
  for (std::size_t i = 0; i < n; ++i) y[i] = f(a[i], b);
}
/// y[i] = f(a, b[i]).
template <class T, class F>
inline void map2_scalar_a(T a, const T* b, T* y, std::size_t n, F f) {
  if (n >= kShortMap) return map2_scalar_a_clones(a, b, y, n, f);
  for (std::size_t i = 0; i < n; ++i) y[i] = f(a, b[i]);
}
/// y[r, j] = f(a[r, j], b[j]) for rows r of length m (b broadcast along rows), or with
/// the roles swapped when row_is_a.
template <class T, class F>
XGRAD_KERNEL void map2_rows(const T* full, const T* row, T* y, std::size_t rows, std::size_t m,
                            bool row_is_a, F f) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* x = full + r * m;
    T* z = y + r * m;
    if (row_is_a) {
      for (std::size_t j = 0; j < m; ++j) z[j] = f(row[j], x[j]);
    } else {
      for (std::size_t j = 0; j < m; ++j) z[j] = f(x[j], row[j]);
    }
  }
}

/// True when `small` is a trailing block of `big` (after dropping leading 1s), so that
/// broadcasting repeats it whole along the leading axes.
inline bool is_row_of(std::span<const Dim> small, std::span<const Dim> big) {
  std::size_t k = 0;
  while (k < small.size() && small[k] == 1) ++k;
  std::size_t r = small.size() - k;
  if (r > big.size()) return false;
  return std::equal(small.begin() + static_cast<std::ptrdiff_t>(k), small.end(),
                    big.end() - static_cast<std::ptrdiff_t>(r));
}

/// out = f(a, b) with NumPy broadcasting; fast paths for equal shapes, scalars and an
/// operand repeated along leading axes (a bias row).
template <class T, class F>
void binary_map(ConstTensor<T> a, ConstTensor<T> b, Tensor<T> out, F f) {
  T* o = out.data;
  const T* pa = a.data;
  const T* pb = b.data;
  if (out.size == 0) return;
  // The fast paths split a large map into parts of the flat range or of the rows, one per
  // thread (each element alone: the result does not depend on the partition).
  auto flat = [&](auto&& part) {
    exec::parallel_for_work(out.size, 1.0, exec::kMinPartWork,
                            [&](std::size_t b0, std::size_t e0, std::size_t) { part(b0, e0); });
  };
  if (a.size == out.size && b.size == out.size) {
    flat([&](std::size_t i, std::size_t e) { map2(pa + i, pb + i, o + i, e - i, f); });
    return;
  }
  if (b.size == 1 && a.size == out.size) {
    flat([&](std::size_t i, std::size_t e) { map2_scalar_b(pa + i, pb[0], o + i, e - i, f); });
    return;
  }
  if (a.size == 1 && b.size == out.size) {
    flat([&](std::size_t i, std::size_t e) { map2_scalar_a(pa[0], pb + i, o + i, e - i, f); });
    return;
  }
  auto rows = [&](const T* full, const T* row, std::size_t m, bool row_is_a) {
    exec::parallel_for_work(out.size / m, static_cast<double>(m), exec::kMinPartWork,
                            [&](std::size_t r, std::size_t e, std::size_t) {
                              map2_rows(full + r * m, row, o + r * m, e - r, m, row_is_a, f);
                            });
  };
  if (a.size == out.size && b.size && is_row_of(b.shape, out.shape)) {
    rows(pa, pb, b.size, false);
    return;
  }
  if (b.size == out.size && a.size && is_row_of(a.shape, out.shape)) {
    rows(pb, pa, a.size, true);
    return;
  }
  std::array<std::ptrdiff_t, max_rank> sa{}, sb{}, so{};
  broadcast_strides(a.shape, out.shape, sa.data());
  broadcast_strides(b.shape, out.shape, sb.data());
  broadcast_strides(out.shape, out.shape, so.data());
  strided_loop<3>(out.shape, {sa.data(), sb.data(), so.data()},
                  [&](const auto& off, const auto& step, std::size_t n) {
                    const T* x = pa + off[0];
                    const T* y = pb + off[1];
                    T* z = o + off[2];
                    for (std::size_t j = 0; j < n; ++j) z[j] = f(x[j * step[0]], y[j * step[1]]);
                  });
}

}  // namespace xgrad::detail
