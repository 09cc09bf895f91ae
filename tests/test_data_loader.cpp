// Minibatches as the seed's SGD section describes them, checked as properties over many
// data set and batch sizes: each example once per epoch, disjoint batches of the right
// sizes, a fresh order every epoch that any one epoch reproduces on its own, the natural
// order without shuffling; plus prefetching, splits and binding batches to a Function.
// Block shuffling is checked the same way, against the documented algorithm, and by the
// reads it saves on a .npy file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <xgrad/data/data.hpp>
#include <xgrad/xgrad.hpp>

#include "data_test_util.hpp"
#include "test_util.hpp"

namespace {

using xgrad::data::Batch;
using xgrad::data::DataError;
using xgrad::data::DataLoader;
using xgrad::data::Dataset;
using xgrad::data::Permutation;
using xgrad::data::TensorDataset;

using xgrad_test::contains;
using xgrad_test::TempDir;

// Example i has features (i, -i) and target 2i, so a batch's content shows its indices.
TensorDataset<double, std::int64_t> range_data(std::size_t n) {
  xt::xarray<double> x = xt::xarray<double>::from_shape({n, 2});
  xt::xarray<std::int64_t> y = xt::xarray<std::int64_t>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) {
    x(i, 0) = double(i);
    x(i, 1) = -double(i);
    y(i) = 2 * std::int64_t(i);
  }
  return {std::move(x), std::move(y)};
}

// Indices of each batch of one epoch, checking that the content matches the indices.
std::vector<std::vector<std::size_t>> epoch_batches(const DataLoader<double, std::int64_t>& l,
                                                    std::size_t e) {
  std::vector<std::vector<std::size_t>> out;
  for (const auto& b : l.epoch(e)) {
    EXPECT_EQ(b.features.shape(0), b.size());
    EXPECT_EQ(b.targets.shape(0), b.size());
    for (std::size_t k = 0; k < b.size(); ++k) {
      EXPECT_EQ(b.features(k, 0), double(b.indices[k]));
      EXPECT_EQ(b.features(k, 1), -double(b.indices[k]));
      EXPECT_EQ(b.targets(k), 2 * std::int64_t(b.indices[k]));
    }
    out.push_back(b.indices);
  }
  return out;
}

std::vector<std::size_t> flat(const std::vector<std::vector<std::size_t>>& bs) {
  std::vector<std::size_t> v;
  for (const auto& b : bs) v.insert(v.end(), b.begin(), b.end());
  return v;
}

// The batches of epoch e: num_batches() of them, all of bs indices but a shorter last one
// (none with drop_last), each as batch_indices lists it; their indices, in order, in *all.
void check_epoch_batches(const DataLoader<double, std::int64_t>& loader, std::size_t e,
                         std::size_t n, std::size_t bs, bool drop_last,
                         std::vector<std::size_t>* all) {
  const std::size_t nb = loader.num_batches();
  const auto batches = epoch_batches(loader, e);
  ASSERT_EQ(batches.size(), nb);
  for (std::size_t b = 0; b < nb; ++b) {
    const std::size_t want = (b + 1 < nb || drop_last) ? bs : n - (nb - 1) * bs;
    ASSERT_EQ(batches[b].size(), want);
    ASSERT_EQ(batches[b], loader.batch_indices(e, b));  // random access agrees
  }
  *all = flat(batches);
  ASSERT_EQ(all->size(), loader.examples_per_epoch());
}

const std::size_t kSizes[] = {1, 2, 3, 5, 7, 8, 10, 31, 64, 100, 257, 1000};
const std::size_t kBatchSizes[] = {1, 2, 3, 4, 7, 10, 32, 64, 100, 999, 1000, 5000};

