// Helpers shared by every test file.
#pragma once

#include <cstddef>
#include <random>
#include <string>
#include <vector>
#include <xgrad/threads.hpp>
#include <xtensor/xarray.hpp>

// XGRAD_TEST_ASAN: defined in an AddressSanitizer build (GCC says so by a macro, Clang by
// __has_feature), whose allocator aborts on requests a plain build refuses by throwing.
#if defined(__SANITIZE_ADDRESS__)
#define XGRAD_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XGRAD_TEST_ASAN 1
#endif
#endif

namespace xgrad_test {

/// Whether `sub` occurs in `s`: error messages are checked for the parts they must name.
inline bool contains(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

/// Uniform reals in [lo, hi), rounded to T.
template <class T>
xt::xarray<T> uniform(std::vector<std::size_t> shape, unsigned seed, double lo = -1,
                      double hi = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
  for (auto& v : a) v = static_cast<T>(u(rng));
  return a;
}

/// Sets the thread count for a scope and restores the previous one.
class Threads {
 public:
  explicit Threads(int n) : old_(xgrad::num_threads()) { xgrad::set_num_threads(n); }
  ~Threads() { xgrad::set_num_threads(old_); }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;

 private:
  int old_;
};

}  // namespace xgrad_test

/// The number of rows of an op table of include/xgrad/ops/ (XGRAD_ELEMENTWISE_OPS, ...).
/// Test files state the counts they cover in a static_assert, the way ggml guards its op
/// tables with static_assert(GGML_OP_COUNT == N): a row added without its tests stops
/// the build there.
#define XGRAD_TEST_ROWS(table) (0 table(XGRAD_TEST_ONE_ROW))
/// One row of an op table, for XGRAD_TEST_ROWS.
#define XGRAD_TEST_ONE_ROW(...) +1
/// The name of a row of XGRAD_ELEMENTWISE_OPS, as a string.
#define XGRAD_TEST_ROW_NAME(kind, name, ...) #name,
