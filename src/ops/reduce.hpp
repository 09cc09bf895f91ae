// Helpers shared by the reductions of reduce.cpp and stats.cpp: checked axes, the walk
// over the elements reduced into each output element, the gradient's kept shape, and the
// nodes of the reductions stats.cpp defines (reduce.cpp holds every builder of the
// table). Internal to src/ops/.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "common.hpp"

namespace xgrad::detail {

/// Sorted non-negative axes of x (empty: all), or a ShapeError naming the op and x.
template <class T>
std::vector<Dim> reduce_axes(std::string_view op, Expr<T> x, const std::vector<Dim>& axes) {
  try {
    return norm_axes(axes, x.rank());
  } catch (const std::invalid_argument& e) {
    throw ShapeError(std::string(op) + ": " + e.what() + "; operand " + x.graph().describe(x.id()));
  }
}

/// The shape of a reduction over sorted axes, with or without the reduced axes; with
/// needs_elements, an empty reduced axis is refused (std::invalid_argument).
inline Shape reduced_shape(std::span<const Dim> in, std::span<const Dim> axes, bool keepdims,
                           bool needs_elements) {
  Shape out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    bool red = std::find(axes.begin(), axes.end(), static_cast<Dim>(i)) != axes.end();
    if (red && needs_elements && in[i] == 0) {
      throw std::invalid_argument("reducing over empty axis " + std::to_string(i) +
                                  " (an empty batch?): there is no element to reduce");
    }
    if (!red) {
      out.push_back(in[i]);
    } else if (keepdims) {
      out.push_back(1);
    }
  }
  return out;
}

/// e as if the reduction over axes had kept its dimensions (a no-op when it did).
template <class T>
Expr<T> kept(Expr<T> e, const std::vector<Dim>& axes, bool keepdims) {
  return (keepdims || e.shape().empty()) ? e : unsqueeze(e, axes);
}

/// Elements reduced per output element, static when known, else counted at run time.
template <class T>
Expr<T> reduced_count(Expr<T> x, const std::vector<Dim>& axes) {
  std::size_t c = 1;
  for (Dim a : axes) {
    Dim d = x.shape()[static_cast<std::size_t>(a)];
    if (d == open) return size_of(x, axes);
    c *= static_cast<std::size_t>(d);
  }
  return x.graph().scalar(static_cast<T>(c));
}

/// The offsets of the elements of a row-major tensor that a reduction over sorted axes
/// combines into each output element, walked on the stack (forward() must not
/// allocate): output elements in row-major order, and the elements of each in row-major
/// order of the reduced axes, so the k-th one is at index k along a single reduced axis.
class ReduceWalk {
 public:
  ReduceWalk(std::span<const Dim> shape, std::span<const Dim> axes) {
    std::size_t stride = 1;
    std::array<std::size_t, max_rank> st{};
    for (std::size_t i = shape.size(); i-- > 0;) {
      st[i] = stride;
      stride *= static_cast<std::size_t>(shape[i]);
    }
    for (std::size_t i = 0; i < shape.size(); ++i) {
      const bool red = std::find(axes.begin(), axes.end(), static_cast<Dim>(i)) != axes.end();
      const auto d = static_cast<std::size_t>(shape[i]);
      if (red) {
        rd_[rr_] = d;
        rs_[rr_++] = st[i];
        count_ *= d;
      } else {
        kd_[kr_] = d;
        ks_[kr_++] = st[i];
        groups_ *= d;
      }
    }
  }
  /// Elements per output element.
  std::size_t count() const { return count_; }
  /// Calls f(o, base) for each output element o, base the offset of its first element.
  template <class F>
  void each_group(F&& f) const {
    walk(kd_, ks_, kr_, groups_, 0,
         [&, o = std::size_t{0}](std::size_t off) mutable { f(o++, off); });
  }
  /// Calls f(offset) for each element reduced into the output element at base.
  template <class F>
  void each(std::size_t base, F&& f) const {
    walk(rd_, rs_, rr_, count_, base, f);
  }

 private:
  using Dims = std::array<std::size_t, max_rank>;
  template <class F>
  static void walk(const Dims& d, const Dims& s, std::size_t r, std::size_t total, std::size_t base,
                   F&& f) {
    if (total == 0) return;
    if (r == 0) {
      f(base);
      return;
    }
    Dims idx{};
    std::size_t off = base;
    const std::size_t n = d[r - 1], step = s[r - 1];
    for (;;) {
      for (std::size_t j = 0; j < n; ++j) f(off + j * step);
      std::size_t k = r - 1;
      for (;;) {
        if (k == 0) return;
        --k;
        off += s[k];
        if (++idx[k] < d[k]) break;
        off -= s[k] * d[k];
        idx[k] = 0;
      }
    }
  }
  Dims kd_{}, ks_{}, rd_{}, rs_{};
  std::size_t kr_ = 0, rr_ = 0, groups_ = 1, count_ = 1;
};

// The reductions of stats.cpp, whose builders reduce.cpp defines.

/// logsumexp(x, axes, keepdims).
template <class T>
Expr<T> logsumexp_node(Expr<T> x, const std::vector<Dim>& axes, bool keepdims);
/// var (or, with take_sqrt, std) over axes.
template <class T>
Expr<T> moment_node(Expr<T> x, const std::vector<Dim>& axes, bool keepdims, Dim correction,
                    bool take_sqrt);
/// argmax (or, with smallest, argmin) over one axis or all.
template <class T>
Expr<T> arg_node(Expr<T> x, const std::vector<Dim>& axes, bool keepdims, bool smallest);

}  // namespace xgrad::detail
