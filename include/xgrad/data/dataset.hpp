/// @file dataset.hpp
/// @brief The Dataset interface and its minibatches, in-memory tensors, index subsets and
/// seeded train/validation splits (namespace xgrad::data).
///
/// A data set is anything that knows its number of examples and can gather a list of
/// example indices into a Batch. Implementing one for your own data takes two methods:
/// @code
/// struct Squares : xgrad::data::Dataset<double> {
///   std::size_t size() const override { return 100; }
///   xgrad::data::Batch<double> gather(std::span<const std::size_t> idx) const override {
///     xgrad::data::Batch<double> b(idx, {1}, {});  // features (n, 1), targets (n)
///     for (std::size_t i = 0; i < idx.size(); ++i) {
///       b.features(i, 0) = double(idx[i]);
///       b.targets(i) = double(idx[i] * idx[i]);
///     }
///     return b;
///   }
/// };
/// @endcode
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/data/permutation.hpp"
#include "xgrad/error.hpp"

namespace xgrad::data {

/// Data that cannot be read as expected: a malformed or truncated file, a wrong dtype, a
/// bad CSV field, an empty data set, a bad loader setting. The message names the file and
/// the line or byte offset where applicable, and what was expected there.
class DataError : public Error {
 public:
  /// Builds a data error from a complete message.
  using Error::Error;
};

/// Element types a batch may hold: those a Function input accepts.
template <class U>
concept Element = std::same_as<U, float> || std::same_as<U, double> ||
    std::same_as<U, std::int32_t> || std::same_as<U, std::int64_t>;

/// @cond INTERNAL
// Declared here and defined in xgrad/data/feeds.hpp, so that Batch::feeds can be written
// without the executor's types.
template <Element T, Element L = T>
struct Batch;
template <class X, Element T, Element L>
auto feeds(const Batch<T, L>& batch, const X& x, const X& y);
template <class X, Element T, Element L>
auto feeds(const Batch<T, L>& batch, const X& x);
/// @endcond

/// A minibatch: features and targets whose first dimension is the number of examples,
/// and the indices they were gathered from. Targets may have another element type than
/// features (int64 class labels beside float features).
template <Element T, Element L>
struct Batch {
  xt::xarray<T> features;            ///< (n, feature dims...).
  xt::xarray<L> targets;             ///< (n, target dims...); (n) for one target per example.
  std::vector<std::size_t> indices;  ///< The indices passed to Dataset::gather, in order.

  /// An empty batch.
  Batch();
  /// A batch for these indices with uninitialised features of shape (n, feature_row...)
  /// and targets of shape (n, target_row...), to be filled by a Dataset::gather.
  Batch(std::span<const std::size_t> idx, const std::vector<std::size_t>& feature_row,
        const std::vector<std::size_t>& target_row);
  /// Copies the arrays.
  Batch(const Batch&);
  /// Moves the arrays.
  Batch(Batch&&) noexcept;
  /// Copies the arrays.
  Batch& operator=(const Batch&);
  /// Moves the arrays.
  Batch& operator=(Batch&&) noexcept;
  ~Batch();

  /// Number of examples.
  std::size_t size() const { return indices.size(); }
  /// Bindings of the features to input x and the targets to input y, for Function::run
  /// in one line: `step.run(batch.feeds(x, y))`. Needs xgrad/data/feeds.hpp (included by
  /// data.hpp and xgrad.hpp), where data::feeds(batch, x, y) does the work.
  template <class X>
  auto feeds(const X& x, const X& y) const {
    return data::feeds(*this, x, y);
  }
  /// Binding of the features alone to x (prediction): `predict.run(batch.feeds(x))`.
  template <class X>
  auto feeds(const X& x) const {
    return data::feeds(*this, x);
  }
};

/// A data set: a number of examples and a way to gather any of them into a Batch.
/// gather() is called from the loader's worker threads, several at once with
/// LoaderOptions::workers > 1 or LoaderOptions::consumer_gathers, so it must not modify
/// shared state without its own locking (every built-in data set is safe for that).
template <Element T, Element L = T>
class Dataset {
 public:
  using feature_type = T;  ///< Element type of features.
  using target_type = L;   ///< Element type of targets.

  virtual ~Dataset() = default;
  /// Number of examples.
  virtual std::size_t size() const = 0;
  /// The examples at these indices (each < size(), repeats allowed), in this order.
  virtual Batch<T, L> gather(std::span<const std::size_t> indices) const = 0;
};

/// Throws DataError when an index is not below size; `what` names the data set.
void check_indices(std::span<const std::size_t> indices, std::size_t size, const std::string& what);

/// In-memory tensors: example i is features[i, ...] and targets[i, ...].
template <Element T, Element L = T>
class TensorDataset : public Dataset<T, L> {
 public:
  /// Takes features (n, ...) and targets (n, ...); throws DataError when either is 0-d or
  /// their first dimensions differ.
  TensorDataset(xt::xarray<T> features, xt::xarray<L> targets);

  /// Number of examples (first dimension).
  std::size_t size() const override { return features_.shape(0); }
  /// Copies the requested rows.
  Batch<T, L> gather(std::span<const std::size_t> indices) const override;
  /// All features.
  const xt::xarray<T>& features() const { return features_; }
  /// All targets.
  const xt::xarray<L>& targets() const { return targets_; }

 private:
  xt::xarray<T> features_;
  xt::xarray<L> targets_;
};

/// A view of some examples of another data set, by index, without copying data. The
/// parent must outlive the subset. Batches carry the subset's own indices.
template <Element T, Element L = T>
class Subset : public Dataset<T, L> {
 public:
  /// The examples parent[indices[0]], parent[indices[1]], ...; throws DataError for an
  /// index out of range.
  Subset(const Dataset<T, L>& parent, std::vector<std::size_t> indices);
  /// The examples parent[order(first)], ..., parent[order(first + count - 1)]: a range of
  /// a permutation, held in constant memory.
  Subset(const Dataset<T, L>& parent, Permutation order, std::size_t first, std::size_t count);

  /// Number of examples in the subset.
  std::size_t size() const override { return count_; }
  /// Index in the parent of the subset's example i.
  std::size_t parent_index(std::size_t i) const {
    return indices_.empty() ? order_(first_ + i) : indices_[i];
  }
  /// Gathers from the parent.
  Batch<T, L> gather(std::span<const std::size_t> indices) const override;
  /// The data set viewed.
  const Dataset<T, L>& parent() const { return *parent_; }

 private:
  const Dataset<T, L>* parent_;
  std::vector<std::size_t> indices_;
  Permutation order_;
  std::size_t first_ = 0, count_ = 0;
};

/// A train/validation split (two subsets of one data set).
template <Element T, Element L = T>
struct Split {
  Subset<T, L> train;       ///< The training examples.
  Subset<T, L> validation;  ///< The held-out examples.
};

/// Splits data by index: a seeded permutation of all examples (Permutation(n, seed,
/// UINT64_MAX), a stream no loader epoch uses) whose first round(validation_fraction * n)
/// positions form the validation set and the rest the training set. Nothing is copied and
/// memory is constant; the same seed gives the same split. Throws DataError unless
/// 0 <= validation_fraction <= 1.
template <Element T, Element L>
Split<T, L> split(const Dataset<T, L>& data, double validation_fraction, std::uint64_t seed);

}  // namespace xgrad::data
