/// @file npy.hpp
/// @brief NumPy .npy files: an atomic writer, whole-array load/save, and NpyDataset,
/// which reads only the rows a batch asks for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>
#include <xtensor/xarray.hpp>

#include "xgrad/data/array_file.hpp"
#include "xgrad/data/dataset.hpp"

namespace xgrad::data {

/// Writes a .npy file (format version 1.0, or 2.0 when the header needs it; C order,
/// little-endian) atomically: the data go to a temporary file beside the target, which
/// commit() fsyncs, renames over the target and makes durable with an fsync of the
/// directory, so readers never see a partial file. Data may be written in pieces, so
/// arrays larger than memory can be produced. Destroying an uncommitted writer deletes the
/// temporary file and leaves the target as it was; temporaries of the same target that a
/// killed process left are removed by the next writer.
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
/// files; a 0-d array loads as an array of shape ()).
template <Element U>
xt::xarray<U> load_npy(const std::string& path);

/// Examples stored in .npy files, read on demand: a gather reads only the requested rows
/// (adjacent rows in one read), so memory is bounded by the batch, not by the file, and
/// files larger than memory can be streamed. Elements are converted to T and L;
/// floating-point files are refused for integer element types.
template <Element T, Element L = T>
class NpyDataset : public Dataset<T, L> {
 public:
  /// Features from one file (n, ...) and targets from another (n, ...). Throws DataError
  /// for unreadable files, files with no rows, or different row counts.
  NpyDataset(const std::string& features_path, const std::string& targets_path);
  /// Features and targets as columns of one 2-d file (n, columns): the feature columns
  /// and target columns given by index, in that order. One target column gives targets of
  /// shape (n), several (n, k). Throws DataError for a file that is not 2-d or a column
  /// out of range.
  NpyDataset(const std::string& path, std::vector<std::size_t> feature_columns,
             std::vector<std::size_t> target_columns);

  /// Number of rows.
  std::size_t size() const override { return features_.rows(); }
  /// Reads the requested rows.
  Batch<T, L> gather(std::span<const std::size_t> indices) const override;
  /// The file read for features (the only file in column mode).
  const ArrayFile& features_file() const { return features_; }

 private:
  // Consecutive selected columns: `count` columns from file column `col`, to `out` on.
  struct ColumnRun {
    std::size_t col, count, out;
  };
  template <class U>
  void pick(const std::byte* row, std::size_t r, const std::vector<ColumnRun>& runs, U* out) const;

  ArrayFile features_, targets_;
  std::vector<std::size_t> feature_cols_, target_cols_;
  std::vector<ColumnRun> feature_runs_, target_runs_;
  bool raw_features_ = false, raw_targets_ = false;
  bool columns_ = false;
};

}  // namespace xgrad::data
