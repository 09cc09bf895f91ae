/// @file train/metrics.hpp
/// @brief Metrics streamed over batches: each adds a few per-batch statistics to the
/// compiled graph (correct predictions, sums of errors) and combines them over an epoch.
///
/// Statistics are graph nodes built once on the prediction and the target, so a metric
/// costs one fused pass inside the compiled step rather than a loop over the batch in
/// C++, and a user metric is a small class:
/// @code
/// struct MeanPrediction : xgrad::train::Metric<float> {
///   std::string name() const override { return "mean_prediction"; }
///   std::vector<xgrad::Expr<float>> statistics(xgrad::Expr<float> p, xgrad::Expr<float>) const
///   override {
///     return {xgrad::sum(p)};
///   }
///   void reset() override { total_ = 0; rows_ = 0; }
///   void accumulate(std::span<const xt::xarray<float>> s, std::size_t rows) override {
///     total_ += s[0](); rows_ += rows;
///   }
///   double value() const override { return total_ / rows_; }
///   std::unique_ptr<Metric> clone() const override { return
///   std::make_unique<MeanPrediction>(*this); } double total_ = 0; std::size_t rows_ = 0;
/// };
/// @endcode
/// A metric that also overrides state() and restore() (as the built-in ones do) is
/// continued exactly by a checkpoint taken inside an epoch; one that does not (as this
/// example) still trains, evaluates and checkpoints, but a run resumed inside an epoch
/// reports NaN for it over the rest of that epoch, its sums over the epoch being unknown:
/// @code
///   std::optional<std::vector<double>> state() const override {
///     return std::vector<double>{total_, static_cast<double>(rows_)};
///   }
///   void restore(std::span<const double> s) override {  // check s.size() == 2 first
///     total_ = s[0]; rows_ = static_cast<std::size_t>(s[1]);
///   }
/// @endcode
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/graph.hpp"

namespace xgrad::train {

/// A quantity computed over all batches of an epoch or an evaluation. Combined in double
/// precision, so that the result does not depend on how the data were cut into batches
/// beyond rounding.
template <class T>
class Metric {
 public:
  virtual ~Metric() = default;
  /// Name in logs and history; validation values get the prefix "val_".
  virtual std::string name() const = 0;
  /// Per-batch statistics as nodes of the prediction's graph, compiled with the loss.
  virtual std::vector<Expr<T>> statistics(Expr<T> prediction, Expr<T> target) const = 0;
  /// Forgets what was accumulated.
  virtual void reset() = 0;
  /// Adds one batch: its statistics' values, in the order statistics() built them, and
  /// its number of rows.
  virtual void accumulate(std::span<const xt::xarray<T>> stats, std::size_t rows) = 0;
  /// The metric over what was accumulated (NaN before any row).
  virtual double value() const = 0;
  /// A fresh copy (fit keeps one for training and one for validation).
  virtual std::unique_ptr<Metric> clone() const = 0;
  /// What was accumulated, as numbers restore() takes back exactly: checkpoints save it,
  /// so that a run resumed inside an epoch reports the whole epoch's value. nullopt (the
  /// default) when the metric cannot be saved: such a run reports NaN for it until the
  /// epoch ends.
  virtual std::optional<std::vector<double>> state() const { return std::nullopt; }
  /// Replaces what was accumulated by a state() of a metric alike (same name and sizes).
  /// Throws ValueError naming the metric when the state does not fit, or (the default)
  /// when the metric does not save its state.
  virtual void restore(std::span<const double> state) {
    throw ValueError("train::Metric::restore: '" + name() + "' does not save its state (" +
                     std::to_string(state.size()) + " numbers given)");
  }
};

/// Fraction of rows whose largest logit is at the target class. Prediction (n, classes),
/// target (n) of class indices.
template <class T>
class Accuracy : public Metric<T> {
 public:
  /// "accuracy".
  std::string name() const override { return "accuracy"; }
  /// sum(equal(argmax(prediction, 1), target)).
  std::vector<Expr<T>> statistics(Expr<T> prediction, Expr<T> target) const override;
  /// @cond TRIVIAL
  void reset() override { correct_ = 0, rows_ = 0; }
  void accumulate(std::span<const xt::xarray<T>> stats, std::size_t rows) override;
  double value() const override;
  std::unique_ptr<Metric<T>> clone() const override { return std::make_unique<Accuracy>(*this); }
  std::optional<std::vector<double>> state() const override;
  void restore(std::span<const double> state) override;
  /// @endcond

