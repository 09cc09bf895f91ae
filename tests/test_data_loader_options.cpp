// LoaderOptions: each setting changes what the loader does in a way a test can see, the
// defaults are those of the short constructor, and bad settings are refused.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>
#include <xgrad/data/data.hpp>

namespace {

using xgrad::data::Batch;
using xgrad::data::DataError;
using xgrad::data::DataLoader;
using xgrad::data::Dataset;
using xgrad::data::LoaderOptions;
using xgrad::data::TensorDataset;

// Example i has the feature i; records how many gathers ran and in which threads.
class Recording : public Dataset<double> {
 public:
  explicit Recording(std::size_t n) : n_(n) {}
  std::size_t size() const override { return n_; }
  Batch<double> gather(std::span<const std::size_t> idx) const override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      threads_.insert(std::this_thread::get_id());
    }
    Batch<double> b(idx, {}, {});
    for (std::size_t k = 0; k < idx.size(); ++k) b.features(k) = b.targets(k) = double(idx[k]);
    ++gathers;
    return b;
  }
  std::set<std::thread::id> threads() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return threads_;
  }
  mutable std::atomic<int> gathers{0};

 private:
  std::size_t n_;
  mutable std::mutex mutex_;
  mutable std::set<std::thread::id> threads_;
};

// The indices of one epoch, batch by batch.
std::vector<std::vector<std::size_t>> batches(const DataLoader<double>& loader, std::size_t e) {
  std::vector<std::vector<std::size_t>> out;
  for (const auto& b : loader.epoch(e)) out.push_back(b.indices);
  return out;
}

std::vector<std::size_t> flat(const std::vector<std::vector<std::size_t>>& bs) {
  std::vector<std::size_t> v;
  for (const auto& b : bs) v.insert(v.end(), b.begin(), b.end());
  return v;
}

std::vector<std::size_t> natural(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), std::size_t{0});
  return v;
}

TEST(LoaderOptions, DefaultsAreTheShortConstructors) {
  const LoaderOptions o;
  EXPECT_EQ(o.batch_size, 1u);
  EXPECT_TRUE(o.shuffle);
  EXPECT_EQ(o.seed, 0u);
  EXPECT_FALSE(o.drop_last);
  EXPECT_EQ(o.prefetch, 2u);
  EXPECT_EQ(o.shuffle_block, 1u);
  Recording data(50);
  const DataLoader<double> a(data, 8), b(data, {.batch_size = 8});
  EXPECT_EQ(a.options().batch_size, 8u);
  EXPECT_EQ(a.options().shuffle, b.options().shuffle);
  EXPECT_EQ(a.options().prefetch, b.options().prefetch);
  EXPECT_EQ(batches(a, 3), batches(b, 3));
  EXPECT_EQ(&a.dataset(), &data);
}

TEST(LoaderOptions, BatchSizeCutsTheEpoch) {
  Recording data(10);
  for (std::size_t bs : {1u, 3u, 10u, 11u}) {
    const DataLoader<double> loader(data, {.batch_size = bs});
    const auto got = batches(loader, 0);
    ASSERT_EQ(got.size(), (10 + bs - 1) / bs) << "batch_size " << bs;
    for (std::size_t b = 0; b + 1 < got.size(); ++b) EXPECT_EQ(got[b].size(), bs);
    EXPECT_EQ(got.back().size(), 10 - (got.size() - 1) * bs);
  }
}

TEST(LoaderOptions, ShuffleOffVisitsTheNaturalOrderEveryEpoch) {
  Recording data(100);
  const DataLoader<double> plain(data, {.batch_size = 7, .shuffle = false});
  const DataLoader<double> shuffled(data, {.batch_size = 7});
  for (std::size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(flat(batches(plain, e)), natural(100));
    EXPECT_NE(flat(batches(shuffled, e)), natural(100));
  }
}

TEST(LoaderOptions, SeedChoosesTheOrders) {
  Recording data(100);
  const DataLoader<double> a(data, {.batch_size = 10, .seed = 1});
  const DataLoader<double> again(data, {.batch_size = 10, .seed = 1});
  const DataLoader<double> other(data, {.batch_size = 10, .seed = 2});
  EXPECT_EQ(batches(a, 4), batches(again, 4));
  EXPECT_NE(flat(batches(a, 4)), flat(batches(other, 4)));
}

TEST(LoaderOptions, DropLastDropsTheShortBatch) {
  Recording data(10);
  const DataLoader<double> keep(data, {.batch_size = 4});
  const DataLoader<double> drop(data, {.batch_size = 4, .drop_last = true});
  EXPECT_EQ(keep.num_batches(), 3u);
  EXPECT_EQ(drop.num_batches(), 2u);
  EXPECT_EQ(drop.examples_per_epoch(), 8u);
  const auto got = batches(drop, 0);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].size() + got[1].size(), 8u);
  EXPECT_THROW((DataLoader<double>(data, {.batch_size = 11, .drop_last = true})), DataError);
}

// With prefetch k a worker thread gathers while the consumer holds a batch, and stops
// k batches ahead; with 0 the consumer's own thread gathers each batch when reached.
TEST(LoaderOptions, PrefetchGathersAheadInAnotherThread) {
  for (std::size_t k : {0u, 1u, 4u}) {
    SCOPED_TRACE("prefetch " + std::to_string(k));
    Recording data(100);
    const DataLoader<double> loader(data, {.batch_size = 5, .prefetch = k});
    {
      auto epoch = loader.epoch(0);
      auto it = epoch.begin();
      const int want = static_cast<int>(k) + 1;  // the current batch and k ready ones
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (data.gathers.load() < want && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      EXPECT_EQ(data.gathers.load(), want);
      EXPECT_EQ(it->indices.size(), 5u);
    }
    const auto threads = data.threads();
    if (k == 0) {
      EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
    } else {
      EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
    }
  }
}

TEST(LoaderOptions, ShuffleBlockKeepsRunsOfNeighboursTogether) {
  Recording data(96);
  const DataLoader<double> blocked(data, {.batch_size = 96, .shuffle_block = 8});
  const auto order = flat(batches(blocked, 0));
  ASSERT_NE(order, natural(96));
  for (std::size_t k = 0; k < order.size(); ++k) {
    if (k % 8 == 0) {
      EXPECT_EQ(order[k] % 8, 0u) << "a run starts at position " << k;
    } else {
      EXPECT_EQ(order[k], order[k - 1] + 1) << "position " << k;
    }
  }
  const DataLoader<double> single(data, {.batch_size = 96});
  std::size_t neighbours = 0;
  const auto full = flat(batches(single, 0));
  for (std::size_t k = 1; k < full.size(); ++k) neighbours += full[k] == full[k - 1] + 1;
  EXPECT_LT(neighbours, 20u) << "a full shuffle keeps few neighbours together";
  // Without shuffling the block has nothing to reorder.
  const DataLoader<double> plain(data, {.batch_size = 10, .shuffle = false, .shuffle_block = 8});
  EXPECT_EQ(flat(batches(plain, 0)), natural(96));
}

TEST(LoaderOptions, RefusesZeroBatchSizeAndBlock) {
  Recording data(10);
  for (const LoaderOptions& o :
       {LoaderOptions{.batch_size = 0}, LoaderOptions{.shuffle_block = 0}}) {
    try {
      DataLoader<double> loader(data, o);
      ADD_FAILURE() << "no exception";
    } catch (const DataError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(o.batch_size == 0 ? "batch_size 0" : "shuffle_block 0"),
                std::string::npos)
          << what;
    }
  }
}

}  // namespace