TEST(LoaderProperty, EachIndexOncePerEpochInDisjointBatchesOfTheRightSizes) {
  for (std::size_t n : kSizes) {
    const auto data = range_data(n);
    for (std::size_t bs : kBatchSizes) {
      for (bool shuffle : {false, true}) {
        for (bool drop_last : {false, true}) {
          SCOPED_TRACE("n=" + std::to_string(n) + " batch=" + std::to_string(bs) + " shuffle=" +
                       std::to_string(shuffle) + " drop_last=" + std::to_string(drop_last));
          if (drop_last && bs > n) {
            EXPECT_THROW(
                (DataLoader(
                    data,
                    {.batch_size = bs, .shuffle = shuffle, .seed = 7, .drop_last = drop_last})),
                DataError);
            continue;
          }
          // Alternate prefetching and in-thread gathering: both must behave the same.
          DataLoader loader(data, {.batch_size = bs,
                                   .shuffle = shuffle,
                                   .seed = 7,
                                   .drop_last = drop_last,
                                   .prefetch = (n + bs) % 3});
          const std::size_t nb = drop_last ? n / bs : (n + bs - 1) / bs;
          ASSERT_EQ(loader.num_batches(), nb);
          for (std::size_t e = 0; e < 2; ++e) {
            std::vector<std::size_t> all;
            ASSERT_NO_FATAL_FAILURE(check_epoch_batches(loader, e, n, bs, drop_last, &all));
            ASSERT_EQ(all.size(), drop_last ? nb * bs : n);
            std::vector<int> seen(n, 0);
            for (std::size_t i : all) {
              ASSERT_LT(i, n);
              ASSERT_EQ(++seen[i], 1) << "index " << i << " twice in epoch " << e;
            }
            if (!shuffle) {
              std::vector<std::size_t> natural(all.size());
              std::iota(natural.begin(), natural.end(), std::size_t{0});
              ASSERT_EQ(all, natural);
            }
          }
        }
      }
    }
  }
}

TEST(LoaderProperty, EpochsDifferAndShuffleOffDoesNot) {
  for (std::size_t n : kSizes) {
    if (n < 2) continue;
    const auto data = range_data(n);
    DataLoader loader(data, {.batch_size = 3, .seed = 11});
    DataLoader plain(data, {.batch_size = 3, .shuffle = false, .seed = 11});
    std::set<std::vector<std::size_t>> orders;
    for (std::size_t e = 0; e < 12; ++e) {
      const auto order = flat(epoch_batches(loader, e));
      orders.insert(order);
      if (n >= 10 && e > 0) {
        EXPECT_NE(order, flat(epoch_batches(loader, e - 1))) << "n=" << n << " epoch " << e;
      }
      EXPECT_EQ(flat(epoch_batches(plain, e)), flat(epoch_batches(plain, 0)));
    }
    // Two elements have 2 orders; from 3 on, 12 epochs must show several.
    EXPECT_GE(orders.size(), n == 2 ? 2u : 3u) << "n=" << n;
  }
}

TEST(LoaderProperty, SameSeedReproducesAnyEpochBitForBit) {
  for (std::size_t n : {10u, 257u, 1000u}) {
    const auto data = range_data(n);
    for (std::size_t bs : {1u, 7u, 64u}) {
      DataLoader a(data, {.batch_size = bs, .seed = 1234, .prefetch = 2});
      std::vector<std::vector<std::size_t>> third;
      for (std::size_t e = 0; e < 4; ++e) third = epoch_batches(a, e);
      // A fresh loader goes straight to epoch 3, without the epochs before it.
      DataLoader b(data, {.batch_size = bs, .seed = 1234, .prefetch = 0});
      EXPECT_EQ(epoch_batches(b, 3), third);
      // Bytes too, not only indices.
      std::size_t k = 0;
      for (const auto& batch : b.epoch(3)) {
        const auto again = a.batch(3, k++);
        ASSERT_EQ(0, std::memcmp(batch.features.data(), again.features.data(),
                                 batch.features.size() * sizeof(double)));
      }
      DataLoader c(data, {.batch_size = bs, .seed = 1235});
      EXPECT_NE(flat(epoch_batches(c, 3)), flat(third)) << "another seed, same order";
    }
  }
}

TEST(LoaderPermutation, IsABijectionForManySizes) {
  std::vector<std::size_t> sizes(300);
  std::iota(sizes.begin(), sizes.end(), std::size_t{0});
  for (std::size_t n : {1000u, 1023u, 1024u, 1025u, 4097u, 65536u, 100003u}) sizes.push_back(n);
  for (std::size_t n : sizes) {
    for (std::uint64_t stream : {0u, 1u, 99u}) {
      const Permutation p(n, 5, stream);
      ASSERT_EQ(p.size(), n);
      std::vector<char> seen(n, 0);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t v = p(i);
        ASSERT_LT(v, n);
        ASSERT_FALSE(seen[v]) << "n=" << n << " value " << v << " twice";
        seen[v] = 1;
      }
    }
  }
  const Permutation id = Permutation::identity(50);
  EXPECT_TRUE(id.is_identity());
  for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(id(i), i);
}

