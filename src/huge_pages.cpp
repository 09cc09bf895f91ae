// huge_alloc and huge_free: the one place that asks the kernel for huge pages (node chunks,
// big_vector), and keeps freed blocks for the next graph.
#include "huge_pages.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace xgrad::detail {
namespace {

/// Freed blocks of whole pages (whole huge pages from kHugePage up), kept for reuse. glibc maps
/// blocks of 32 MiB and more afresh on every allocation and unmaps them on free, and gives smaller
/// ones back to the kernel when the top of its heap has more free than a threshold, so each graph
/// built after another would have the kernel fault in and clear much of its memory again (a quarter
/// of the time of building, differentiating and compiling a graph of scalar ops). The cache gives a
/// block back to the kernel once it has not been reused for a while, and never holds more than a
/// bound.
class BlockCache {
 public:
  BlockCache() { blocks_.reserve(kMaxBlocks); }
  void* take(std::size_t size) {
    std::lock_guard<std::mutex> lock(m_);
    const auto now = Clock::now();
    for (std::size_t i = blocks_.size(); i-- > 0;) {  // the most recently freed first
      if (blocks_[i].size != size) continue;
      void* p = blocks_[i].p;
      held_ -= size;
      blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(i));
      release_old(now);
      return p;
    }
    release_old(now);
    return nullptr;
  }
  void give(void* p, std::size_t size) {
    std::lock_guard<std::mutex> lock(m_);
    if (size > kMaxHeld) {
      std::free(p);
      return;
    }
    if (blocks_.size() == kMaxBlocks) release(0);
    const auto now = Clock::now();
    blocks_.push_back({p, size, now});  // within the reserved capacity: cannot throw
    held_ += size;
    while (held_ > kMaxHeld) release(0);  // the oldest first
    release_old(now);
  }
  void set_keep(std::chrono::milliseconds keep) {
    std::lock_guard<std::mutex> lock(m_);
    keep_ = keep;
  }
  std::size_t held() {
    std::lock_guard<std::mutex> lock(m_);
    return held_;
  }
  ~BlockCache() {
    for (const Block& b : blocks_) std::free(b.p);
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Block {
    void* p;
    std::size_t size;
    Clock::time_point freed;
  };
  static constexpr std::size_t kMaxHeld = std::size_t{1} << 30;
  static constexpr std::size_t kMaxBlocks = 256;

  void release(std::size_t i) {
    std::free(blocks_[i].p);
    held_ -= blocks_[i].size;
    blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(i));
  }
  void release_old(Clock::time_point now) {
    while (!blocks_.empty() && now - blocks_.front().freed > keep_) release(0);
  }

  std::mutex m_;
  std::vector<Block> blocks_;  // in the order freed
  std::size_t held_ = 0;
  // As long as jemalloc keeps freed pages by default: loops that build a graph, run it and
  // do something else for a few seconds (an eager-style training step) still reuse them.
  std::chrono::milliseconds keep_{10000};
};

BlockCache& cache() {
  static BlockCache* c = new BlockCache;  // never destroyed: blocks may be freed at exit
  return *c;
}

constexpr std::size_t kPage = 4096;

// The size of the block kept for `bytes` (kKeptBlock and more): whole huge pages from
// kHugePage up, whole pages below.
std::size_t block_size(std::size_t bytes) {
  const std::size_t unit = bytes < kHugePage ? kPage : kHugePage;
  if (bytes > static_cast<std::size_t>(-1) - unit) throw std::bad_alloc();
  return (bytes + unit - 1) / unit * unit;
}

}  // namespace

void* huge_alloc(std::size_t bytes, std::size_t align) {
  if (bytes < kKeptBlock) {
    if (bytes > static_cast<std::size_t>(-1) - align) throw std::bad_alloc();
    void* p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
    if (!p) throw std::bad_alloc();
    return p;
  }
  const std::size_t size = block_size(bytes);
  const bool huge = size >= kHugePage;
  // Kept blocks start on a page (a huge page from kHugePage up), which serves any smaller
  // alignment.
  const std::size_t unit = huge ? kHugePage : kPage;
  if (align <= unit) {
    if (void* p = cache().take(size)) return p;
  }
  void* p = std::aligned_alloc(std::max(align, unit), size);
  if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  if (huge) madvise(p, size, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
  return p;
}

void huge_free(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  if (bytes < kKeptBlock) {
    std::free(p);
    return;
  }
  try {
    cache().give(p, block_size(bytes));
  } catch (...) {  // no room to record it
    std::free(p);
  }
}

std::size_t huge_cached_bytes() { return cache().held(); }

void set_huge_cache_keep(std::chrono::milliseconds keep) { cache().set_keep(keep); }

}  // namespace xgrad::detail
