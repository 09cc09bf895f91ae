// Counting replacements of the global allocation functions, shared by the allocation
// tests (tests/alloc/test_*.cpp: a planned Function must not allocate) and the workload
// benchmarks (bench/harness.hpp: heap allocations per steady-state run, xgrad vs LibTorch).
//
// Include this header in exactly one translation unit per program: it defines the
// replaceable global operator new / operator delete (every overload) and, on glibc without
// AddressSanitizer, the malloc family (malloc, calloc, realloc, free, memalign,
// aligned_alloc, posix_memalign), which forward to glibc's __libc_* entry points, so
// memory from any of them may be released by any other. Under ASan its own malloc stays,
// and only operator new is counted (counts_malloc is false).
//
// count_allocations(f) counts the calls made while f runs (free and delete are not
// counted), split by kind (operator new, malloc family) and by caller, from the return
// address: code of this executable (xgrad is linked statically, xtensor is header-only)
// or a shared library (libstdc++, OpenBLAS, LibTorch). operator new takes its memory from
// __libc_malloc directly, so each allocation is counted once, where it was asked for.
// The caller split uses the bounds of the executable's code from the GNU linker and is
// made where malloc is counted; elsewhere every call counts as this executable's.
// The malloc family also catches xtensor containers: xsimd's aligned allocator calls
// malloc, not operator new.
//
// GCC may warn about free() inside a replacement operator delete once new and delete get
// inlined (-Wmismatched-new-delete, PR103993); the tests build with -Wno-mismatched-new-delete.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

#include "../test_util.hpp"  // XGRAD_TEST_ASAN

#if defined(__GLIBC__) && !defined(XGRAD_TEST_ASAN)
#define XGRAD_ALLOC_COUNT_MALLOC 1
#endif

namespace alloc_counting {

/// Whether the malloc family is counted (glibc without ASan); operator new always is.
#ifdef XGRAD_ALLOC_COUNT_MALLOC
inline constexpr bool counts_malloc = true;
#else
inline constexpr bool counts_malloc = false;
#endif

/// Allocation calls made while a function ran, by kind and by caller.
struct Counts {
  long new_own = 0;         // operator new, called from this executable's code
  long new_foreign = 0;     // operator new, called from a shared library
  long malloc_own = 0;      // malloc family, from this executable (0 unless counts_malloc)
  long malloc_foreign = 0;  // malloc family, from a shared library (0 unless counts_malloc)

  long news() const { return new_own + new_foreign; }
  long own() const { return new_own + malloc_own; }
  long foreign() const { return new_foreign + malloc_foreign; }
};

namespace detail {
inline std::atomic<bool> enabled{false};
inline std::atomic<long> new_own{0};
inline std::atomic<long> new_foreign{0};
inline std::atomic<long> malloc_own{0};
inline std::atomic<long> malloc_foreign{0};
}  // namespace detail

/// Counts the allocation calls made while f runs (on any thread).
template <class F>
Counts count_allocations(F&& f) {
  using namespace detail;
  new_own.store(0);
  new_foreign.store(0);
  malloc_own.store(0);
  malloc_foreign.store(0);
  enabled.store(true);
  std::forward<F>(f)();
  enabled.store(false);
  return {new_own.load(), new_foreign.load(), malloc_own.load(), malloc_foreign.load()};
}

}  // namespace alloc_counting

// ------------------------------------------------------------------ raw memory, callers

#ifdef XGRAD_ALLOC_COUNT_MALLOC
// Bounds of this executable's code, provided by the GNU linker.
extern "C" char __executable_start[];
extern "C" char __etext[];
// glibc's own allocator entry points, which the replacements below forward to.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* __libc_memalign(std::size_t, std::size_t);
}
#endif

namespace alloc_counting::detail {
#ifdef XGRAD_ALLOC_COUNT_MALLOC
inline bool from_this_executable(const void* from) {
  auto a = reinterpret_cast<std::uintptr_t>(from);
  return a >= reinterpret_cast<std::uintptr_t>(__executable_start) &&
         a < reinterpret_cast<std::uintptr_t>(__etext);
}
inline void* raw_alloc(std::size_t n) { return __libc_malloc(n ? n : 1); }
inline void* raw_aligned(std::size_t n, std::size_t align) {
  return __libc_memalign(align, n ? n : 1);
}
inline void raw_free(void* p) { __libc_free(p); }
#else
inline bool from_this_executable(const void*) { return true; }
inline void* raw_alloc(std::size_t n) { return std::malloc(n ? n : 1); }
inline void* raw_aligned(std::size_t n, std::size_t align) {
  std::size_t size = (n + align - 1) / align * align;  // aligned_alloc wants a multiple
  return std::aligned_alloc(align, size ? size : align);
}
inline void raw_free(void* p) { std::free(p); }
#endif

// Counts one call of the given kind made from return address `from`.
inline void count(std::atomic<long>& own, std::atomic<long>& foreign, const void* from) {
  if (!enabled.load(std::memory_order_relaxed)) return;
  (from_this_executable(from) ? own : foreign).fetch_add(1, std::memory_order_relaxed);
}

inline std::size_t new_alignment(std::align_val_t a) {
  std::size_t align = static_cast<std::size_t>(a);
  return align < sizeof(void*) ? sizeof(void*) : align;
}
inline void* counted_new(std::size_t n, const void* from) {
  count(new_own, new_foreign, from);
  if (void* p = raw_alloc(n)) return p;
  throw std::bad_alloc();
}
inline void* counted_new(std::size_t n, std::align_val_t a, const void* from) {
  count(new_own, new_foreign, from);
  if (void* p = raw_aligned(n, new_alignment(a))) return p;
  throw std::bad_alloc();
}
inline void* counted_new_nothrow(std::size_t n, const void* from) noexcept {
  count(new_own, new_foreign, from);
  return raw_alloc(n);
}
inline void* counted_new_nothrow(std::size_t n, std::align_val_t a, const void* from) noexcept {
  count(new_own, new_foreign, from);
  return raw_aligned(n, new_alignment(a));
}
}  // namespace alloc_counting::detail

