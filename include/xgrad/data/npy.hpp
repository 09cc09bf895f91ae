/// @file npy.hpp
/// @brief NumPy .npy files: an atomic writer, whole-array load/save, and NpyDataset,
/// which reads only the rows a batch asks for.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/data/array_file.hpp"
#include "xgrad/data/dataset.hpp"

namespace xgrad::data {

/// Writes a .npy file (format version 1.0, or 2.0 when the header needs it; C order,
/// little-endian) atomically: the data go to a temporary file beside the target, which
/// commit() flushes to disk and renames over the target, so readers never see a partial
/// file. Data may be written in pieces, so arrays larger than memory can be produced.
/// Destroying an uncommitted writer deletes the temporary file and leaves the target as
/// it was.
class NpyWriter {
 public:
  /// Starts a file of the given element type and shape (every element must be written
  /// before commit()). Throws DataError when the temporary file cannot be created.
  NpyWriter(std::string path, Stored type, std::vector<std::size_t> shape);
  /// Discards the temporary file unless committed.
  ~NpyWriter();
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;

  /// Appends raw little-endian element bytes. Throws DataError on a write error or when
  /// more bytes than the shape holds are written.
  void write_bytes(const void* data, std::size_t bytes);
  /// Appends elements, which must be of the file's element type.
  template <class U>
  void write(std::span<const U> values) {
    if (stored_of<U>() != type_) throw_type_mismatch(StoredFormat{stored_of<U>(), false});
    write_bytes(values.data(), values.size_bytes());
  }
  /// Checks that every element was written, flushes, fsyncs and renames the temporary
  /// file over the target. Throws DataError when elements are missing or on I/O errors.
  void commit();

  /// Data bytes the shape requires.
  std::uint64_t expected_bytes() const { return expected_; }
  /// Data bytes written so far.
  std::uint64_t written_bytes() const { return written_; }
  /// The target path.
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void throw_type_mismatch(StoredFormat got) const;
  void write_bytes_raw(const void* data, std::size_t bytes);
  void flush_buffer();
  std::string path_, tmp_;
  Stored type_;
  int fd_ = -1;
  std::uint64_t expected_ = 0, written_ = 0;
  std::vector<std::byte> buffer_;
  bool committed_ = false;
};

/// Saves an array as a .npy file, atomically (see NpyWriter).
template <class U>
void save_npy(const std::string& path, const xt::xarray<U>& a) {
  NpyWriter w(path, stored_of<U>(), std::vector<std::size_t>(a.shape().begin(), a.shape().end()));
  w.write(std::span<const U>(a.data(), a.size()));
  w.commit();
}

/// Loads a whole .npy file converted to U (see ArrayFile::open_npy for the accepted
/// files; 0-d arrays are not accepted).
template <Element U>
xt::xarray<U> load_npy(const std::string& path) {
  const ArrayFile f = ArrayFile::open_npy(path);
  f.require_convertible<U>("load_npy<" + std::string(element_name<U>()) + ">");
  auto a = xt::xarray<U>::from_shape(f.shape());
  const std::size_t re = f.row_elements(), rb = f.row_bytes();
  if (rb == 0) return a;
  const std::size_t chunk = std::max<std::size_t>(1, (std::size_t{1} << 20) / rb);
  std::vector<std::byte> buf(chunk * rb);
  for (std::size_t r = 0; r < f.rows(); r += chunk) {
    const std::size_t n = std::min(chunk, f.rows() - r);
    f.read_rows(r, n, buf.data());
    for (std::size_t k = 0; k < n; ++k) {
      f.convert<U>(buf.data() + k * rb, r + k, 0, re, a.data() + (r + k) * re);
    }
  }
  return a;
}

/// Examples stored in .npy files, read on demand: a gather reads only the requested rows
/// (adjacent rows in one read), so memory is bounded by the batch, not by the file, and
/// files larger than memory can be streamed. Elements are converted to T and L;
/// floating-point files are refused for integer element types.
template <Element T, Element L = T>
class NpyDataset : public Dataset<T, L> {
 public:
  /// Features from one file (n, ...) and targets from another (n, ...). Throws DataError
  /// for unreadable files, files with no rows, or different row counts.
  NpyDataset(const std::string& features_path, const std::string& targets_path)
      : features_(ArrayFile::open_npy(features_path)), targets_(ArrayFile::open_npy(targets_path)) {
    check_rows(features_);
    if (targets_.rows() != features_.rows()) {
      throw DataError(targets_path + ": " + std::to_string(targets_.rows()) +
                      " rows: expected as many as the features file " + features_path + " (" +
                      std::to_string(features_.rows()) + ")");
    }
    features_.require_convertible<T>("features");
    targets_.require_convertible<L>("targets");
  }
  /// Features and targets as columns of one 2-d file (n, columns): the feature columns
  /// and target columns given by index, in that order. One target column gives targets of
  /// shape (n), several (n, k). Throws DataError for a file that is not 2-d or a column
  /// out of range.
  NpyDataset(const std::string& path, std::vector<std::size_t> feature_columns,
             std::vector<std::size_t> target_columns)
      : features_(ArrayFile::open_npy(path)),
        targets_(features_),
        feature_cols_(std::move(feature_columns)),
        target_cols_(std::move(target_columns)),
        columns_(true) {
    check_rows(features_);
    if (features_.shape().size() != 2) {
      throw DataError(path + ": array of " + std::to_string(features_.shape().size()) +
                      " dimensions: expected 2 (rows, columns) to select columns from");
    }
    for (const auto* cols : {&feature_cols_, &target_cols_}) {
      for (std::size_t c : *cols) {
        if (c >= features_.shape()[1]) {
          throw DataError(path + ": column " + std::to_string(c) + " requested: expected < " +
                          std::to_string(features_.shape()[1]) + " (the number of columns)");
        }
      }
    }
    features_.require_convertible<T>("features");
    features_.require_convertible<L>("targets");
    feature_runs_ = column_runs(feature_cols_);
    target_runs_ = column_runs(target_cols_);
    raw_features_ = features_.stores_as<T>();
    raw_targets_ = features_.stores_as<L>();
  }

