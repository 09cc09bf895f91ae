// Data-parallel shards of the DataLoader (LoaderOptions::shards, shard_batch_positions):
// for many data sizes, batch sizes and rank counts the shards are disjoint, of equal
// length and number of batches, cover the epoch but for fewer than `shards` examples, and
// each global batch is one process's batch of shards * batch_size, split.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>
#include <xgrad/data/data.hpp>

namespace {

using xgrad::data::DataError;
using xgrad::data::DataLoader;
using xgrad::data::shard_batch_positions;
using xgrad::data::TensorDataset;

TEST(LoaderShard, PositionsAreDisjointEqualAndCovering) {
  std::size_t cases = 0;
  for (std::size_t n = 1; n <= 61; ++n) {
    for (std::size_t bs = 1; bs <= 9; ++bs) {
      for (std::size_t R = 1; R <= 7 && R <= n; ++R) {
        const std::size_t s = n / R, batches = (s + bs - 1) / bs;
        std::vector<int> seen(n, 0);
        for (std::size_t r = 0; r < R; ++r) {
          std::size_t length = 0;
          for (std::size_t b = 0; b < batches; ++b) {
            const auto p = shard_batch_positions(n, bs, R, r, b);
            ASSERT_GE(p.count, 1u);
            ASSERT_LE(p.first + p.count, n);
            for (std::size_t i = p.first; i < p.first + p.count; ++i) ++seen[i];
            length += p.count;
            // Global batch b: the ranks' pieces are consecutive, from b * bs * R.
            ASSERT_EQ(p.first, b * bs * R + r * p.count);
          }
          EXPECT_EQ(length, s) << "n " << n << " bs " << bs << " R " << R << " r " << r;
          EXPECT_THROW(shard_batch_positions(n, bs, R, r, batches), DataError);
        }
        std::size_t visited = 0;
        for (std::size_t i = 0; i < n; ++i) {
          ASSERT_LE(seen[i], 1) << "position " << i << " twice: n " << n << " bs " << bs;
          visited += seen[i];
          // Only the tail of the order, fewer than R positions, is skipped.
          if (i < R * s) {
            ASSERT_EQ(seen[i], 1) << "n " << n << " bs " << bs << " R " << R;
          }
        }
        EXPECT_EQ(visited, R * s);
        EXPECT_LT(n - visited, R);
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 2000u);
}

TEST(LoaderShard, LoadersOfAllRanksShareOneEpoch) {
  const std::size_t n = 103;
  TensorDataset<double> set(xt::arange<double>(double(n)), xt::zeros<double>({n}));
  for (std::size_t R : {2, 3, 5}) {
    for (bool drop_last : {false, true}) {
      std::set<double> seen;
      std::size_t visits = 0, batches = 0;
      for (std::size_t r = 0; r < R; ++r) {
        DataLoader<double> loader(set, {.batch_size = 4,
                                        .seed = 9,
                                        .drop_last = drop_last,
                                        .prefetch = 1,
                                        .shards = R,
                                        .shard = r});
        EXPECT_EQ(loader.shard_size(), n / R);
        if (r == 0) batches = loader.num_batches();
        EXPECT_EQ(loader.num_batches(), batches);  // every rank takes as many steps
        std::size_t count = 0;
        for (const auto& b : loader.epoch(2)) {
          for (double v : b.features) seen.insert(v);
          visits += b.size();
          ++count;
        }
        EXPECT_EQ(count, batches);
      }
      EXPECT_EQ(seen.size(), visits) << "an example visited twice, R " << R;
      EXPECT_EQ(visits, drop_last ? R * (n / R / 4) * 4 : R * (n / R));
    }
  }
}

TEST(LoaderShard, GlobalBatchIsTheOneProcessBatch) {
  const std::size_t n = 60, R = 3, bs = 4;
  TensorDataset<double> set(xt::arange<double>(double(n)), xt::zeros<double>({n}));
  DataLoader<double> one(set, {.batch_size = bs * R, .seed = 4});
  for (std::size_t b = 0; b < one.num_batches(); ++b) {
    std::vector<std::size_t> joined;
    for (std::size_t r = 0; r < R; ++r) {
      DataLoader<double> part(set, {.batch_size = bs, .seed = 4, .shards = R, .shard = r});
      const auto idx = part.batch_indices(1, b);
      joined.insert(joined.end(), idx.begin(), idx.end());
    }
    EXPECT_EQ(joined, one.batch_indices(1, b));
  }
}

TEST(LoaderShard, BadShardsAreRefused) {
  TensorDataset<double> set(xt::arange<double>(5.0), xt::zeros<double>({5}));
  EXPECT_THROW(DataLoader<double>(set, {.shards = 0}), DataError);
  EXPECT_THROW(DataLoader<double>(set, {.shards = 2, .shard = 2}), DataError);
  EXPECT_THROW(DataLoader<double>(set, {.shards = 6}), DataError);
  try {
    DataLoader<double>(set, {.batch_size = 3, .drop_last = true, .shards = 2, .shard = 1});
    FAIL() << "drop_last over a shard smaller than a batch";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("over 2 examples"), std::string::npos) << e.what();
  }
}

}  // namespace