 private:
  double correct_ = 0;
  std::size_t rows_ = 0;
};

/// Fraction of rows whose target class is among the k largest logits (ties counted in
/// the target's favour: a row is correct when fewer than k logits exceed the target's).
template <class T>
class TopKAccuracy : public Metric<T> {
 public:
  /// Top-k accuracy; throws ValueError for k = 0.
  explicit TopKAccuracy(std::size_t k);
  /// "top5_accuracy" for k = 5.
  std::string name() const override;
  /// sum(step(k - 0.5 - number of logits above the target's)).
  std::vector<Expr<T>> statistics(Expr<T> prediction, Expr<T> target) const override;
  /// @cond TRIVIAL
  void reset() override { correct_ = 0, rows_ = 0; }
  void accumulate(std::span<const xt::xarray<T>> stats, std::size_t rows) override;
  double value() const override;
  std::unique_ptr<Metric<T>> clone() const override {
    return std::make_unique<TopKAccuracy>(*this);
  }
  std::optional<std::vector<double>> state() const override;
  void restore(std::span<const double> state) override;
  /// @endcond

 private:
  std::size_t k_;
  double correct_ = 0;
  std::size_t rows_ = 0;
};

/// Counts of (true class, predicted class) pairs; value() is the accuracy it implies
/// (its trace over its total), matrix() the counts (and state() them, row by row).
template <class T>
class ConfusionMatrix : public Metric<T> {
 public:
  /// A classes x classes matrix; throws ValueError for fewer than 2 classes.
  explicit ConfusionMatrix(std::size_t classes);
  /// "confusion_accuracy".
  std::string name() const override { return "confusion_accuracy"; }
  /// one_hot(target)^T @ one_hot(argmax(prediction, 1)).
  std::vector<Expr<T>> statistics(Expr<T> prediction, Expr<T> target) const override;
  /// @cond TRIVIAL
  void reset() override;
  void accumulate(std::span<const xt::xarray<T>> stats, std::size_t rows) override;
  double value() const override;
  std::unique_ptr<Metric<T>> clone() const override {
    return std::make_unique<ConfusionMatrix>(*this);
  }
  std::optional<std::vector<double>> state() const override;
  void restore(std::span<const double> state) override;
  /// @endcond
  /// counts(i, j): rows of true class i predicted as class j.
  const xt::xarray<double>& matrix() const { return counts_; }

 private:
  std::size_t classes_;
  xt::xarray<double> counts_;
};

/// Which regression summary a RegressionMetric reports.
enum class Regression {
  mae,   ///< mean absolute error
  rmse,  ///< root of the mean squared error
  r2,    ///< coefficient of determination, 1 - SS_res / SS_tot
};

/// MAE, RMSE or R^2 of a prediction against a target of the same shape, over all
/// elements.
template <class T>
class RegressionMetric : public Metric<T> {
 public:
  /// The summary to report.
  explicit RegressionMetric(Regression kind) : kind_(kind) {}
  /// "mae", "rmse" or "r2".
  std::string name() const override;
  /// Sums of |e|, e^2, y, y^2 and the element count, e = prediction - target.
  std::vector<Expr<T>> statistics(Expr<T> prediction, Expr<T> target) const override;
  /// @cond TRIVIAL
  void reset() override { sums_ = {}; }
  void accumulate(std::span<const xt::xarray<T>> stats, std::size_t rows) override;
  double value() const override;
  std::unique_ptr<Metric<T>> clone() const override {
    return std::make_unique<RegressionMetric>(*this);
  }
  std::optional<std::vector<double>> state() const override;
  void restore(std::span<const double> state) override;
  /// @endcond

 private:
  Regression kind_;
  struct Sums {
    double abs = 0, sq = 0, y = 0, y2 = 0, n = 0;
  } sums_;
};

/// Accuracy of class predictions (a factory for TrainerOptions::metrics, as the others).
template <class T>
std::shared_ptr<Metric<T>> accuracy() {
  return std::make_shared<Accuracy<T>>();
}
/// Top-k accuracy.
template <class T>
std::shared_ptr<Metric<T>> top_k_accuracy(std::size_t k) {
  return std::make_shared<TopKAccuracy<T>>(k);
}
/// Mean absolute error.
template <class T>
std::shared_ptr<Metric<T>> mae() {
  return std::make_shared<RegressionMetric<T>>(Regression::mae);
}
/// Root mean squared error.
template <class T>
std::shared_ptr<Metric<T>> rmse() {
  return std::make_shared<RegressionMetric<T>>(Regression::rmse);
}
/// Coefficient of determination.
template <class T>
std::shared_ptr<Metric<T>> r2() {
  return std::make_shared<RegressionMetric<T>>(Regression::r2);
}

extern template class Accuracy<float>;
extern template class Accuracy<double>;
extern template class TopKAccuracy<float>;
extern template class TopKAccuracy<double>;
extern template class ConfusionMatrix<float>;
extern template class ConfusionMatrix<double>;
extern template class RegressionMetric<float>;
extern template class RegressionMetric<double>;

}  // namespace xgrad::train