TEST(LoaderPermutation, AlgorithmIsPinned) {
  // The documented algorithm's output; a change here changes every user's epoch orders.
  const Permutation p(10, 42, 0);
  std::vector<std::size_t> got;
  for (std::size_t i = 0; i < 10; ++i) got.push_back(p(i));
  EXPECT_EQ(got, (std::vector<std::size_t>{0, 7, 2, 9, 5, 3, 6, 1, 4, 8}));
  EXPECT_EQ(xgrad::data::mix64(0), 0u);
  EXPECT_EQ(xgrad::data::mix64(1), 0x5692161d100b05e5ULL);
}

TEST(LoaderPermutation, PositionsAreRoughlyUniform) {
  // Where element 0 lands over many epochs: each of 8 positions about 1/8 of the time.
  const std::size_t n = 8, epochs = 8000;
  std::vector<int> where(n, 0);
  for (std::size_t e = 0; e < epochs; ++e) {
    const Permutation p(n, 3, e);
    for (std::size_t i = 0; i < n; ++i) {
      if (p(i) == 0) ++where[i];
    }
  }
  for (int c : where) EXPECT_NEAR(c, int(epochs / n), int(epochs / n) / 5);
}

// inverse() undoes the permutation both ways, plain and in blocks: the loader finds the
// short block with it, so a wrong inverse would misplace every block after it.
TEST(LoaderPermutation, InverseUndoesThePermutation) {
  std::vector<std::size_t> sizes = {1, 2, 3, 4, 5, 17, 1000, 4097};
  for (std::size_t n = 6; n < 70; ++n) sizes.push_back(n);
  for (std::size_t n : sizes) {
    for (std::uint64_t seed : {0ull, 5ull, 0xdeadbeefcafeull}) {
      for (std::size_t block : {std::size_t{1}, std::size_t{3}, std::size_t{16}, n + 1}) {
        SCOPED_TRACE("n=" + std::to_string(n) + " seed=" + std::to_string(seed) +
                     " block=" + std::to_string(block));
        const Permutation p(n, seed, 7, block);
        for (std::size_t i = 0; i < n; ++i) {
          ASSERT_EQ(p.inverse(p(i)), i);
          ASSERT_EQ(p(p.inverse(i)), i);
        }
      }
    }
  }
  const Permutation id = Permutation::identity(9);
  for (std::size_t i = 0; i < 9; ++i) EXPECT_EQ(id.inverse(i), i);
}

// Block permutations follow the documented algorithm for many (n, block) pairs: a
// bijection made of runs of consecutive elements that start at multiples of the block,
// the runs in the order of the plain permutation of the blocks; block 1 is the plain
// permutation (so loaders without blocks keep their orders), and epochs still differ.
TEST(LoaderPermutation, BlocksAreRunsInThePlainOrderOfTheBlocks) {
  std::vector<std::size_t> sizes(300);
  std::iota(sizes.begin(), sizes.end(), std::size_t{1});
  sizes.push_back(100003);
  for (std::size_t n : sizes) {
    for (std::size_t block : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7},
                              std::size_t{64}, n, n + 5}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " block=" + std::to_string(block));
      const std::size_t nb = (n + block - 1) / block;
      std::set<std::vector<std::size_t>> orders;
      for (std::uint64_t stream : {0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u}) {
        if (n > 5000 && stream > 1) break;  // two epochs of the large n are enough
        const Permutation p(n, 9, stream, block);
        ASSERT_EQ(p.size(), n);
        ASSERT_EQ(p.block(), block);
        // The reference: the blocks in the order of the plain permutation of nb blocks.
        const Permutation blocks(nb, 9, stream);
        std::vector<std::size_t> want;
        for (std::size_t j = 0; j < nb; ++j) {
          for (std::size_t e = blocks(j) * block; e < std::min(n, (blocks(j) + 1) * block); ++e)
            want.push_back(e);
        }
        std::vector<std::size_t> got(n);
        std::vector<char> seen(n, 0);
        for (std::size_t i = 0; i < n; ++i) {
          got[i] = p(i);
          ASSERT_LT(got[i], n);
          ASSERT_FALSE(seen[got[i]]) << "element " << got[i] << " twice";
          seen[got[i]] = 1;
          // A run starts at a multiple of the block; inside it elements are consecutive.
          if (got[i] % block != 0) {
            ASSERT_TRUE(i > 0 && got[i - 1] + 1 == got[i]) << "at " << i;
          }
        }
        ASSERT_EQ(got, want);
        if (block == 1) {
          const Permutation plain(n, 9, stream);
          for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], plain(i));
        }
        orders.insert(std::move(got));
      }
      // From 3 blocks on, epochs show several orders; from 10 on, all differ.
      if (nb >= 3) {
        EXPECT_GE(orders.size(), n > 5000 ? 2u : 3u);
      }
      if (nb >= 10) {
        EXPECT_EQ(orders.size(), n > 5000 ? 2u : 8u);
      }
    }
  }
}

