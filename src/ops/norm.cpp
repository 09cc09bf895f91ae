// Normalisation composed from public builders: the graph shows each step (mean, centred
// value, variance), and gradients of any order come from those ops' rules.
#include "xgrad/ops/norm.hpp"

#include <cmath>

#include "common.hpp"
#include "xgrad/ops.hpp"

namespace xgrad {
namespace {

/// (x - mean) / sqrt(var + eps) over the given axes.
template <class T>
Expr<T> normalise(Expr<T> x, const std::vector<Dim>& axes, double eps) {
  Expr<T> centred = x - mean(x, axes, true);
  Expr<T> var = mean(square(centred), axes, true);
  return centred / sqrt(var + static_cast<T>(eps));
}

void check_eps(const char* op, double eps) {
  if (!(eps > 0) || !std::isfinite(eps)) {
    throw ValueError(std::string(op) + ": eps " + std::to_string(eps) +
                     " must be positive and finite");
  }
}

}  // namespace

template <class T>
Expr<T> layer_norm(Expr<T> x, std::size_t dims, double eps) {
  check_eps("layer_norm", eps);
  const std::size_t r = x.rank();
  if (dims == 0 || dims > r) {
    throw ShapeError("layer_norm: " + std::to_string(dims) + " normalised axes for " +
                     x.graph().describe(x.id()) + " of rank " + std::to_string(r));
  }
  std::vector<Dim> axes;
  for (std::size_t i = r - dims; i < r; ++i) {
    if (x.shape()[i] == open) {
      throw ShapeError("layer_norm: normalised axis " + std::to_string(i) + " of " +
                       x.graph().describe(x.id()) + " is open");
    }
    axes.push_back(static_cast<Dim>(i));
  }
  return normalise(x, axes, eps);
}

template <class T>
Expr<T> batch_norm_batch_stats(Expr<T> x, double eps) {
  check_eps("batch_norm", eps);
  const std::size_t r = x.rank();
  if (r != 2 && r != 4) {
    throw ShapeError("batch_norm: expected (n, c) or (n, c, h, w), got " +
                     x.graph().describe(x.id()));
  }
  std::vector<Dim> axes{0};
  for (std::size_t i = 2; i < r; ++i) axes.push_back(static_cast<Dim>(i));
  return normalise(x, axes, eps);
}

XGRAD_NORM_OPS(XGRAD_DETAIL_INSTANTIATE)

}  // namespace xgrad
