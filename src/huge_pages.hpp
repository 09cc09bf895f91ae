// Large internal arrays on transparent huge pages (include/xgrad/detail/huge_pages.hpp). A
// graph of half a million nodes, its gradient and its plan fill arrays of tens of
// megabytes: on 4 KiB pages each graph built costs a page fault per 4 KiB, about as much
// time as the work done on the memory; on 2 MiB pages, one per 2 MiB, and none for blocks
// kept from the graph before (docs/benchmarks.md has the figures). Internal to src/.
#pragma once

#include <chrono>
#include <cstddef>

#include "xgrad/detail/huge_pages.hpp"

namespace xgrad::detail {

/// Bytes of freed blocks huge_free keeps for reuse (for tests).
std::size_t huge_cached_bytes();

/// How long huge_free keeps a block (for tests; ten seconds unless set).
void set_huge_cache_keep(std::chrono::milliseconds keep);

}  // namespace xgrad::detail
