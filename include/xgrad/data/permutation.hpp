/// @file permutation.hpp
/// @brief Seeded permutations of 0..n-1 computed index by index in constant memory, so
/// that shuffling a data set of any size costs no memory and any epoch's order can be
/// recomputed on its own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "xgrad/error.hpp"

namespace xgrad::data {

/// SplitMix64's output function: a fixed 64-bit mixer (bijective, avalanching). Part of
/// the documented permutation algorithm, so orders are the same on every platform.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A bijection of {0, ..., n-1}: either the identity or a pseudo-random permutation
/// determined by (n, seed, stream, block). It is evaluated per index in O(1) time and
/// memory (no table of n entries), so a data set of 10^9 rows is shuffled without 8 GB of
/// indices.
///
/// Algorithm (fixed, so orders reproduce bit for bit across platforms and versions):
/// a balanced Feistel network of 6 rounds on the smallest even number of bits b with
/// 2^b >= n, round function mix64(half ^ key_r) masked to b/2 bits, round keys
/// key_r = mix64(s + (r + 1) * 0x9e3779b97f4a7c15) with
/// s = mix64(mix64(seed ^ 0x5851f42d4c957f2d) ^ (stream + 0x14057b7ef767814f)); values
/// that land outside [0, n) are encrypted again ("cycle walking"), at most a few times
/// on average since 2^b < 4n. The inverse runs the rounds backwards (keys in reverse
/// order), cycle-walking the same way.
///
/// Blocks (block B > 1): the elements are cut into nb = ceil(n / B) blocks of B
/// consecutive elements, block k holding kB, kB + 1, ...; the last one holds
/// r = n - (nb - 1) B elements (1 <= r <= B). Let P be the block-1 permutation of nb
/// elements with the same (seed, stream), and q = P^-1(nb - 1) the position of the short
/// block. Position i maps to t = i when i < qB + r, else t = i + B - r (blocks after the
/// short one start B - r positions earlier), and then to element P(t / B) B + t % B: the
/// blocks in P's order, the elements of a block in their natural order. Block 1 is the
/// plain permutation above; a block of n or more elements gives the natural order.
class Permutation {
 public:
  /// The empty permutation (size 0).
  Permutation() = default;
  /// A pseudo-random permutation of n elements; different (seed, stream) pairs give
  /// independent-looking orders (the loader uses the epoch number as the stream).
  Permutation(std::size_t n, std::uint64_t seed, std::uint64_t stream)
      : Permutation(n, seed, stream, 1) {}
  /// A pseudo-random order of runs of `block` consecutive elements (see the class
  /// comment): runs can be read from storage in one piece, at the price of a coarser
  /// shuffle. Throws ValueError for a block of 0.
  Permutation(std::size_t n, std::uint64_t seed, std::uint64_t stream, std::size_t block);
  /// The identity permutation of n elements (the natural order).
  static Permutation identity(std::size_t n) {
    Permutation p;
    p.n_ = n;
    return p;
  }

  /// Number of elements.
  std::size_t size() const { return n_; }
  /// Elements per block: consecutive elements that stay together, in order (1 for the
  /// identity).
  std::size_t block() const { return block_; }
  /// True for the natural order.
  bool is_identity() const { return identity_; }
  /// The element at position i (i < size(); not checked).
  std::size_t operator()(std::size_t i) const;
  /// Writes the elements at positions first, first + 1, ... into out (first +
  /// out.size() <= size(); not checked), with one lookup per run of a block instead of
  /// one per element: how the loader lists a batch.
  void fill(std::size_t first, std::span<std::size_t> out) const;
  /// The position of element x (x < size(); not checked): p(p.inverse(x)) == x and
  /// p.inverse(p(i)) == i, in O(1) like operator().
  std::size_t inverse(std::size_t x) const;

 private:
  // Position i in a sequence of blocks that are all full: positions after the short
  // block move on by the B - r elements it lacks.
  std::size_t slot(std::size_t i) const {
    return i < last_at_ * block_ + last_ ? i : i + (block_ - last_);
  }
  // The block-1 permutation of blocks_ elements and its inverse.
  std::size_t walk_encrypt(std::uint64_t x) const;
  std::size_t walk_decrypt(std::uint64_t x) const;
  std::uint64_t encrypt(std::uint64_t x) const;
  std::uint64_t decrypt(std::uint64_t x) const;

  std::size_t n_ = 0;
  bool identity_ = true;
  unsigned half_ = 1;
  std::uint64_t mask_ = 1;
  std::array<std::uint64_t, 6> keys_{};
  std::size_t block_ = 1;
  std::size_t blocks_ = 0;   // nb = ceil(n / block), the Feistel network's domain
  std::size_t last_ = 0;     // r, elements in the last block
  std::size_t last_at_ = 0;  // q, the last block's position among the blocks
};

}  // namespace xgrad::data
