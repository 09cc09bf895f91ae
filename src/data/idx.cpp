// IdxDataset (see include/xgrad/data/idx.hpp), compiled here for every pair of element
// types.
#include "xgrad/data/idx.hpp"

#include <type_traits>
#include <vector>

#include "../kernels/loops.hpp"
#include "instantiate.hpp"
#include "io.hpp"

namespace xgrad::data {

using detail::element_name;

template <Element T, Element L>
IdxDataset<T, L>::IdxDataset(const std::string& features_path, const std::string& targets_path,
                             IdxOptions options)
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

template <Element T, Element L>
Batch<T, L> IdxDataset<T, L>::gather(std::span<const std::size_t> indices) const {
  std::vector<std::size_t> frow(features_.shape().begin() + 1, features_.shape().end());
  if (options_.flatten()) frow = {features_.row_elements()};
  Batch<T, L> b(indices, frow, {targets_.shape().begin() + 1, targets_.shape().end()});
  features_.gather<T>(indices, b.features.data());
  targets_.gather<L>(indices, b.targets.data());
  if (options_.scale() != 1.0) {
    // The same products as features *= scale, in vector registers.
    const T s = static_cast<T>(options_.scale());
    T* f = b.features.data();
    xgrad::detail::map1_inplace(f, f, b.features.size(), [s](T v) { return v * s; });
  }
  return b;
}

#define XGRAD_DATA_INSTANTIATE(T, L) template class IdxDataset<T, L>;
XGRAD_DATA_FOR_EACH_ELEMENT_PAIR(XGRAD_DATA_INSTANTIATE)
#undef XGRAD_DATA_INSTANTIATE

}  // namespace xgrad::data