  /// Number of rows.
  std::size_t size() const override { return features_.rows(); }
  /// Reads the requested rows.
  Batch<T, L> gather(std::span<const std::size_t> indices) const override {
    if (!columns_) {
      Batch<T, L> b(indices, row_shape(features_), row_shape(targets_));
      features_.gather<T>(indices, b.features.data());
      targets_.gather<L>(indices, b.targets.data());
      return b;
    }
    check_indices(indices, size(), features_.path());
    std::vector<std::size_t> trow;
    if (target_cols_.size() != 1) trow.push_back(target_cols_.size());
    Batch<T, L> b(indices, {feature_cols_.size()}, trow);
    T* f = b.features.data();
    L* t = b.targets.data();
    const std::size_t nf = feature_cols_.size(), nt = target_cols_.size();
    features_.visit_rows(indices, [&](std::size_t k, const std::byte* row) {
      pick(row, indices[k], feature_runs_, raw_features_, f + k * nf);
      pick(row, indices[k], target_runs_, raw_targets_, t + k * nt);
    });
    return b;
  }
  /// The file read for features (the only file in column mode).
  const ArrayFile& features_file() const { return features_; }

 private:
  static void check_rows(const ArrayFile& f) {
    if (f.rows() == 0) {
      throw DataError(f.path() + ": array of shape (0, ...) holds no rows: expected at least 1");
    }
  }
  static std::vector<std::size_t> row_shape(const ArrayFile& f) {
    return {f.shape().begin() + 1, f.shape().end()};
  }
  // Consecutive selected columns: `count` columns from file column `col`, to `out` on.
  struct ColumnRun {
    std::size_t col, count, out;
  };
  static std::vector<ColumnRun> column_runs(const std::vector<std::size_t>& cols) {
    std::vector<ColumnRun> runs;
    for (std::size_t i = 0; i < cols.size();) {
      std::size_t j = i + 1;
      while (j < cols.size() && cols[j] == cols[j - 1] + 1) ++j;
      runs.push_back({cols[i], j - i, i});
      i = j;
    }
    return runs;
  }
  // One row's selected columns, converted to U; a run of columns stored as U is copied
  // (the per-row cost dominates a streamed epoch of short rows).
  template <class U>
  void pick(const std::byte* row, std::size_t r, const std::vector<ColumnRun>& runs, bool raw,
            U* out) const {
    for (const ColumnRun& c : runs) {
      if (raw) {
        std::memcpy(out + c.out, row + c.col * sizeof(U), c.count * sizeof(U));
      } else {
        features_.convert<U>(row, r, c.col, c.count, out + c.out);
      }
    }
  }

  ArrayFile features_, targets_;
  std::vector<std::size_t> feature_cols_, target_cols_;
  std::vector<ColumnRun> feature_runs_, target_runs_;
  bool raw_features_ = false, raw_targets_ = false;
  bool columns_ = false;
};

}  // namespace xgrad::data
