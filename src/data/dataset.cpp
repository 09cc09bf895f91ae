// Batch, in-memory data sets, subsets and splits (see include/xgrad/data/dataset.hpp),
// compiled here for every pair of element types.
#include "xgrad/data/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "instantiate.hpp"

namespace xgrad::data {

namespace {

std::vector<std::size_t> with_rows(std::size_t n, const std::vector<std::size_t>& row) {
  std::vector<std::size_t> s{n};
  s.insert(s.end(), row.begin(), row.end());
  return s;
}

template <class U>
std::vector<std::size_t> row_shape(const xt::xarray<U>& a) {
  return {a.shape().begin() + 1, a.shape().end()};
}

template <class U>
void copy_rows(const xt::xarray<U>& src, std::span<const std::size_t> idx, xt::xarray<U>& dst) {
  const std::size_t n = src.shape(0), row = n ? src.size() / n : 0;
  if (row == 0) return;
  for (std::size_t k = 0; k < idx.size(); ++k) {
    std::memcpy(dst.data() + k * row, src.data() + idx[k] * row, row * sizeof(U));
  }
}

}  // namespace

template <Element T, Element L>
Batch<T, L>::Batch() = default;

template <Element T, Element L>
Batch<T, L>::Batch(std::span<const std::size_t> idx, const std::vector<std::size_t>& feature_row,
                   const std::vector<std::size_t>& target_row)
    : features(xt::xarray<T>::from_shape(with_rows(idx.size(), feature_row))),
      targets(xt::xarray<L>::from_shape(with_rows(idx.size(), target_row))),
      indices(idx.begin(), idx.end()) {}

template <Element T, Element L>
Batch<T, L>::Batch(const Batch&) = default;
template <Element T, Element L>
Batch<T, L>::Batch(Batch&&) noexcept = default;
template <Element T, Element L>
Batch<T, L>& Batch<T, L>::operator=(const Batch&) = default;
template <Element T, Element L>
Batch<T, L>& Batch<T, L>::operator=(Batch&&) noexcept = default;
template <Element T, Element L>
Batch<T, L>::~Batch() = default;

void check_indices(std::span<const std::size_t> indices, std::size_t size,
                   const std::string& what) {
  // The largest index first, in four independent maxima (a compare per index instead of
  // a branch); the bad index is looked for only once there is one.
  std::size_t top[4] = {};
  std::size_t k = 0;
  for (; k + 4 <= indices.size(); k += 4) {
    for (std::size_t j = 0; j < 4; ++j) top[j] = std::max(top[j], indices[k + j]);
  }
  for (; k < indices.size(); ++k) top[0] = std::max(top[0], indices[k]);
  if (std::max(std::max(top[0], top[1]), std::max(top[2], top[3])) < size) return;
  for (std::size_t i : indices) {
    if (i >= size) {
      throw DataError(what + ": index " + std::to_string(i) + " out of range: expected < " +
                      std::to_string(size) + " (the number of examples)");
    }
  }
}

template <Element T, Element L>
TensorDataset<T, L>::TensorDataset(xt::xarray<T> features, xt::xarray<L> targets)
    : features_(std::move(features)), targets_(std::move(targets)) {
  if (features_.dimension() == 0 || targets_.dimension() == 0) {
    throw DataError("TensorDataset: features and targets need a first (example) dimension, got " +
                    std::to_string(features_.dimension()) + "-d features and " +
                    std::to_string(targets_.dimension()) + "-d targets");
  }
  if (features_.shape(0) != targets_.shape(0)) {
    throw DataError("TensorDataset: features have " + std::to_string(features_.shape(0)) +
                    " rows but targets " + std::to_string(targets_.shape(0)) +
                    ": expected the same number of examples");
  }
}

template <Element T, Element L>
Batch<T, L> TensorDataset<T, L>::gather(std::span<const std::size_t> indices) const {
  check_indices(indices, size(), "TensorDataset");
  Batch<T, L> b(indices, row_shape(features_), row_shape(targets_));
  copy_rows(features_, indices, b.features);
  copy_rows(targets_, indices, b.targets);
  return b;
}

template <Element T, Element L>
Subset<T, L>::Subset(const Dataset<T, L>& parent, std::vector<std::size_t> indices)
    : parent_(&parent), indices_(std::move(indices)), count_(indices_.size()) {
  check_indices(indices_, parent.size(), "Subset");
}

template <Element T, Element L>
Subset<T, L>::Subset(const Dataset<T, L>& parent, Permutation order, std::size_t first,
                     std::size_t count)
    : parent_(&parent), order_(order), first_(first), count_(count) {
  if (order.size() != parent.size() || first > order.size() || count > order.size() - first) {
    throw DataError("Subset: positions [" + std::to_string(first) + ", " +
                    std::to_string(first + count) + ") of a permutation of " +
                    std::to_string(order.size()) + " elements over a data set of " +
                    std::to_string(parent.size()) + ": expected a range inside both");
  }
}

template <Element T, Element L>
Batch<T, L> Subset<T, L>::gather(std::span<const std::size_t> indices) const {
  check_indices(indices, size(), "Subset");
  std::vector<std::size_t> p(indices.size());
  for (std::size_t k = 0; k < indices.size(); ++k) p[k] = parent_index(indices[k]);
  Batch<T, L> b = parent_->gather(p);
  b.indices.assign(indices.begin(), indices.end());
  return b;
}

template <Element T, Element L>
Split<T, L> split(const Dataset<T, L>& data, double validation_fraction, std::uint64_t seed) {
  if (!(validation_fraction >= 0.0 && validation_fraction <= 1.0)) {
    throw DataError("split: validation_fraction " + std::to_string(validation_fraction) +
                    ": expected a number in [0, 1]");
  }
  const std::size_t n = data.size();
  const std::size_t n_val = std::min<std::size_t>(
      n, static_cast<std::size_t>(std::llround(validation_fraction * double(n))));
  const Permutation order(n, seed, UINT64_MAX);
  return {Subset<T, L>(data, order, n_val, n - n_val), Subset<T, L>(data, order, 0, n_val)};
}

#define XGRAD_DATA_INSTANTIATE(T, L)  \
  template struct Batch<T, L>;        \
  template class Dataset<T, L>;       \
  template class TensorDataset<T, L>; \
  template class Subset<T, L>;        \
  template Split<T, L> split<T, L>(const Dataset<T, L>&, double, std::uint64_t);
XGRAD_DATA_FOR_EACH_ELEMENT_PAIR(XGRAD_DATA_INSTANTIATE)
#undef XGRAD_DATA_INSTANTIATE

}  // namespace xgrad::data
