// Central finite differences, one element at a time (the seed's e_i definition), and the
// comparison with autodiff.
#include "xgrad/gradcheck.hpp"

#include <cmath>
#include <sstream>

#include "xgrad/autodiff.hpp"
#include "xgrad/ops.hpp"

namespace xgrad {
namespace {

/// Feeds with every float value copied into owned arrays, so elements can be perturbed.
template <class T>
struct OwnedFeeds {
  std::vector<xt::xarray<T>> values;
  std::vector<Feed<T>> feeds;
  std::vector<NodeId> ids;

  explicit OwnedFeeds(const std::vector<Feed<T>>& in) {
    values.reserve(in.size());
    for (const Feed<T>& f : in) {
      if (f.value.dtype() != dtype_of<T>()) {
        feeds.push_back(f);
        ids.push_back(f.input.id());
        continue;
      }
      auto s = f.value.shape();
      std::vector<std::size_t> us(s.begin(), s.end());
      xt::xarray<T> v = xt::xarray<T>::from_shape(us);
      std::copy_n(static_cast<const T*>(f.value.data()), v.size(), v.data());
      values.push_back(std::move(v));
      feeds.push_back({f.input, TensorArg(values.back())});
      ids.push_back(f.input.id());
    }
  }
  /// The storage holding x's value: the parameter itself or the owned copy of its feed.
  xt::xarray<T>& storage(Expr<T> x) {
    const Node<T>& n = x.node();
    if (n.kind == NodeKind::parameter) return x.graph().value(x);
    std::size_t k = 0;
    for (std::size_t i = 0; i < feeds.size(); ++i) {
      bool owned = feeds[i].value.dtype() == dtype_of<T>();
      if (ids[i] == x.id()) {
        if (!owned) break;
        return values[k];
      }
      if (owned) ++k;
    }
    throw GraphError("numeric_gradient: " + x.graph().describe(x.id()) +
                     " is neither a parameter nor an input bound with floating-point values");
  }
};

template <class T>
xt::xarray<T> central_differences(Function<T>& f, OwnedFeeds<T>& owned, Expr<T> x, double h) {
  xt::xarray<T>& v = owned.storage(x);
  xt::xarray<T> out = xt::zeros<T>(v.shape());
  auto total = [&] {
    const xt::xarray<T>& r = f.run(owned.feeds)[0];
    double s = 0;
    for (T e : r) s += static_cast<double>(e);
    return s;
  };
  for (std::size_t i = 0; i < v.size(); ++i) {
    T orig = v.data()[i];
    v.data()[i] = static_cast<T>(orig + h);
    double fp = total();
    v.data()[i] = static_cast<T>(orig - h);
    double fm = total();
    v.data()[i] = orig;
    out.data()[i] = static_cast<T>((fp - fm) / (2 * h));
  }
  return out;
}

}  // namespace

std::string GradCheckResult::summary() const {
  std::ostringstream os;
  os << (ok ? "gradcheck passed" : "gradcheck FAILED") << ": " << checked
     << " elements, max abs error " << max_abs_error << ", max rel error " << max_rel_error;
  if (!worst_node.empty()) {
    os << "; worst at " << worst_node << "[" << worst_index << "]: analytic " << worst_analytic
       << " vs numeric " << worst_numeric;
  }
  return os.str();
}

template <class T>
xt::xarray<T> numeric_gradient(Expr<T> y, Expr<T> x, std::vector<Feed<T>> feeds, double step) {
  OwnedFeeds<T> owned(feeds);
  Function<T> f({y});
  return central_differences(f, owned, x, step);
}

template <class T>
GradCheckResult check_gradients(Expr<T> y, const std::vector<Expr<T>>& xs,
                                std::vector<Feed<T>> feeds, GradCheckOptions opts) {
  OwnedFeeds<T> owned(feeds);
  Graph<T>& g = y.graph("check_gradients");
  Expr<T> obj = y;
  if (!y.shape().empty()) {
    // A fixed pseudo-random weighting checks every row of the Jacobian at once.
    Function<T> probe({y});
    const xt::xarray<T>& yv = probe.run(owned.feeds)[0];
    xt::xarray<T> w = xt::xarray<T>::from_shape(yv.shape());
    std::uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (T& e : w) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      e = static_cast<T>(0.5 + static_cast<double>(state >> 11) / 9007199254740992.0);
    }
    obj = sum(y * g.constant(std::move(w)));
  }
  std::vector<Expr<T>> grads = grad(obj, xs);
  std::vector<Expr<T>> outs{obj};
  outs.insert(outs.end(), grads.begin(), grads.end());
  Function<T> f(outs);
  std::vector<xt::xarray<T>> analytic = f.run(owned.feeds);
  Function<T> fobj({obj});
  GradCheckResult res;
  double worst_ratio = -1;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    xt::xarray<T> num = central_differences(fobj, owned, xs[k], opts.step);
    const xt::xarray<T>& an = analytic[k + 1];
    if (an.size() != num.size()) {
      throw ShapeError("check_gradients: gradient of " + g.describe(xs[k].id()) + " has " +
                       std::to_string(an.size()) + " elements, expected " +
                       std::to_string(num.size()));
    }
    for (std::size_t i = 0; i < num.size(); ++i) {
      double a = static_cast<double>(an.data()[i]);
      double n = static_cast<double>(num.data()[i]);
      double err = std::abs(a - n);
      double tol = opts.atol + opts.rtol * std::abs(n);
      double rel = err / std::max(std::abs(n), 1e-300);
      ++res.checked;
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (std::abs(n) > opts.atol) res.max_rel_error = std::max(res.max_rel_error, rel);
      bool bad = !(err <= tol);
      if (bad) res.ok = false;
      double ratio = std::isnan(err) ? INFINITY : err / tol;
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        res.worst_node = g.describe(xs[k].id());
        res.worst_index = i;
        res.worst_analytic = a;
        res.worst_numeric = n;
      }
    }
  }
  return res;
}

template xt::xarray<float> numeric_gradient(Expr<float>, Expr<float>, std::vector<Feed<float>>,
                                            double);
template xt::xarray<double> numeric_gradient(Expr<double>, Expr<double>, std::vector<Feed<double>>,
                                             double);
template GradCheckResult check_gradients(Expr<float>, const std::vector<Expr<float>>&,
                                         std::vector<Feed<float>>, GradCheckOptions);
template GradCheckResult check_gradients(Expr<double>, const std::vector<Expr<double>>&,
                                         std::vector<Feed<double>>, GradCheckOptions);

}  // namespace xgrad
