/// @file huge_pages.hpp
/// @brief Internal: the allocator of the library's large arrays (node chunks, a graph's
/// operand lists, gradient and plan arrays), on transparent huge pages with freed blocks
/// kept for reuse. Public only because Graph's members use it.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace xgrad::detail {

/// The huge page size of x86-64 and of arm64 with 4 KiB base pages. Arrays from this size
/// up go on huge pages, smaller ones stay with operator new.
inline constexpr std::size_t kHugePage = std::size_t{2} << 20;

/// `bytes` of memory aligned to `align`; from kHugePage up, aligned to and rounded up to
/// whole huge pages and offered to the kernel as huge pages (a hint: where transparent
/// huge pages are off it is plain memory), or a block of that size freed shortly before.
/// Throws std::bad_alloc; released by huge_free with the same `bytes`.
void* huge_alloc(std::size_t bytes, std::size_t align);

/// Releases huge_alloc's memory. Blocks from kHugePage up are kept for a later huge_alloc
/// of the same size for a while (ten seconds, at most 1 GiB in all), so that a graph built
/// after another does not have the kernel fault in and clear its memory again.
void huge_free(void* p, std::size_t bytes) noexcept;

/// std::allocator for arrays that grow with the graph: huge_alloc's memory from kHugePage
/// up, std::allocator's below.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    if (n * sizeof(T) < kHugePage) return std::allocator<T>().allocate(n);
    return static_cast<T*>(huge_alloc(n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < kHugePage) {
      std::allocator<T>().deallocate(p, n);
    } else {
      huge_free(p, n * sizeof(T));
    }
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

/// A std::vector whose buffers of kHugePage and more live on huge pages.
template <class T>
using big_vector = std::vector<T, HugePageAllocator<T>>;

}  // namespace xgrad::detail