// fill() lists any range of positions as operator() does, plain and in blocks, from
// every start (runs cut at either end, the short block, the identity): the loader builds
// its batches with it.
TEST(LoaderPermutation, FillMatchesElementByElement) {
  for (std::size_t n : {1u, 2u, 5u, 20u, 97u, 1000u}) {
    for (std::size_t block : {std::size_t{1}, std::size_t{3}, std::size_t{16}, n + 2}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " block=" + std::to_string(block));
      for (const Permutation& p : {Permutation(n, 3, 1, block), Permutation::identity(n)}) {
        for (std::size_t first = 0; first < n; first += 1 + first / 8) {
          std::vector<std::size_t> got(std::min<std::size_t>(n - first, 1 + (first * 7) % 40));
          p.fill(first, got);
          for (std::size_t k = 0; k < got.size(); ++k) ASSERT_EQ(got[k], p(first + k)) << k;
        }
      }
    }
  }
}

// The block algorithm's output, pinned like the plain one: a change here changes the
// epoch orders of every user of LoaderOptions::shuffle_block.
TEST(LoaderPermutation, BlockAlgorithmIsPinned) {
  // 20 elements in blocks of 3: six full blocks and {18, 19}, which lands in the middle
  // (the plain order of 7 blocks is 5 0 3 1 6 2 4), so later blocks shift by one.
  const Permutation p(20, 7, 1, 3);
  std::vector<std::size_t> got;
  for (std::size_t i = 0; i < 20; ++i) got.push_back(p(i));
  EXPECT_EQ(got, (std::vector<std::size_t>{15, 16, 17, 0,  1, 2, 9, 10, 11, 3,
                                           4,  5,  18, 19, 6, 7, 8, 12, 13, 14}));
  const Permutation blocks(7, 7, 1);
  got.clear();
  for (std::size_t i = 0; i < 7; ++i) got.push_back(blocks(i));
  EXPECT_EQ(got, (std::vector<std::size_t>{5, 0, 3, 1, 6, 2, 4}));
}

// A block-shuffled loader keeps the loader's guarantees: every index once per epoch in
// disjoint batches of the right sizes, in the order of Permutation(n, seed, e, block),
// random access agreeing with iteration; with shuffle off the block changes nothing.
TEST(LoaderBlockShuffle, EachIndexOncePerEpochInDisjointBatches) {
  for (std::size_t n : kSizes) {
    const auto data = range_data(n);
    for (std::size_t bs : {1u, 3u, 10u, 64u, 5000u}) {
      for (std::size_t block : {2u, 3u, 7u, 64u}) {
        for (bool drop_last : {false, true}) {
          if (drop_last && bs > n) continue;
          SCOPED_TRACE("n=" + std::to_string(n) + " batch=" + std::to_string(bs) + " block=" +
                       std::to_string(block) + " drop_last=" + std::to_string(drop_last));
          DataLoader loader(data, {.batch_size = bs,
                                   .seed = 7,
                                   .drop_last = drop_last,
                                   .prefetch = (n + bs + block) % 3,
                                   .shuffle_block = block});
          ASSERT_EQ(loader.options().shuffle_block, block);
          DataLoader plain(data, {.batch_size = bs,
                                  .shuffle = false,
                                  .seed = 7,
                                  .drop_last = drop_last,
                                  .shuffle_block = block});
          for (std::size_t e = 0; e < 2; ++e) {
            std::vector<std::size_t> all;
            ASSERT_NO_FATAL_FAILURE(check_epoch_batches(loader, e, n, bs, drop_last, &all));
            const Permutation p(n, 7, e, block);
            std::vector<int> seen(n, 0);
            for (std::size_t k = 0; k < all.size(); ++k) {
              ASSERT_EQ(all[k], p(k));
              ASSERT_EQ(++seen[all[k]], 1) << "index " << all[k] << " twice in epoch " << e;
            }
            std::vector<std::size_t> natural(all.size());
            std::iota(natural.begin(), natural.end(), std::size_t{0});
            ASSERT_EQ(flat(epoch_batches(plain, e)), natural);
          }
        }
      }
    }
  }
}

