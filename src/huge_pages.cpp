// huge_alloc: the one place that asks the kernel for huge pages (node chunks, big_vector).
#include "huge_pages.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>

namespace xgrad::detail {

void* huge_alloc(std::size_t bytes, std::size_t align) {
  if (bytes >= kHugePage) align = std::max(align, kHugePage);
  if (bytes > static_cast<std::size_t>(-1) - align) throw std::bad_alloc();
  const std::size_t size = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, size);
  if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (bytes >= kHugePage) madvise(p, size, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  return p;
}

}  // namespace xgrad::detail
