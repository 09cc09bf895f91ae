// Built-in metrics: per-batch statistics as graph nodes, combined in double precision.
#include "xgrad/train/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>

#include "xgrad/error.hpp"
#include "xgrad/ops.hpp"

namespace xgrad::train {

namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// Class predictions: (n, classes) logits against (n) or (n, 1) labels. Labels of shape
// (n, 1) are flattened first, so that equal() cannot broadcast them to (n, n).
template <class T>
Expr<T> labels_of(const std::string& metric, Expr<T> prediction, Expr<T> target) {
  const Shape& p = prediction.shape();
  const Shape& t = target.shape();
  const bool flat = t.size() == 1 || (t.size() == 2 && t[1] == 1);
  const bool rows_match = p.size() == 2 && (p[0] == open || t[0] == open || p[0] == t[0]);
  if (p.size() != 2 || !flat || !rows_match) {
    throw ShapeError("train::" + metric + ": prediction " + shape_str(p) + " and target " +
                     shape_str(t) + " do not fit: expected logits (n, classes) and labels (n)");
  }
  return t.size() == 1 ? target : squeeze(target, {1});
}

// Checks a state handed to restore(): `size` numbers, those at `counts` whole and not
// negative (they become row counts).
void check_state(const std::string& metric, std::span<const double> state, std::size_t size,
                 const std::string& layout, std::initializer_list<std::size_t> counts = {}) {
  if (state.size() != size) {
    throw ValueError("train::" + metric + "::restore: a state of " + std::to_string(state.size()) +
                     " numbers, expected " + std::to_string(size) + " (" + layout + ")");
  }
  for (const std::size_t i : counts) {
    if (!(state[i] >= 0) || state[i] != std::floor(state[i])) {
      throw ValueError("train::" + metric + "::restore: number " + std::to_string(i) + " (" +
                       std::to_string(state[i]) + ") is not a count of rows");
    }
  }
}

}  // namespace

template <class T>
std::optional<std::vector<double>> Accuracy<T>::state() const {
  return std::vector<double>{correct_, static_cast<double>(rows_)};
}

template <class T>
void Accuracy<T>::restore(std::span<const double> state) {
  check_state("Accuracy", state, 2, "correct, rows", {1});
  correct_ = state[0];
  rows_ = static_cast<std::size_t>(state[1]);
}

template <class T>
std::vector<Expr<T>> Accuracy<T>::statistics(Expr<T> prediction, Expr<T> target) const {
  const Expr<T> labels = labels_of("Accuracy", prediction, target);
  return {sum(equal(argmax(prediction, {1}), labels))};
}

template <class T>
void Accuracy<T>::accumulate(std::span<const xt::xarray<T>> stats, std::size_t rows) {
  correct_ += static_cast<double>(stats[0]());
  rows_ += rows;
}

template <class T>
double Accuracy<T>::value() const {
  return rows_ ? correct_ / static_cast<double>(rows_) : nan;
}

template <class T>
TopKAccuracy<T>::TopKAccuracy(std::size_t k) : k_(k) {
  if (k == 0) throw ValueError("train::TopKAccuracy: k must be at least 1, got 0");
}

template <class T>
std::string TopKAccuracy<T>::name() const {
  return "top" + std::to_string(k_) + "_accuracy";
}

template <class T>
std::vector<Expr<T>> TopKAccuracy<T>::statistics(Expr<T> prediction, Expr<T> target) const {
  const Expr<T> labels = labels_of(name(), prediction, target);
  const Dim classes = prediction.shape()[1];
  if (classes == open) {
    throw ShapeError("train::" + name() + ": the number of classes (prediction " +
                     shape_str(prediction.shape()) + ", dimension 1) must be known");
  }
  // The target's logit, then how many logits exceed it: the row is correct when fewer than k.
  const Expr<T> own = sum(prediction * one_hot(labels, classes), {1}, true);
  const Expr<T> above = sum(step(prediction - own), {1});
  return {sum(step(static_cast<T>(k_) - T(0.5) - above))};
}

template <class T>
void TopKAccuracy<T>::accumulate(std::span<const xt::xarray<T>> stats, std::size_t rows) {
  correct_ += static_cast<double>(stats[0]());
  rows_ += rows;
}

template <class T>
double TopKAccuracy<T>::value() const {
  return rows_ ? correct_ / static_cast<double>(rows_) : nan;
}

template <class T>
std::optional<std::vector<double>> TopKAccuracy<T>::state() const {
  return std::vector<double>{correct_, static_cast<double>(rows_)};
}

template <class T>
void TopKAccuracy<T>::restore(std::span<const double> state) {
  check_state(name(), state, 2, "correct, rows", {1});
  correct_ = state[0];
  rows_ = static_cast<std::size_t>(state[1]);
}

