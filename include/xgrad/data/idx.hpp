/// @file idx.hpp
/// @brief IdxDataset: images and labels in IDX files, the format of MNIST and
/// Fashion-MNIST, plain or gzip-compressed.
///
/// Debian's dataset-fashion-mnist package installs Fashion-MNIST under
/// /usr/share/datasets/fashion-mnist:
/// @code
/// const std::string dir = "/usr/share/datasets/fashion-mnist/";
/// xgrad::data::IdxDataset<float, std::int64_t> train(
///     dir + "train-images-idx3-ubyte.gz", dir + "train-labels-idx1-ubyte.gz",
///     xgrad::data::IdxOptions().scale(1.0 / 255).flatten(true));  // (n, 784) in [0, 1]
/// @endcode
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "xgrad/data/array_file.hpp"
#include "xgrad/data/dataset.hpp"

namespace xgrad::data {

/// Options of IdxDataset, set by chained calls: `IdxOptions().scale(1.0 / 255).flatten(true)`.
class IdxOptions {
 public:
  /// Factor applied to every feature (1.0 / 255 maps MNIST pixels to [0, 1]); must stay 1
  /// for integer features. Default 1.
  IdxOptions& scale(double s) {
    scale_ = s;
    return *this;
  }
  /// Features of shape (n, product of the item dims) instead of (n, item dims...).
  /// Default false.
  IdxOptions& flatten(bool f) {
    flatten_ = f;
    return *this;
  }
  /// The scale factor.
  double scale() const { return scale_; }
  /// Whether items are flattened.
  bool flatten() const { return flatten_; }

 private:
  double scale_ = 1.0;
  bool flatten_ = false;
};

/// Features and targets from two IDX files with the same number of items (images and
/// labels). Plain files are read row by row on demand; gzip-compressed ones are
/// decompressed into memory once, when opened.
template <Element T, Element L = T>
class IdxDataset : public Dataset<T, L> {
 public:
  /// Opens both files. Throws DataError for unreadable or malformed files, files with no
  /// items, different item counts, floating-point labels for integer L, or a scale other
  /// than 1 with integer features.
  IdxDataset(const std::string& features_path, const std::string& targets_path,
             IdxOptions options = {})
      : features_(ArrayFile::open_idx(features_path)),
        targets_(ArrayFile::open_idx(targets_path)),
        options_(options) {
    if (features_.rows() == 0) {
      throw DataError(features_path + ": holds 0 items: expected at least 1");
    }
    if (targets_.rows() != features_.rows()) {
      throw DataError(targets_path + ": " + std::to_string(targets_.rows()) +
                      " items: expected as many as " + features_path + " (" +
                      std::to_string(features_.rows()) + ")");
    }
    features_.require_convertible<T>("features");
    targets_.require_convertible<L>("targets");
    if (std::is_integral_v<T> && options.scale() != 1.0) {
      throw DataError("IdxDataset: scale " + std::to_string(options.scale()) + " with " +
                      element_name<T>() + " features: expected 1 (scaling needs float features)");
    }
  }

  /// Number of items.
  std::size_t size() const override { return features_.rows(); }
  /// Reads the requested items.
  Batch<T, L> gather(std::span<const std::size_t> indices) const override {
    std::vector<std::size_t> frow(features_.shape().begin() + 1, features_.shape().end());
    if (options_.flatten()) frow = {features_.row_elements()};
    Batch<T, L> b(indices, frow, {targets_.shape().begin() + 1, targets_.shape().end()});
    features_.gather<T>(indices, b.features.data());
    targets_.gather<L>(indices, b.targets.data());
    if (options_.scale() != 1.0) b.features *= static_cast<T>(options_.scale());
    return b;
  }
  /// The features file.
  const ArrayFile& features_file() const { return features_; }
  /// The targets file.
  const ArrayFile& targets_file() const { return targets_; }

 private:
  ArrayFile features_, targets_;
  IdxOptions options_;
};

}  // namespace xgrad::data
