// load_npy and NpyDataset (see include/xgrad/data/npy.hpp), compiled here for every
// element type.
#include "xgrad/data/npy.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "instantiate.hpp"
#include "io.hpp"
#include "npy_format.hpp"

namespace xgrad::data {

using detail::element_name;

namespace {

void check_rows(const ArrayFile& f) {
  if (f.shape().empty()) {
    throw DataError(f.path() + ": 0-d array: expected at least 1 dimension (the rows)");
  }
  if (f.rows() == 0) {
    throw DataError(f.path() + ": array of shape (0, ...) holds no rows: expected at least 1");
  }
}

std::vector<std::size_t> row_shape(const ArrayFile& f) {
  return {f.shape().begin() + 1, f.shape().end()};
}

/// Columns [0, n) of `rows` rows of U, from rows of `stride` bytes at src to rows of
/// `out_stride` elements at out. Few columns (a row's features, its target) are copied with
/// a size known at compile time, which inlines into a few moves: a call of memcpy per row
/// costs more.
template <class U, std::size_t N>
void copy_columns_of(const std::byte* src, std::size_t stride, std::size_t n, std::size_t rows,
                     U* out, std::size_t out_stride) {
  for (std::size_t r = 0; r < rows; ++r, src += stride, out += out_stride) {
    if constexpr (N == 0) {
      std::memcpy(out, src, n * sizeof(U));
    } else {
      std::memcpy(out, src, N * sizeof(U));
    }
  }
}
template <class U>
void copy_columns(const std::byte* src, std::size_t stride, std::size_t n, std::size_t rows, U* out,
                  std::size_t out_stride) {
  switch (n) {
    case 0:  // nothing to copy, and a memcpy of 0 bytes may not take the null of an empty row
      return;
    case 1:
      return copy_columns_of<U, 1>(src, stride, n, rows, out, out_stride);
    case 2:
      return copy_columns_of<U, 2>(src, stride, n, rows, out, out_stride);
    case 3:
      return copy_columns_of<U, 3>(src, stride, n, rows, out, out_stride);
    case 4:
      return copy_columns_of<U, 4>(src, stride, n, rows, out, out_stride);
    default:
      return copy_columns_of<U, 0>(src, stride, n, rows, out, out_stride);
  }
}

}  // namespace

template <Element U>
xt::xarray<U> detail::read_array(const ArrayFile& f, const std::string& who) {
  f.require_convertible<U>(who);
  auto a = xt::xarray<U>::from_shape(f.shape());
  const std::size_t re = f.row_elements(), rb = f.row_bytes();
  // No rows: nothing to read, whatever a row's size (a (0, 10^10) header is valid and its
  // buffer of one row would be 80 GB).
  if (rb == 0 || f.rows() == 0) return a;
  const std::size_t chunk =
      std::min(f.rows(), std::max<std::size_t>(1, (std::size_t{1} << 20) / rb));
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

template <Element U>
xt::xarray<U> load_npy(const std::string& path) {
  return detail::read_array<U>(ArrayFile::open_npy(path),
                               "load_npy<" + std::string(element_name<U>()) + ">");
}

#define XGRAD_DATA_INSTANTIATE(U)                                                     \
  template xt::xarray<U> detail::read_array<U>(const ArrayFile&, const std::string&); \
  template xt::xarray<U> load_npy<U>(const std::string&);
XGRAD_DATA_INSTANTIATE(float)
XGRAD_DATA_INSTANTIATE(double)
XGRAD_DATA_INSTANTIATE(std::int32_t)
XGRAD_DATA_INSTANTIATE(std::int64_t)
#undef XGRAD_DATA_INSTANTIATE

template <Element T, Element L>
NpyDataset<T, L>::NpyDataset(const std::string& features_path, const std::string& targets_path)
    : features_(ArrayFile::open_npy(features_path)), targets_(ArrayFile::open_npy(targets_path)) {
  check_rows(features_);
  check_rows(targets_);
  if (targets_.rows() != features_.rows()) {
    throw DataError(targets_path + ": " + std::to_string(targets_.rows()) +
                    " rows: expected as many as the features file " + features_path + " (" +
                    std::to_string(features_.rows()) + ")");
  }
  features_.require_convertible<T>("features");
  targets_.require_convertible<L>("targets");
}

template <Element T, Element L>
NpyDataset<T, L>::NpyDataset(const std::string& path, std::vector<std::size_t> feature_columns,
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
  // Runs of consecutive selected columns, found once.
  auto runs = [](const std::vector<std::size_t>& cols) {
    std::vector<ColumnRun> out;
    for (std::size_t i = 0; i < cols.size();) {
      std::size_t j = i + 1;
      while (j < cols.size() && cols[j] == cols[j - 1] + 1) ++j;
      out.push_back({cols[i], j - i, i});
      i = j;
    }
    return out;
  };
  feature_runs_ = runs(feature_cols_);
  target_runs_ = runs(target_cols_);
  raw_features_ = features_.stores_as<T>();
  raw_targets_ = features_.stores_as<L>();
}

template <Element T, Element L>
Batch<T, L> NpyDataset<T, L>::gather(std::span<const std::size_t> indices) const {
  if (!columns_) {
    Batch<T, L> b(indices, row_shape(features_), row_shape(targets_));
    features_.gather<T>(indices, b.features.data());
    targets_.gather<L>(indices, b.targets.data());
    return b;
  }
  // visit_row_runs checks the indices against the file's rows, size() here.
  std::vector<std::size_t> trow;
  if (target_cols_.size() != 1) trow.push_back(target_cols_.size());
  Batch<T, L> b(indices, {feature_cols_.size()}, trow);
  T* f = b.features.data();
  L* t = b.targets.data();
  const std::size_t nf = feature_cols_.size(), nt = target_cols_.size();
  const std::size_t rb = features_.row_bytes();
  features_.visit_row_runs(indices, [&](std::size_t k, std::size_t count, const std::byte* row) {
    // Column run by column run over the rows (stored as T or L: copies), else row by row.
    if (raw_features_) {
      for (const ColumnRun& c : feature_runs_)
        copy_columns(row + c.col * sizeof(T), rb, c.count, count, f + k * nf + c.out, nf);
    }
    if (raw_targets_) {
      for (const ColumnRun& c : target_runs_)
        copy_columns(row + c.col * sizeof(L), rb, c.count, count, t + k * nt + c.out, nt);
    }
    if (raw_features_ && raw_targets_) return;
    for (std::size_t e = k + count; k < e; ++k, row += rb) {
      if (!raw_features_) pick(row, indices[k], feature_runs_, f + k * nf);
      if (!raw_targets_) pick(row, indices[k], target_runs_, t + k * nt);
    }
  });
  return b;
}

// One row's selected columns, converted to U (elements not stored as U).
template <Element T, Element L>
template <class U>
void NpyDataset<T, L>::pick(const std::byte* row, std::size_t r, const std::vector<ColumnRun>& runs,
                            U* out) const {
  for (const ColumnRun& c : runs) features_.convert<U>(row, r, c.col, c.count, out + c.out);
}

#define XGRAD_DATA_INSTANTIATE(T, L) template class NpyDataset<T, L>;
XGRAD_DATA_FOR_EACH_ELEMENT_PAIR(XGRAD_DATA_INSTANTIATE)
#undef XGRAD_DATA_INSTANTIATE

}  // namespace xgrad::data
