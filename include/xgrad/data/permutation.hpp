/// @file permutation.hpp
/// @brief Seeded permutations of 0..n-1 computed index by index in constant memory, so
/// that shuffling a data set of any size costs no memory and any epoch's order can be
/// recomputed on its own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace xgrad::data {

/// SplitMix64's output function: a fixed 64-bit mixer (bijective, avalanching). Part of
/// the documented permutation algorithm, so orders are the same on every platform.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A bijection of {0, ..., n-1}: either the identity or a pseudo-random permutation
/// determined by (n, seed, stream). It is evaluated per index in O(1) time and memory
/// (no table of n entries), so a data set of 10^9 rows is shuffled without 8 GB of
/// indices.
///
/// Algorithm (fixed, so orders reproduce bit for bit across platforms and versions):
/// a balanced Feistel network of 6 rounds on the smallest even number of bits b with
/// 2^b >= n, round function mix64(half ^ key_r) masked to b/2 bits, round keys
/// key_r = mix64(s + (r + 1) * 0x9e3779b97f4a7c15) with
/// s = mix64(mix64(seed ^ 0x5851f42d4c957f2d) ^ (stream + 0x14057b7ef767814f)); values
/// that land outside [0, n) are encrypted again ("cycle walking"), at most a few times
/// on average since 2^b < 4n.
class Permutation {
 public:
  /// The empty permutation (size 0).
  Permutation() = default;
  /// A pseudo-random permutation of n elements; different (seed, stream) pairs give
  /// independent-looking orders (the loader uses the epoch number as the stream).
  Permutation(std::size_t n, std::uint64_t seed, std::uint64_t stream) : n_(n), identity_(false) {
    unsigned bits = 2;
    while (bits < 64 && (std::uint64_t{1} << bits) < n) bits += 2;
    half_ = bits / 2;
    mask_ = (std::uint64_t{1} << half_) - 1;
    const std::uint64_t s =
        mix64(mix64(seed ^ 0x5851f42d4c957f2dULL) ^ (stream + 0x14057b7ef767814fULL));
    for (std::size_t r = 0; r < keys_.size(); ++r)
      keys_[r] = mix64(s + (r + 1) * 0x9e3779b97f4a7c15ULL);
  }
  /// The identity permutation of n elements (the natural order).
  static Permutation identity(std::size_t n) {
    Permutation p;
    p.n_ = n;
    return p;
  }

  /// Number of elements.
  std::size_t size() const { return n_; }
  /// True for the natural order.
  bool is_identity() const { return identity_; }
  /// The element at position i (i < size(); not checked).
  std::size_t operator()(std::size_t i) const {
    if (identity_) return i;
    std::uint64_t x = i;
    do x = encrypt(x);
    while (x >= n_);
    return static_cast<std::size_t>(x);
  }

 private:
  std::uint64_t encrypt(std::uint64_t x) const {
    std::uint64_t l = x >> half_, r = x & mask_;
    for (std::uint64_t k : keys_) {
      const std::uint64_t t = l ^ (mix64(r ^ k) & mask_);
      l = r;
      r = t;
    }
    return (l << half_) | r;
  }

  std::size_t n_ = 0;
  bool identity_ = true;
  unsigned half_ = 1;
  std::uint64_t mask_ = 1;
  std::array<std::uint64_t, 6> keys_{};
};

}  // namespace xgrad::data
