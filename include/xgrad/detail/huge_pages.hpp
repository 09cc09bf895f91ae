/// @file huge_pages.hpp
/// @brief Internal: the allocator of the library's large arrays (node chunks, a graph's
/// operand lists, gradient and plan arrays), on transparent huge pages with freed blocks
/// kept for reuse. Public only because Graph's members use it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

namespace xgrad::detail {

/// The huge page size of x86-64 and of arm64 with 4 KiB base pages. Arrays from this size
/// up go on huge pages.
inline constexpr std::size_t kHugePage = std::size_t{2} << 20;

/// Arrays from this size up are kept for reuse when freed (huge_free); smaller ones stay
/// with operator new, whose free lists already reuse them.
inline constexpr std::size_t kKeptBlock = std::size_t{64} << 10;

/// `bytes` of memory aligned to `align`. From kHugePage up: aligned to and rounded up to
/// whole huge pages and offered to the kernel as huge pages (a hint: where transparent huge
/// pages are off it is plain memory). From kKeptBlock up: rounded up to whole 4 KiB pages.
/// Either is a block of that size freed shortly before when there is one. Throws
/// std::bad_alloc; released by huge_free with the same `bytes`.
void* huge_alloc(std::size_t bytes, std::size_t align);

/// Releases huge_alloc's memory. Blocks from kKeptBlock up are kept for a later huge_alloc
/// of the same size for a while (ten seconds, at most 1 GiB in all), so that a graph built
/// after another does not have the kernel fault in and clear its memory again.
void huge_free(void* p, std::size_t bytes) noexcept;

/// std::allocator for arrays that grow with the graph: huge_alloc's memory from kKeptBlock
/// up, std::allocator's below.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) {
    if (n > static_cast<std::size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    if (n * sizeof(T) < kKeptBlock) return std::allocator<T>().allocate(n);
    return static_cast<T*>(huge_alloc(n * sizeof(T), alignof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < kKeptBlock) {
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

/// A growing array of trivially copyable values on HugePageAllocator memory: a graph's
/// per-node and per-operand bookkeeping, the free lists of a plan's buffers. Its push_back is a
/// compare and a store in the caller; std::vector's, which GCC often leaves out of line, saves and
/// restores six registers per call, as much as the rest of a node's bookkeeping.
template <class T>
class AppendArray {
  static_assert(std::is_trivially_copyable_v<T>, "AppendArray holds plain values");

 public:
  AppendArray() = default;
  AppendArray(const AppendArray&) = delete;
  AppendArray& operator=(const AppendArray&) = delete;
  ~AppendArray() {
    if (data_) HugePageAllocator<T>().deallocate(data_, cap_);
  }
  /// Number of values.
  std::size_t size() const { return size_; }
  /// Values the array holds before it reallocates.
  std::size_t capacity() const { return cap_; }
  /// Value i (< size()).
  T& operator[](std::size_t i) { return data_[i]; }
  /// Value i (< size()).
  const T& operator[](std::size_t i) const { return data_[i]; }
  /// True when the array holds no value.
  bool empty() const { return size_ == 0; }
  /// The first value.
  const T* data() const { return data_; }
  /// The last value (the array is not empty).
  T& back() { return data_[size_ - 1]; }
  /// Removes the last value (the array is not empty).
  void pop_back() { --size_; }
  /// Appends x (which may be one of the array's values).
  void push_back(const T& x) {
    if (size_ == cap_) [[unlikely]] {
      const T copy = x;  // x may live in the buffer grow() frees
      grow(size_ + 1);
      data_[size_++] = copy;
      return;
    }
    data_[size_++] = x;
  }

 private:
  // Doubles the capacity, at least to `need`.
  [[gnu::noinline]] void grow(std::size_t need) {
    const std::size_t cap = std::max<std::size_t>({need, 2 * cap_, 16});
    T* p = HugePageAllocator<T>().allocate(cap);
    if (size_) std::memcpy(static_cast<void*>(p), data_, size_ * sizeof(T));
    if (data_) HugePageAllocator<T>().deallocate(data_, cap_);
    data_ = p;
    cap_ = cap;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0, cap_ = 0;
};

}  // namespace xgrad::detail
