// The allocator of the library's large internal arrays (src/huge_pages.hpp): arrays of
// kHugePage and more start on a huge page boundary, smaller ones come from operator new,
// a vector (and a graph's AppendArray) keeps its contents when it grows across the
// threshold, and freed blocks of kKeptBlock and more are reused for a while, then given back.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <thread>

#include "../src/huge_pages.hpp"

namespace {

using xgrad::detail::big_vector;
using xgrad::detail::kHugePage;
using xgrad::detail::kKeptBlock;

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

TEST(HugePages, LargeArraysStartOnAHugePage) {
  big_vector<std::uint32_t> v(4 * kHugePage / sizeof(std::uint32_t));
  EXPECT_EQ(address(v.data()) % kHugePage, 0u);
  v.back() = 7;  // the whole array is usable
  EXPECT_EQ(v.back(), 7u);
  void* p = xgrad::detail::huge_alloc(kHugePage + 1, 8);
  EXPECT_EQ(address(p) % kHugePage, 0u);
  xgrad::detail::huge_free(p, kHugePage + 1);
  // Below 2 MiB, huge_alloc keeps the alignment asked for.
  p = xgrad::detail::huge_alloc(100, 64);
  EXPECT_EQ(address(p) % 64, 0u);
  xgrad::detail::huge_free(p, 100);
}

TEST(HugePages, GrowingAcrossTheThresholdKeepsTheValues) {
  big_vector<std::uint64_t> v;
  const std::size_t n = 4 * kHugePage / sizeof(std::uint64_t) + 12345;
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

// A graph's bookkeeping arrays: the same growth, and appending one of the array's own values
// when the append reallocates (the value is read before the old buffer is freed).
TEST(HugePages, AppendArrayGrowsAcrossTheThresholdAndAppendsItsOwnValues) {
  xgrad::detail::AppendArray<std::uint64_t> v;
  EXPECT_EQ(v.size(), 0u);
  const std::size_t n = 4 * kHugePage / sizeof(std::uint64_t) + 12345;
  std::size_t self_appends_at_growth = 0;
  v.push_back(5);
  for (std::size_t i = 1; i < n; ++i) {
    if (v.size() == v.capacity()) {
      ++self_appends_at_growth;
      v.push_back(v[0]);  // x refers into the buffer being replaced
      EXPECT_EQ(v[i], 5u) << "at size " << i;
      v[i] = i * 3;
      continue;
    }
    v.push_back(i * 3);
  }
  ASSERT_EQ(v.size(), n);
  EXPECT_GE(v.capacity(), n);
  EXPECT_GT(self_appends_at_growth, 5u);  // the aliasing case was exercised repeatedly
  EXPECT_EQ(address(v.data()) % kHugePage, 0u);
  std::uint64_t bad = v[0] != 5;
  for (std::size_t i = 1; i < n; ++i) bad += v[i] != i * 3;
  EXPECT_EQ(bad, 0u);
}

TEST(HugePages, OverlongRequestsThrowBadAlloc) {
  xgrad::detail::HugePageAllocator<double> a;
  EXPECT_THROW(static_cast<void>(a.allocate(static_cast<std::size_t>(-1) / 4)), std::bad_alloc);
  EXPECT_THROW(xgrad::detail::huge_alloc(static_cast<std::size_t>(-1) - 10, 8), std::bad_alloc);
}

TEST(HugePages, FreedLargeBlocksAreReusedThenGivenBack) {
  using xgrad::detail::huge_alloc;
  using xgrad::detail::huge_cached_bytes;
  using xgrad::detail::huge_free;
  const std::size_t size = 5 * kHugePage;
  void* p = huge_alloc(size, 8);
  std::memset(p, 1, size);
  const std::size_t before = huge_cached_bytes();
  huge_free(p, size);
  EXPECT_EQ(huge_cached_bytes(), before + size);
  // The same size gets the same block back; another size does not.
  void* q = huge_alloc(size + kHugePage, 8);
  EXPECT_NE(q, p);
  void* r = huge_alloc(size - 100, 8);  // the same number of huge pages
  EXPECT_EQ(r, p);
  EXPECT_EQ(address(r) % kHugePage, 0u);
  EXPECT_EQ(static_cast<unsigned char*>(r)[size - 1], 1);  // memory reused, not refaulted
  huge_free(q, size + kHugePage);
  huge_free(r, size - 100);
  EXPECT_GE(huge_cached_bytes(), 2 * size + kHugePage);
  // Blocks not reused in time (ten seconds; here 200 ms) go back at the next large
  // allocation.
  xgrad::detail::set_huge_cache_keep(std::chrono::milliseconds(200));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  void* s = huge_alloc(kHugePage, 8);
  EXPECT_EQ(huge_cached_bytes(), 0u);
  huge_free(s, kHugePage);
  EXPECT_EQ(huge_cached_bytes(), kHugePage);
  // Blocks from kKeptBlock to kHugePage are kept in whole 4 KiB pages, and come back for
  // the same number of pages.
  const std::size_t mid = 25 * 4096 + 100;
  void* t = huge_alloc(mid, 64);
  EXPECT_EQ(address(t) % 4096, 0u);
  std::memset(t, 2, mid);
  huge_free(t, mid);
  EXPECT_EQ(huge_cached_bytes(), kHugePage + 26 * 4096);
  void* u = huge_alloc(26 * 4096, 8);
  EXPECT_EQ(u, t);
  EXPECT_EQ(static_cast<unsigned char*>(u)[mid - 1], 2);
  huge_free(u, 26 * 4096);
  // Blocks below kKeptBlock are never kept.
  void* v = huge_alloc(kKeptBlock - 1, 8);
  huge_free(v, kKeptBlock - 1);
  EXPECT_EQ(huge_cached_bytes(), kHugePage + 26 * 4096);
  xgrad::detail::set_huge_cache_keep(std::chrono::seconds(10));
}

}  // namespace