// ------------------------------------------------------------------ the malloc family

#ifdef XGRAD_ALLOC_COUNT_MALLOC
// noinline: the return address must be the caller's.
#define XGRAD_ALLOC_COUNT_MALLOC_CALL()                                 \
  alloc_counting::detail::count(alloc_counting::detail::malloc_own,     \
                                alloc_counting::detail::malloc_foreign, \
                                __builtin_return_address(0))
extern "C" {
__attribute__((noinline)) void* malloc(std::size_t n) noexcept {
  XGRAD_ALLOC_COUNT_MALLOC_CALL();
  return __libc_malloc(n);
}
__attribute__((noinline)) void* calloc(std::size_t k, std::size_t n) noexcept {
  XGRAD_ALLOC_COUNT_MALLOC_CALL();
  return __libc_calloc(k, n);
}
__attribute__((noinline)) void* realloc(void* p, std::size_t n) noexcept {
  XGRAD_ALLOC_COUNT_MALLOC_CALL();
  return __libc_realloc(p, n);
}
void free(void* p) noexcept { __libc_free(p); }
__attribute__((noinline)) void* memalign(std::size_t align, std::size_t n) noexcept {
  XGRAD_ALLOC_COUNT_MALLOC_CALL();
  return __libc_memalign(align, n);
}
__attribute__((noinline)) void* aligned_alloc(std::size_t align, std::size_t n) noexcept {
  XGRAD_ALLOC_COUNT_MALLOC_CALL();
  return __libc_memalign(align, n);
}
__attribute__((noinline)) int posix_memalign(void** out, std::size_t align,
                                             std::size_t n) noexcept {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  XGRAD_ALLOC_COUNT_MALLOC_CALL();
  void* p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}  // extern "C"
#undef XGRAD_ALLOC_COUNT_MALLOC_CALL
#endif

// ------------------------------------------------------------------ operator new / delete

// noinline: the return address must be the caller's.
#define XGRAD_ALLOC_FROM __builtin_return_address(0)
__attribute__((noinline)) void* operator new(std::size_t n) {
  return alloc_counting::detail::counted_new(n, XGRAD_ALLOC_FROM);
}
__attribute__((noinline)) void* operator new[](std::size_t n) {
  return alloc_counting::detail::counted_new(n, XGRAD_ALLOC_FROM);
}
__attribute__((noinline)) void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return alloc_counting::detail::counted_new_nothrow(n, XGRAD_ALLOC_FROM);
}
__attribute__((noinline)) void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return alloc_counting::detail::counted_new_nothrow(n, XGRAD_ALLOC_FROM);
}
__attribute__((noinline)) void* operator new(std::size_t n, std::align_val_t a) {
  return alloc_counting::detail::counted_new(n, a, XGRAD_ALLOC_FROM);
}
__attribute__((noinline)) void* operator new[](std::size_t n, std::align_val_t a) {
  return alloc_counting::detail::counted_new(n, a, XGRAD_ALLOC_FROM);
}
__attribute__((noinline)) void* operator new(std::size_t n, std::align_val_t a,
                                             const std::nothrow_t&) noexcept {
  return alloc_counting::detail::counted_new_nothrow(n, a, XGRAD_ALLOC_FROM);
}
__attribute__((noinline)) void* operator new[](std::size_t n, std::align_val_t a,
                                               const std::nothrow_t&) noexcept {
  return alloc_counting::detail::counted_new_nothrow(n, a, XGRAD_ALLOC_FROM);
}
#undef XGRAD_ALLOC_FROM

void operator delete(void* p) noexcept { alloc_counting::detail::raw_free(p); }
void operator delete[](void* p) noexcept { alloc_counting::detail::raw_free(p); }
void operator delete(void* p, std::size_t) noexcept { alloc_counting::detail::raw_free(p); }
void operator delete[](void* p, std::size_t) noexcept { alloc_counting::detail::raw_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept {
  alloc_counting::detail::raw_free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  alloc_counting::detail::raw_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept { alloc_counting::detail::raw_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { alloc_counting::detail::raw_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  alloc_counting::detail::raw_free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  alloc_counting::detail::raw_free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  alloc_counting::detail::raw_free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  alloc_counting::detail::raw_free(p);
}