// Any epoch of a block-shuffled loader reproduces from (seed, epoch, block) alone, and
// the block changes the order (else the setting would be ignored).
TEST(LoaderBlockShuffle, ReproduciblePerSeedAndEpoch) {
  for (std::size_t n : {100u, 257u, 1000u}) {
    const auto data = range_data(n);
    for (std::size_t block : {2u, 16u}) {
      DataLoader a(data, {.batch_size = 32, .seed = 1234, .prefetch = 2, .shuffle_block = block});
      std::vector<std::vector<std::size_t>> third;
      for (std::size_t e = 0; e < 4; ++e) third = epoch_batches(a, e);
      DataLoader b(data, {.batch_size = 32, .seed = 1234, .prefetch = 0, .shuffle_block = block});
      EXPECT_EQ(epoch_batches(b, 3), third);
      DataLoader c(data, {.batch_size = 32, .seed = 1235, .shuffle_block = block});
      EXPECT_NE(flat(epoch_batches(c, 3)), flat(third)) << "another seed, same order";
      DataLoader full(data, {.batch_size = 32, .seed = 1234});
      EXPECT_NE(flat(epoch_batches(full, 3)), flat(third)) << "the block was ignored";
    }
  }
}

// Gathers like range_data but throws for one index, and counts gathers.
class Faulty : public Dataset<double, std::int64_t> {
 public:
  Faulty(std::size_t n, std::size_t bad) : inner_(range_data(n)), bad_(bad) {}
  std::size_t size() const override { return inner_.size(); }
  Batch<double, std::int64_t> gather(std::span<const std::size_t> idx) const override {
    ++gathers;
    for (std::size_t i : idx) {
      if (i == bad_) throw DataError("faulty: cannot read example " + std::to_string(i));
    }
    return inner_.gather(idx);
  }
  mutable std::atomic<int> gathers{0};

 private:
  TensorDataset<double, std::int64_t> inner_;
  std::size_t bad_;
};

TEST(LoaderPrefetch, WorkerExceptionReachesTheConsumer) {
  for (std::size_t prefetch : {0u, 1u, 3u}) {
    Faulty data(20, 9);
    DataLoader loader(data, {.batch_size = 2, .shuffle = false, .prefetch = prefetch});
    std::vector<std::size_t> got;
    try {
      for (const auto& b : loader.epoch(0))
        got.insert(got.end(), b.indices.begin(), b.indices.end());
      FAIL() << "no exception";
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), "cannot read example 9")) << e.what();
    }
    EXPECT_EQ(got, (std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  }
}

TEST(LoaderPrefetch, QueueIsBoundedAndEarlyExitJoins) {
  Faulty data(1000, 100000);
  DataLoader loader(data, {.batch_size = 10, .prefetch = 2});
  {
    auto epoch = loader.epoch(0);
    auto it = epoch.begin();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // The current batch plus at most `prefetch` ready ones; never the whole epoch.
    EXPECT_LE(data.gathers.load(), 3);
    EXPECT_GE(data.gathers.load(), 1);
    ++it;
  }  // leaving early: the worker stops and is joined, nothing hangs
  EXPECT_LE(data.gathers.load(), 5);
}

TEST(LoaderPrefetch, EpochIsSinglePass) {
  const auto data = range_data(10);
  DataLoader loader(data, 3);
  auto epoch = loader.epoch(0);
  EXPECT_EQ(epoch.size(), 4u);
  (void)epoch.begin();
  EXPECT_THROW((void)epoch.begin(), DataError);
}