template <class T>
ConfusionMatrix<T>::ConfusionMatrix(std::size_t classes) : classes_(classes) {
  if (classes < 2) {
    throw ValueError("train::ConfusionMatrix: needs at least 2 classes, got " +
                     std::to_string(classes));
  }
  reset();
}

template <class T>
void ConfusionMatrix<T>::reset() {
  counts_ = xt::zeros<double>({classes_, classes_});
}

template <class T>
std::vector<Expr<T>> ConfusionMatrix<T>::statistics(Expr<T> prediction, Expr<T> target) const {
  const Expr<T> labels = labels_of("ConfusionMatrix", prediction, target);
  const Dim c = static_cast<Dim>(classes_);
  if (prediction.shape()[1] != open && prediction.shape()[1] != c) {
    throw ShapeError("train::ConfusionMatrix: prediction " + shape_str(prediction.shape()) +
                     " has not " + std::to_string(classes_) + " classes");
  }
  return {matmul(transpose(one_hot(labels, c)), one_hot(argmax(prediction, {1}), c))};
}

template <class T>
void ConfusionMatrix<T>::accumulate(std::span<const xt::xarray<T>> stats, std::size_t) {
  counts_ += xt::cast<double>(stats[0]);
}

template <class T>
double ConfusionMatrix<T>::value() const {
  double trace = 0, total = 0;
  for (std::size_t i = 0; i < classes_; ++i) {
    for (std::size_t j = 0; j < classes_; ++j) {
      total += counts_(i, j);
      if (i == j) trace += counts_(i, j);
    }
  }
  return total > 0 ? trace / total : nan;
}

template <class T>
std::optional<std::vector<double>> ConfusionMatrix<T>::state() const {
  return std::vector<double>(counts_.begin(), counts_.end());
}

template <class T>
void ConfusionMatrix<T>::restore(std::span<const double> state) {
  const std::string n = std::to_string(classes_);
  check_state("ConfusionMatrix", state, classes_ * classes_, n + " x " + n + " counts");
  std::copy(state.begin(), state.end(), counts_.begin());
}

template <class T>
std::string RegressionMetric<T>::name() const {
  switch (kind_) {
    case Regression::mae:
      return "mae";
    case Regression::rmse:
      return "rmse";
    case Regression::r2:
      break;
  }
  return "r2";
}

template <class T>
std::vector<Expr<T>> RegressionMetric<T>::statistics(Expr<T> prediction, Expr<T> target) const {
  const Shape& p = prediction.shape();
  const Shape& t = target.shape();
  bool same = p.size() == t.size();
  for (std::size_t i = 0; same && i < p.size(); ++i) {
    same = p[i] == open || t[i] == open || p[i] == t[i];
  }
  if (!same) {
    throw ShapeError("train::" + name() + ": prediction " + shape_str(p) + " and target " +
                     shape_str(t) +
                     " differ; they would broadcast: squeeze or reshape one to the other's shape");
  }
  const Expr<T> e = prediction - target;
  return {sum(abs(e)), sum(square(e)), sum(target), sum(square(target)), size_of(target)};
}

template <class T>
void RegressionMetric<T>::accumulate(std::span<const xt::xarray<T>> stats, std::size_t) {
  sums_.abs += static_cast<double>(stats[0]());
  sums_.sq += static_cast<double>(stats[1]());
  sums_.y += static_cast<double>(stats[2]());
  sums_.y2 += static_cast<double>(stats[3]());
  sums_.n += static_cast<double>(stats[4]());
}

template <class T>
double RegressionMetric<T>::value() const {
  if (sums_.n == 0) return nan;
  switch (kind_) {
    case Regression::mae:
      return sums_.abs / sums_.n;
    case Regression::rmse:
      return std::sqrt(sums_.sq / sums_.n);
    case Regression::r2:
      break;
  }
  const double total = sums_.y2 - sums_.y * sums_.y / sums_.n;
  return 1.0 - sums_.sq / total;
}

template <class T>
std::optional<std::vector<double>> RegressionMetric<T>::state() const {
  return std::vector<double>{sums_.abs, sums_.sq, sums_.y, sums_.y2, sums_.n};
}

template <class T>
void RegressionMetric<T>::restore(std::span<const double> state) {
  check_state(name(), state, 5, "sums of |e|, e^2, y, y^2 and the element count", {4});
  sums_ = {state[0], state[1], state[2], state[3], state[4]};
}

template class Accuracy<float>;
template class Accuracy<double>;
template class TopKAccuracy<float>;
template class TopKAccuracy<double>;
template class ConfusionMatrix<float>;
template class ConfusionMatrix<double>;
template class RegressionMetric<float>;
template class RegressionMetric<double>;

}  // namespace xgrad::train
