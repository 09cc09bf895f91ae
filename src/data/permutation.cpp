// Seeded permutations in constant memory (see include/xgrad/data/permutation.hpp for the
// algorithm, which fixes every order).
#include "xgrad/data/permutation.hpp"

#include <string>

namespace xgrad::data {

Permutation::Permutation(std::size_t n, std::uint64_t seed, std::uint64_t stream, std::size_t block)
    : n_(n), identity_(false), block_(block) {
  if (block == 0) {
    throw ValueError("Permutation: block 0 (of " + std::to_string(n) +
                     " elements): expected at least 1 element per block");
  }
  blocks_ = n / block + (n % block != 0);
  unsigned bits = 2;
  while (bits < 64 && (std::uint64_t{1} << bits) < blocks_) bits += 2;
  half_ = bits / 2;
  mask_ = (std::uint64_t{1} << half_) - 1;
  const std::uint64_t s =
      mix64(mix64(seed ^ 0x5851f42d4c957f2dULL) ^ (stream + 0x14057b7ef767814fULL));
  for (std::size_t r = 0; r < keys_.size(); ++r)
    keys_[r] = mix64(s + (r + 1) * 0x9e3779b97f4a7c15ULL);
  if (blocks_ > 0) {
    last_ = n - (blocks_ - 1) * block;
    last_at_ = walk_decrypt(blocks_ - 1);
  }
}

std::size_t Permutation::operator()(std::size_t i) const {
  if (identity_) return i;
  if (block_ == 1) return walk_encrypt(i);
  const std::size_t t = slot(i);
  return walk_encrypt(t / block_) * block_ + t % block_;
}

void Permutation::fill(std::size_t first, std::span<std::size_t> out) const {
  // The natural order and single-element blocks in loops of their own: a batch in file
  // order would otherwise pay a call per element.
  if (identity_) {
    for (std::size_t k = 0; k < out.size(); ++k) out[k] = first + k;
    return;
  }
  if (block_ == 1) {
    for (std::size_t k = 0; k < out.size(); ++k) out[k] = walk_encrypt(first + k);
    return;
  }
  for (std::size_t k = 0; k < out.size();) {
    const std::size_t i = first + k;
    const std::size_t t = slot(i);
    const std::size_t b = t / block_, off = t % block_;
    const std::size_t run = (b == last_at_ ? last_ : block_) - off;  // to the block's end
    std::size_t e = walk_encrypt(b) * block_ + off;
    for (std::size_t j = 0; j < run && k < out.size(); ++j) out[k++] = e++;
  }
}

std::size_t Permutation::inverse(std::size_t x) const {
  if (identity_) return x;
  if (block_ == 1) return walk_decrypt(x);
  const std::size_t j = walk_decrypt(x / block_), pos = j * block_ + x % block_;
  return j > last_at_ ? pos - (block_ - last_) : pos;
}

std::size_t Permutation::walk_encrypt(std::uint64_t x) const {
  do x = encrypt(x);
  while (x >= blocks_);
  return static_cast<std::size_t>(x);
}

std::size_t Permutation::walk_decrypt(std::uint64_t x) const {
  do x = decrypt(x);
  while (x >= blocks_);
  return static_cast<std::size_t>(x);
}

std::uint64_t Permutation::encrypt(std::uint64_t x) const {
  std::uint64_t l = x >> half_, r = x & mask_;
  for (std::uint64_t k : keys_) {
    const std::uint64_t t = l ^ (mix64(r ^ k) & mask_);
    l = r;
    r = t;
  }
  return (l << half_) | r;
}

std::uint64_t Permutation::decrypt(std::uint64_t x) const {
  std::uint64_t l = x >> half_, r = x & mask_;
  for (auto k = keys_.rbegin(); k != keys_.rend(); ++k) {
    const std::uint64_t t = r ^ (mix64(l ^ *k) & mask_);
    r = l;
    l = t;
  }
  return (l << half_) | r;
}

}  // namespace xgrad::data