TEST(LoaderErrors, BatchSizeZeroEmptyDataAndDropLastTooLarge) {
  const auto data = range_data(5);
  try {
    DataLoader loader(data, 0);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "batch_size 0")) << e.what();
  }
  TensorDataset<double> empty(xt::xarray<double>::from_shape({0, 3}),
                              xt::xarray<double>::from_shape({0}));
  try {
    DataLoader loader(empty, 4);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "empty")) << e.what();
  }
  EXPECT_THROW((DataLoader(data, {.batch_size = 6, .drop_last = true})), DataError);
  DataLoader ok(data, 2);
  EXPECT_THROW(ok.batch_indices(0, 3), DataError);
  EXPECT_THROW(data.gather(std::vector<std::size_t>{5}), DataError);
  // Errors from the data module are xgrad errors.
  EXPECT_THROW((DataLoader(data, 0)), xgrad::Error);
}

// A block of 0 rows has no meaning: rejected by the loader (naming itself and the
// setting) and by Permutation, before any epoch runs.
TEST(LoaderErrors, ShuffleBlockZero) {
  const auto data = range_data(5);
  try {
    DataLoader loader(data, {.batch_size = 2, .shuffle_block = 0});
    FAIL() << "no exception";
  } catch (const DataError& e) {
    EXPECT_TRUE(contains(e.what(), "DataLoader")) << e.what();
    EXPECT_TRUE(contains(e.what(), "shuffle_block 0")) << e.what();
  }
  EXPECT_THROW(Permutation(5, 1, 0, 0), xgrad::ValueError);
}

TEST(DataTensor, RejectsMismatchedOrScalarArrays) {
  EXPECT_THROW(TensorDataset<double>(xt::xarray<double>::from_shape({3, 2}),
                                     xt::xarray<double>::from_shape({4})),
               DataError);
  EXPECT_THROW(TensorDataset<double>(xt::xarray<double>(1.0), xt::xarray<double>::from_shape({1})),
               DataError);
  // Rows of higher-rank features are copied whole.
  xt::xarray<float> x = xt::arange<float>(24);
  x.reshape({4, 3, 2});
  TensorDataset<float> d(x, xt::xarray<float>{0, 1, 2, 3});
  const auto b = d.gather(std::vector<std::size_t>{3, 0, 3});
  ASSERT_EQ(b.features.shape(), (xt::xarray<float>::shape_type{3, 3, 2}));
  EXPECT_EQ(b.features(0, 2, 1), 23.f);
  EXPECT_EQ(b.features(1, 0, 0), 0.f);
  EXPECT_EQ(b.features(2, 0, 0), 18.f);
  EXPECT_EQ(b.targets, (xt::xarray<float>{3, 0, 3}));
}

TEST(DataSplit, DisjointCoveringReproducibleWithoutCopies) {
  for (std::size_t n : {1u, 2u, 10u, 257u, 1000u}) {
    const auto data = range_data(n);
    for (double f : {0.0, 0.1, 0.25, 0.5, 1.0}) {
      const auto s = xgrad::data::split(data, f, 99);
      const auto again = xgrad::data::split(data, f, 99);
      ASSERT_EQ(s.validation.size(), std::size_t(std::llround(f * double(n))));
      ASSERT_EQ(s.train.size() + s.validation.size(), n);
      std::vector<int> seen(n, 0);
      for (const auto* part : {&s.train, &s.validation}) {
        for (std::size_t i = 0; i < part->size(); ++i) ++seen[part->parent_index(i)];
      }
      for (int c : seen) ASSERT_EQ(c, 1);
      for (std::size_t i = 0; i < s.train.size(); ++i) {
        ASSERT_EQ(s.train.parent_index(i), again.train.parent_index(i));
      }
      // Batches come from the parent's rows and carry the subset's indices.
      if (s.train.size() > 0) {
        DataLoader loader(s.train, {.batch_size = 4, .seed = 3});
        for (const auto& b : loader.epoch(1)) {
          for (std::size_t k = 0; k < b.size(); ++k) {
            ASSERT_LT(b.indices[k], s.train.size());
            ASSERT_EQ(b.features(k, 0), double(s.train.parent_index(b.indices[k])));
          }
        }
      }
    }
    if (n >= 10) {
      const auto a = xgrad::data::split(data, 0.5, 1), b = xgrad::data::split(data, 0.5, 2);
      std::vector<std::size_t> va, vb;
      for (std::size_t i = 0; i < a.validation.size(); ++i)
        va.push_back(a.validation.parent_index(i));
      for (std::size_t i = 0; i < b.validation.size(); ++i)
        vb.push_back(b.validation.parent_index(i));
      EXPECT_NE(va, vb);
    }
  }
  const auto data = range_data(4);
  EXPECT_THROW(xgrad::data::split(data, -0.1, 0), DataError);
  EXPECT_THROW(xgrad::data::split(data, 1.5, 0), DataError);
  EXPECT_THROW(xgrad::data::split(data, std::nan(""), 0), DataError);
  // A split holds no per-example memory, whatever the data set's size.
  static_assert(sizeof(xgrad::data::Subset<double, std::int64_t>) < 200);
}

