// Large internal arrays on transparent huge pages. A graph of half a million nodes, its
// gradient and its plan fill arrays of tens of megabytes, touched for the first time in
// every build: on 4 KiB pages that costs a page fault per 4 KiB, about as much time as
// the work done on the memory; on 2 MiB pages, one per 2 MiB (docs/benchmarks.md has the
// figures). Internal to src/.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

namespace xgrad::detail {

/// The huge page size of x86-64 and of arm64 with 4 KiB base pages.
inline constexpr std::size_t kHugePage = std::size_t{2} << 20;

/// Arrays from this size up go on huge pages. Smaller ones stay with malloc: glibc serves
/// blocks up to 32 MiB from its heap once such blocks have been freed, so a graph built
/// after another reuses them without a page fault, where a huge page would be faulted and
/// cleared again each time (measured slower for the plan's arrays).
inline constexpr std::size_t kHugeArray = std::size_t{32} << 20;

/// `bytes` of memory aligned to `align`; from kHugePage up, aligned to and rounded up to
/// whole huge pages and offered to the kernel as huge pages (a hint: where transparent
/// huge pages are off it is plain memory), or a block of that size freed shortly before.
/// Throws std::bad_alloc; released by huge_free with the same `bytes`.
void* huge_alloc(std::size_t bytes, std::size_t align);

/// Releases huge_alloc's memory. Blocks of kHugeArray and more, which glibc would unmap, are
/// kept for a later huge_alloc of the same size for a while (ten seconds, at most
/// 1 GiB in all), so that a graph built after another does not have the kernel fault in
/// and clear its memory again.
void huge_free(void* p, std::size_t bytes) noexcept;

/// Bytes of freed blocks huge_free keeps for reuse (for tests).
std::size_t huge_cached_bytes();

/// How long huge_free keeps a block (for tests; ten seconds unless set).
void set_huge_cache_keep(std::chrono::milliseconds keep);

/// std::allocator for arrays that grow with the graph: huge_alloc's memory from
/// kHugeArray up, std::allocator's below.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    if (n * sizeof(T) < kHugeArray) return std::allocator<T>().allocate(n);
    return static_cast<T*>(huge_alloc(n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < kHugeArray) {
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

/// A std::vector whose buffers of kHugeArray and more live on huge pages.
template <class T>
using big_vector = std::vector<T, HugePageAllocator<T>>;

}  // namespace xgrad::detail
