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
/// decompressed into memory once, when opened (by zlib, in-process).
template <Element T, Element L = T>
class IdxDataset : public Dataset<T, L> {
 public:
  /// Opens both files. Throws DataError for unreadable or malformed files, files with no
  /// items, different item counts, floating-point labels for integer L, or a scale other
  /// than 1 with integer features.
  IdxDataset(const std::string& features_path, const std::string& targets_path,
             IdxOptions options = {});

  /// Number of items.
  std::size_t size() const override { return features_.rows(); }
  /// Reads the requested items.
  Batch<T, L> gather(std::span<const std::size_t> indices) const override;
  /// The features file.
  const ArrayFile& features_file() const { return features_; }
  /// The targets file.
  const ArrayFile& targets_file() const { return targets_; }

 private:
  ArrayFile features_, targets_;
  IdxOptions options_;
};

}  // namespace xgrad::data