TEST(DataSubset, ExplicitIndices) {
  const auto data = range_data(6);
  xgrad::data::Subset<double, std::int64_t> sub(data, {5, 1, 1});
  ASSERT_EQ(sub.size(), 3u);
  const auto b = sub.gather(std::vector<std::size_t>{2, 0});
  EXPECT_EQ(b.features(0, 0), 1.0);
  EXPECT_EQ(b.features(1, 0), 5.0);
  EXPECT_EQ(b.indices, (std::vector<std::size_t>{2, 0}));
  EXPECT_THROW((xgrad::data::Subset<double, std::int64_t>(data, {6})), DataError);
  EXPECT_THROW(sub.gather(std::vector<std::size_t>{3}), DataError);
}

TEST(DataBatch, BindsToAFunctionInOneLineAndTrainsBySgd) {
  // The seed's linear regression, y = X beta with a bias column, learned by minibatch SGD.
  const std::size_t n = 512;
  xt::xarray<double> x = xt::xarray<double>::from_shape({n, 3});
  xt::xarray<double> y = xt::xarray<double>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) {
    x(i, 0) = std::sin(double(i));
    x(i, 1) = std::cos(3.0 * double(i));
    x(i, 2) = 1;
    y(i) = 1.0 * x(i, 0) + 2.0 * x(i, 1) + 3.0;
  }
  TensorDataset<double> data(x, y);
  xgrad::Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto Y = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::zeros<double>({3}));
  auto loss = 0.5 * xgrad::mean(xgrad::square(Y - xgrad::matmul(X, beta)));
  auto step = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});
  DataLoader loader(data, {.batch_size = 32, .seed = 5});
  for (std::size_t epoch = 0; epoch < 60; ++epoch) {
    for (const auto& batch : loader.epoch(epoch)) {
      g.value(beta) -= 0.3 * step.run(batch.feeds(X, Y))[1];
    }
  }
  EXPECT_NEAR(g.value(beta)(0), 1.0, 1e-6);
  EXPECT_NEAR(g.value(beta)(1), 2.0, 1e-6);
  EXPECT_NEAR(g.value(beta)(2), 3.0, 1e-6);

  // Integer labels bind to an int64 input.
  auto logits = g.input("logits", {xgrad::open, 3});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  auto ce = xgrad::compile({xgrad::cross_entropy(logits, labels)});
  TensorDataset<double, std::int64_t> cls(xt::zeros<double>({4, 3}),
                                          xt::xarray<std::int64_t>{0, 1, 2, 1});
  const auto b = cls.gather(std::vector<std::size_t>{0, 1, 2, 3});
  EXPECT_NEAR(ce.run(b.feeds(logits, labels))[0](), std::log(3.0), 1e-12);
  auto pred = xgrad::compile({xgrad::sum(logits)});
  EXPECT_EQ(pred.run(b.feeds(logits))[0](), 0.0);
}

// Read system calls this process made so far (/proc/self/io's syscr; pread counts as
// one), or -1 where the kernel does not account them. The read of /proc/self/io itself
// is counted once, by the next call.
long long read_syscalls() {
  const int fd = ::open("/proc/self/io", O_RDONLY);
  if (fd < 0) return -1;
  char buf[1024];
  const ssize_t got = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (got <= 0) return -1;
  buf[got] = '\0';
  const char* at = std::strstr(buf, "syscr: ");
  return at ? std::atoll(at + 7) : -1;
}

