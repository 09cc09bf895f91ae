// The allocator of the library's large internal arrays (src/huge_pages.hpp): arrays of
// kHugeArray and more start on a huge page boundary, smaller ones come from operator new,
// and a vector keeps its contents when it grows across the threshold.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>

#include "../src/huge_pages.hpp"

namespace {

using xgrad::detail::big_vector;
using xgrad::detail::kHugeArray;
using xgrad::detail::kHugePage;

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

TEST(HugePages, LargeArraysStartOnAHugePage) {
  big_vector<std::uint32_t> v(kHugeArray / sizeof(std::uint32_t));
  EXPECT_EQ(address(v.data()) % kHugePage, 0u);
  v.back() = 7;  // the whole array is usable
  EXPECT_EQ(v.back(), 7u);
  void* p = xgrad::detail::huge_alloc(kHugePage + 1, 8);
  EXPECT_EQ(address(p) % kHugePage, 0u);
  std::free(p);
  // Below 2 MiB, huge_alloc keeps the alignment asked for.
  p = xgrad::detail::huge_alloc(100, 64);
  EXPECT_EQ(address(p) % 64, 0u);
  std::free(p);
}

TEST(HugePages, GrowingAcrossTheThresholdKeepsTheValues) {
  big_vector<std::uint64_t> v;
  const std::size_t n = kHugeArray / sizeof(std::uint64_t) + 12345;
  for (std::size_t i = 0; i < n; ++i) v.push_back(i * 3);
  ASSERT_EQ(v.size(), n);
  EXPECT_EQ(address(v.data()) % kHugePage, 0u);
  std::uint64_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) bad += v[i] != i * 3;
  EXPECT_EQ(bad, 0u);
  v.resize(10);
  v.shrink_to_fit();  // back to operator new
  EXPECT_EQ(v.size(), 10u);
  EXPECT_EQ(v[9], 27u);
}

TEST(HugePages, OverlongRequestsThrowBadAlloc) {
  xgrad::detail::HugePageAllocator<double> a;
  EXPECT_THROW(static_cast<void>(a.allocate(static_cast<std::size_t>(-1) / 4)), std::bad_alloc);
  EXPECT_THROW(xgrad::detail::huge_alloc(static_cast<std::size_t>(-1) - 10, 8), std::bad_alloc);
}

}  // namespace
