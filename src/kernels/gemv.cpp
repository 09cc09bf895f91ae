// Matrix-vector kernels with a prefetch running ahead of the rows (see xgrad/kernels.hpp), compiled
// for AVX-512 and for AVX2 + FMA and chosen once, at the first call, by what the CPU has
// (AVX2 on AMD Zen 4, where it reads memory faster).
#include <algorithm>
#include <atomic>

#include "xgrad/kernels.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace xgrad::kernels {
namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define XGRAD_GEMV_X86 1

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#endif
namespace avx512 {
template <class T>
struct V;
template <>
struct V<double> {
  using type = __m512d;
  static constexpr std::size_t W = 8;
  static type zero() { return _mm512_setzero_pd(); }
  static type load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, type v) { _mm512_storeu_pd(p, v); }
  static type set1(double x) { return _mm512_set1_pd(x); }
  static type fma(type a, type b, type c) { return _mm512_fmadd_pd(a, b, c); }
  static type add(type a, type b) { return _mm512_add_pd(a, b); }
  // Summed through memory: GCC 12 warns inside every AVX-512 lane-extracting intrinsic
  // (an uninitialised placeholder operand), and this runs once per row only.
  static double sum(type v) {
    alignas(64) double t[W];
    _mm512_store_pd(t, v);
    return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
  }
};
template <>
struct V<float> {
  using type = __m512;
  static constexpr std::size_t W = 16;
  static type zero() { return _mm512_setzero_ps(); }
  static type load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, type v) { _mm512_storeu_ps(p, v); }
  static type set1(float x) { return _mm512_set1_ps(x); }
  static type fma(type a, type b, type c) { return _mm512_fmadd_ps(a, b, c); }
  static type add(type a, type b) { return _mm512_add_ps(a, b); }
  static float sum(type v) {
    alignas(64) float t[W];
    _mm512_store_ps(t, v);
    float s = 0;
    for (std::size_t i = 0; i < 8; ++i) s += t[i] + t[i + 8];
    return s;
  }
};
#include "gemv_kernels.inc"
}  // namespace avx512
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace avx2 {
template <class T>
struct V;
template <>
struct V<double> {
  using type = __m256d;
  static constexpr std::size_t W = 4;
  static type zero() { return _mm256_setzero_pd(); }
  static type load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, type v) { _mm256_storeu_pd(p, v); }
  static type set1(double x) { return _mm256_set1_pd(x); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_pd(a, b, c); }
  static type add(type a, type b) { return _mm256_add_pd(a, b); }
  static double sum(type v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};
template <>
struct V<float> {
  using type = __m256;
  static constexpr std::size_t W = 8;
  static type zero() { return _mm256_setzero_ps(); }
  static type load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, type v) { _mm256_storeu_ps(p, v); }
  static type set1(float x) { return _mm256_set1_ps(x); }
  static type fma(type a, type b, type c) { return _mm256_fmadd_ps(a, b, c); }
  static type add(type a, type b) { return _mm256_add_ps(a, b); }
  static float sum(type v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
  }
};
#include "gemv_kernels.inc"
}  // namespace avx2
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/// Instruction set of this CPU: 2 AVX-512, 1 AVX2 + FMA, 0 neither (BLAS instead).
int detected() {
  static const int l = __builtin_cpu_supports("avx512f")                                 ? 2
                       : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1
                                                                                         : 0;
  return l;
}

/// True on AMD's family 19h (Zen 3 and Zen 4; only Zen 4 has AVX-512). Zen 4 runs 512-bit
/// operations as two 256-bit halves, so AVX-512 adds no arithmetic, and it reads memory
/// more slowly with 512-bit loads than with 256-bit ones (docs/benchmarks.md, workload 2).
bool amd_family_19h() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  const bool amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
  if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return false;
  unsigned family = (a >> 8) & 0xf;
  if (family == 0xf) family += (a >> 20) & 0xff;
  return family == 0x19;
}

/// The kernels used unless gemv_limit_isa says otherwise: the best this CPU has, except
/// AVX2 on Zen 4, where it is the faster of the two.
int preferred() {
  static const int l = detected() == 2 && amd_family_19h() ? 1 : detected();
  return l;
}
#else
int detected() { return 0; }
int preferred() { return 0; }
#endif

std::atomic<int> cap{-1};  // gemv_limit_isa; -1: preferred()
// min(detected(), the cap or else preferred()), or -1 until computed: a product of a few
// elements asks for it twice (gemv_own, then the kernel), and the guarded statics cost more
// than the product.
std::atomic<int> effective{-1};

int level() {
  int l = effective.load(std::memory_order_relaxed);
  if (l < 0) {
    const int c = cap.load(std::memory_order_relaxed);
    l = std::min(detected(), c < 0 ? preferred() : c);
    effective.store(l, std::memory_order_relaxed);
  }
  return l;
}

}  // namespace

int gemv_isa() { return level(); }

int gemv_limit_isa(int isa) {
  const int old = cap.exchange(isa < 0 ? -1 : std::min(isa, 2));
  effective.store(-1, std::memory_order_relaxed);
  return old;
}

template <class T>
bool gemv_own(std::size_t cols) {
  // The output of A^T v (cols elements) is updated for every row: it must stay in L1.
  return level() > 0 && cols * sizeof(T) <= 16384;
}

template <class T>
void gemv_dots(const T* A, std::size_t rows, std::size_t cols, const T* x, T beta, T* out) {
#ifdef XGRAD_GEMV_X86
  if (level() == 2) return avx512::gemv_dots(A, rows, cols, x, beta, out);
  return avx2::gemv_dots(A, rows, cols, x, beta, out);
#else
  (void)A, (void)rows, (void)cols, (void)x, (void)beta, (void)out;
#endif
}

template <class T>
void gemv_axpys(const T* A, std::size_t rows, std::size_t cols, const T* v, T beta, T* out,
                const T* next) {
#ifdef XGRAD_GEMV_X86
  if (level() == 2) return avx512::gemv_axpys(A, rows, cols, v, beta, out, next);
  return avx2::gemv_axpys(A, rows, cols, v, beta, out, next);
#else
  (void)A, (void)rows, (void)cols, (void)v, (void)beta, (void)out, (void)next;
#endif
}

template bool gemv_own<float>(std::size_t);
template bool gemv_own<double>(std::size_t);
template void gemv_dots(const float*, std::size_t, std::size_t, const float*, float, float*);
template void gemv_dots(const double*, std::size_t, std::size_t, const double*, double, double*);
template void gemv_axpys(const float*, std::size_t, std::size_t, const float*, float, float*,
                         const float*);
template void gemv_axpys(const double*, std::size_t, std::size_t, const double*, double, double*,
                         const double*);

}  // namespace xgrad::kernels