// Runs of adjacent rows in a batch: NpyDataset reads a batch with at most this many reads
// (fewer where runs lie within a page of each other).
std::size_t runs(std::vector<std::size_t> idx) {
  std::sort(idx.begin(), idx.end());
  std::size_t r = 0;
  for (std::size_t k = 0; k < idx.size(); ++k) r += k == 0 || idx[k] != idx[k - 1] + 1;
  return r;
}

// The point of block shuffling: a batch of a .npy file costs about batch / block reads
// instead of batch. The reads are counted where the kernel accounts them; the runs of
// consecutive rows that make them possible are checked everywhere.
TEST(LoaderBlockShuffle, NpyBatchesNeedAboutBatchOverBlockReads) {
  // 5000 rows in blocks of 64: 78 full blocks and a short one of 8 rows.
  const std::size_t n = 5000, bs = 256, block = 64;
  TempDir dir;
  xt::xarray<double> a = xt::xarray<double>::from_shape({n, 4});
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t c = 0; c < 4; ++c) a(i, c) = double(4 * i + c);
  }
  const std::string path = dir.file("rows.npy");
  xgrad::data::save_npy(path, a);
  const xgrad::data::NpyDataset<double> data(path, {0, 1, 2}, {3});
  DataLoader blocked(data, {.batch_size = bs, .seed = 3, .prefetch = 0, .shuffle_block = block});
  DataLoader full(data, {.batch_size = bs, .seed = 3, .prefetch = 0});
  const long long base = read_syscalls();
  const long long self = read_syscalls() - base;  // the counting's own read
  const bool counted = base >= 0 && self >= 0;
  std::size_t blocked_reads = 0, full_reads = 0;
  for (auto* loader : {&blocked, &full}) {
    for (std::size_t b = 0; b < loader->num_batches(); ++b) {
      const auto idx = loader->batch_indices(0, b);
      const long long before = read_syscalls();
      const auto batch = loader->batch(0, b);
      const long long reads = read_syscalls() - before - self;
      ASSERT_EQ(batch.indices, idx);
      for (std::size_t k = 0; k < idx.size(); ++k)
        ASSERT_EQ(batch.targets(k), double(4 * idx[k] + 3));
      if (counted) {
        EXPECT_LE(reads, static_cast<long long>(runs(idx))) << "batch " << b;
      }
      (loader == &blocked ? blocked_reads : full_reads) += runs(idx);
      if (loader != &blocked) continue;
      // Runs of consecutive rows starting at multiples of the block: at most
      // batch / block + 2 of them (a batch may cut two blocks and hold the short one).
      for (std::size_t k = 1; k < idx.size(); ++k) {
        if (idx[k] % block != 0) {
          ASSERT_EQ(idx[k], idx[k - 1] + 1) << "batch " << b << " at " << k;
        }
      }
      EXPECT_LE(runs(idx), idx.size() / block + 2) << "batch " << b;
    }
  }
  EXPECT_LE(blocked_reads, (n / bs + 1) * (bs / block + 2));
  EXPECT_GT(full_reads, 10 * blocked_reads);
  if (!counted) GTEST_SKIP() << "no /proc/self/io: runs checked, reads not counted";
}

// The header's example: a user data set in a few lines.
struct Squares : xgrad::data::Dataset<double> {
  std::size_t size() const override { return 100; }
  xgrad::data::Batch<double> gather(std::span<const std::size_t> idx) const override {
    xgrad::data::Batch<double> b(idx, {1}, {});
    for (std::size_t i = 0; i < idx.size(); ++i) {
      b.features(i, 0) = double(idx[i]);
      b.targets(i) = double(idx[i] * idx[i]);
    }
    return b;
  }
};

TEST(DataCustom, UserDatasetInAFewLines) {
  Squares sq;
  DataLoader loader(sq, {.batch_size = 16, .seed = 1, .drop_last = true});
  std::size_t rows = 0;
  for (const auto& b : loader.epoch(0)) {
    ASSERT_EQ(b.features.shape(), (xt::xarray<double>::shape_type{16, 1}));
    for (std::size_t k = 0; k < b.size(); ++k)
      EXPECT_EQ(b.targets(k), b.features(k, 0) * b.features(k, 0));
    rows += b.size();
  }
  EXPECT_EQ(rows, 96u);
}

}  // namespace
