// Several prefetching threads (LoaderOptions::workers): the batches and their contents do
// not depend on the number of threads; the threads gather at once, at most `prefetch`
// batches ahead; an early exit joins them; a gather's exception reaches the consumer in
// batch order, after the batches before it. Concurrency is shown by counting the gathers
// in progress at once, never by timing.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <xgrad/data/data.hpp>

#include "test_util.hpp"

namespace {

using xgrad::data::Batch;
using xgrad::data::DataError;
using xgrad::data::DataLoader;
using xgrad::data::Dataset;
using xgrad::data::LoaderOptions;
using xgrad::data::TensorDataset;
using xgrad_test::contains;

// Example i has features (i, i^2 mod 7) and target -i: contents show the indices.
TensorDataset<double> range_data(std::size_t n) {
  xt::xarray<double> x = xt::xarray<double>::from_shape({n, 2});
  xt::xarray<double> y = xt::xarray<double>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) {
    x(i, 0) = double(i);
    x(i, 1) = double(i * i % 7);
    y(i) = -double(i);
  }
  return {std::move(x), std::move(y)};
}

// One epoch's batches, whole (indices, features and targets).
std::vector<Batch<double>> epoch_of(const DataLoader<double>& loader, std::size_t e,
                                    std::size_t first = 0) {
  std::vector<Batch<double>> out;
  for (const auto& b : loader.epoch(e, first)) out.push_back(b);
  return out;
}

void expect_same(const std::vector<Batch<double>>& a, const std::vector<Batch<double>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    ASSERT_EQ(a[k].indices, b[k].indices) << "batch " << k;
    ASSERT_EQ(a[k].features, b[k].features) << "batch " << k;
    ASSERT_EQ(a[k].targets, b[k].targets) << "batch " << k;
  }
}

// Gathers from an inner data set, counting the gathers in progress at once and the threads
// that ran them. With `rendezvous` r > 1, a gather waits (up to 10 s, once) until r
// gathers have been in progress at the same time, so that concurrency shows without
// depending on timing: with serial gathers the wait times out and the count stays at 1.
class Concurrent : public Dataset<double> {
 public:
  Concurrent(std::size_t n, int rendezvous, std::chrono::milliseconds pause = {})
      : inner_(range_data(n)), rendezvous_(rendezvous), pause_(pause) {}
  std::size_t size() const override { return inner_.size(); }
  Batch<double> gather(std::span<const std::size_t> idx) const override {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      threads_.insert(std::this_thread::get_id());
      ++gathers_;
      max_active_ = std::max(max_active_, ++active_);
      met_.notify_all();
      // Waits once at most: serial gathers fail the test in 10 s, not 10 s per gather.
      if (!met_.wait_for(lock, std::chrono::seconds(10),
                         [&] { return gave_up_ || max_active_ >= rendezvous_; }))
        gave_up_ = true;
    }
    if (pause_.count() > 0) std::this_thread::sleep_for(pause_);  // a slow read
    Batch<double> b = inner_.gather(idx);
    std::lock_guard<std::mutex> lock(mutex_);
    --active_;
    return b;
  }
  int max_active() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_active_;
  }
  int gathers() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return gathers_;
  }
  std::size_t threads() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return threads_.size();
  }

 private:
  TensorDataset<double> inner_;
  int rendezvous_;
  std::chrono::milliseconds pause_;
  mutable std::mutex mutex_;
  mutable std::condition_variable met_;
  mutable int active_ = 0, max_active_ = 0, gathers_ = 0;
  mutable bool gave_up_ = false;
  mutable std::set<std::thread::id> threads_;
};

TEST(LoaderWorkers, SameBatchesWhateverTheNumberOfWorkers) {
  const auto data = range_data(203);
  struct Case {
    std::size_t batch, block, shards, shard, prefetch;
    bool shuffle, drop_last;
  };
  const Case cases[] = {{7, 1, 1, 0, 2, true, false},   {16, 8, 1, 0, 3, true, true},
                        {5, 1, 3, 1, 4, true, false},   {9, 4, 2, 1, 1, true, true},
                        {10, 1, 1, 0, 8, false, false}, {1, 1, 4, 3, 5, true, false}};
  for (const Case& c : cases) {
    for (std::size_t epoch : {0u, 5u}) {
      SCOPED_TRACE("batch " + std::to_string(c.batch) + " block " + std::to_string(c.block) +
                   " shard " + std::to_string(c.shard) + "/" + std::to_string(c.shards) +
                   " prefetch " + std::to_string(c.prefetch) + " epoch " + std::to_string(epoch));
      auto opts = [&](std::size_t prefetch, std::size_t workers) {
        return LoaderOptions{.batch_size = c.batch,
                             .shuffle = c.shuffle,
                             .seed = 77,
                             .drop_last = c.drop_last,
                             .prefetch = prefetch,
                             .workers = workers,
                             .shuffle_block = c.block,
                             .shards = c.shards,
                             .shard = c.shard};
      };
      const DataLoader<double> inline_loader(data, opts(0, 1));
      const auto want = epoch_of(inline_loader, epoch);
      ASSERT_EQ(want.size(), inline_loader.num_batches());
      for (std::size_t w : {1u, 2u, 4u}) {
        for (bool helps : {false, true}) {
          SCOPED_TRACE("workers " + std::to_string(w) + (helps ? ", consumer gathers" : ""));
          LoaderOptions o = opts(c.prefetch, w);
          o.consumer_gathers = helps;
          const DataLoader<double> loader(data, o);
          expect_same(epoch_of(loader, epoch), want);
          // Resumed in the middle of the epoch: the same tail.
          const std::size_t from = want.size() / 2;
          expect_same(epoch_of(loader, epoch, from),
                      std::vector<Batch<double>>(want.begin() + std::ptrdiff_t(from), want.end()));
        }
      }
    }
  }
}

TEST(LoaderWorkers, GatherAtOnceOnSeveralThreads) {
  for (std::size_t w : {2u, 3u}) {
    SCOPED_TRACE("workers " + std::to_string(w));
    Concurrent data(60, int(w));
    const DataLoader<double> loader(data, {.batch_size = 5, .prefetch = 4, .workers = w});
    std::size_t batches = 0;
    for (const auto& b : loader.epoch(0)) batches += b.size() == 5;
    EXPECT_EQ(batches, 12u);
    EXPECT_EQ(data.max_active(), int(w));  // w at once, never more
    EXPECT_EQ(data.threads(), w);
  }
}

// Slow gathers (a sleep standing for a slow read): never more in progress at once than
// there are workers, nor than prefetch allows; one worker gathers one batch at a time.
TEST(LoaderWorkers, AtMostMinOfWorkersAndPrefetchAtOnce) {
  struct Case {
    std::size_t workers, prefetch;
  };
  for (const Case c : {Case{1, 4}, Case{4, 2}, Case{3, 3}}) {
    SCOPED_TRACE("workers " + std::to_string(c.workers) + " prefetch " +
                 std::to_string(c.prefetch));
    const int limit = int(std::min(c.workers, c.prefetch));
    Concurrent data(40, limit, std::chrono::milliseconds(2));
    const DataLoader<double> loader(
        data, {.batch_size = 4, .prefetch = c.prefetch, .workers = c.workers});
    std::size_t n = 0;
    for (const auto& b : loader.epoch(1)) n += b.size();
    EXPECT_EQ(n, 40u);
    EXPECT_EQ(data.max_active(), limit);
    EXPECT_EQ(data.gathers(), 10);
  }
}

// consumer_gathers: while its batch is not ready, the consumer gathers a later one itself,
// so one worker and the consumer gather at once (the rendezvous of two is met only so),
// still within prefetch, and every batch arrives once, in order.
TEST(LoaderWorkers, ConsumerGathersWhileItWaits) {
  for (std::size_t prefetch : {2u, 4u}) {
    SCOPED_TRACE("prefetch " + std::to_string(prefetch));
    Concurrent data(40, 2, std::chrono::milliseconds(1));
    const DataLoader<double> loader(data, {.batch_size = 4,
                                           .shuffle = false,
                                           .prefetch = prefetch,
                                           .workers = 1,
                                           .consumer_gathers = true});
    std::vector<std::size_t> got;
    for (const auto& b : loader.epoch(0)) got.insert(got.end(), b.indices.begin(), b.indices.end());
    std::vector<std::size_t> want(40);
    for (std::size_t i = 0; i < want.size(); ++i) want[i] = i;
    EXPECT_EQ(got, want);
    EXPECT_EQ(data.max_active(), 2);
    EXPECT_EQ(data.threads(), 2u);  // the worker and the consumer
    EXPECT_EQ(data.gathers(), 10);
  }
}

// Blocks every gather of rows from `free_rows` on until released; counts gathers started.
// Which worker starts first is a race, so what passes is told by the rows, not by the
// order in which gathers start (unshuffled, batch 0 is rows 0, 1, ...).
class Gate : public Dataset<double> {
 public:
  Gate(std::size_t n, std::size_t free_rows) : inner_(range_data(n)), free_rows_(free_rows) {}
  std::size_t size() const override { return inner_.size(); }
  Batch<double> gather(std::span<const std::size_t> idx) const override {
    std::unique_lock<std::mutex> lock(mutex_);
    ++started_;
    changed_.notify_all();
    const bool free = !idx.empty() && idx.front() < free_rows_;
    changed_.wait(lock, [&] { return open_ || free; });
    lock.unlock();
    return inner_.gather(idx);
  }
  // Waits (up to 10 s) until at least k gathers have started; returns how many have.
  int wait_started(int k) const {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(10), [&] { return started_ >= k; });
    return started_;
  }
  void open() const {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  int started() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return started_;
  }

 private:
  TensorDataset<double> inner_;
  std::size_t free_rows_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  mutable int started_ = 0;
  mutable bool open_ = false;
};

// The consumer holds batch 0: the workers start batches 1..prefetch and no more, however
// many of them there are. Leaving the loop then, with gathers blocked in progress, joins
// the threads once the gathers return.
TEST(LoaderWorkers, BoundedAheadAndEarlyExitJoins) {
  Gate data(400, 4);  // batch 0 passes, every later gather blocks until opened
  const DataLoader<double> loader(data,
                                  {.batch_size = 4, .shuffle = false, .prefetch = 3, .workers = 4});
  std::thread release;
  {
    auto epoch = loader.epoch(0);
    auto it = epoch.begin();
    EXPECT_EQ(it->indices.size(), 4u);
    EXPECT_EQ(data.wait_started(4), 4);  // batch 0 and three blocked ones
    // Nothing more can start while three are in flight: a fifth would need a free slot.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(data.started(), 4);
    release = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      data.open();
    });
  }  // the destructor waits for the three gathers in progress, then joins
  release.join();
  EXPECT_EQ(data.started(), 4);
}

// Destroyed right after begin(), with every worker busy: no hang, nothing leaks.
TEST(LoaderWorkers, EarlyExitWhileAllWorkersAreBusy) {
  for (int round = 0; round < 20; ++round) {
    Concurrent data(1000, 1);
    const DataLoader<double> loader(data, {.batch_size = 3, .prefetch = 6, .workers = 4});
    auto epoch = loader.epoch(std::size_t(round));
    std::size_t seen = 0;
    for (const auto& b : epoch) {
      seen += b.size();
      if (seen >= std::size_t(round) * 3) break;
    }
    EXPECT_LE(data.gathers(), round + 1 + 6);
  }
}

// Throws for the examples in `bad`; the gather of `slow` waits (up to 10 s) until a
// gather has thrown, so that a later batch fails first.
class Failing : public Dataset<double> {
 public:
  Failing(std::size_t n, std::set<std::size_t> bad, std::size_t slow)
      : inner_(range_data(n)), bad_(std::move(bad)), slow_(slow) {}
  std::size_t size() const override { return inner_.size(); }
  Batch<double> gather(std::span<const std::size_t> idx) const override {
    for (std::size_t i : idx) {
      if (i == slow_) {
        std::unique_lock<std::mutex> lock(mutex_);
        thrown_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return thrown_; });
      }
    }
    for (std::size_t i : idx) {
      if (bad_.count(i)) {
        {
          std::lock_guard<std::mutex> lock(mutex_);
          thrown_ = true;
        }
        thrown_cv_.notify_all();
        throw DataError("failing: cannot read example " + std::to_string(i));
      }
    }
    return inner_.gather(idx);
  }

 private:
  TensorDataset<double> inner_;
  std::set<std::size_t> bad_;
  std::size_t slow_;
  mutable std::mutex mutex_;
  mutable std::condition_variable thrown_cv_;
  mutable bool thrown_ = false;
};

// Batches of 2 in natural order: batch 4 holds example 8, batch 6 example 12. Batch 6
// fails first (batch 4 waits for that), yet the consumer receives batches 0..3 and then
// batch 4's exception, as with one worker or none.
TEST(LoaderWorkers, ExceptionReachesTheConsumerInBatchOrder) {
  for (std::size_t w : {0u, 1u, 2u, 4u, 5u}) {  // 5: one worker, and the consumer gathers
    SCOPED_TRACE("workers " + std::to_string(w) + " (0: no prefetch)");
    Failing data(40, {8, 12}, w > 1 ? 9 : 1000);
    const DataLoader<double> loader(data, {.batch_size = 2,
                                           .shuffle = false,
                                           .prefetch = w == 0 ? 0u : 4u,
                                           .workers = w == 5 ? 1u : std::max<std::size_t>(w, 1),
                                           .consumer_gathers = w == 5});
    std::vector<std::size_t> got;
    try {
      for (const auto& b : loader.epoch(0))
        got.insert(got.end(), b.indices.begin(), b.indices.end());
      FAIL() << "no exception";
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), "cannot read example 8")) << e.what();
    }
    EXPECT_EQ(got, (std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  }
}

TEST(LoaderWorkers, RefusesZeroOrTooManyWorkers) {
  const auto data = range_data(10);
  for (std::size_t w : {std::size_t{0}, std::size_t{257}, ~std::size_t{0}}) {
    try {
      DataLoader<double> loader(data, {.batch_size = 2, .workers = w});
      ADD_FAILURE() << "no exception for workers " << w;
    } catch (const DataError& e) {
      EXPECT_TRUE(contains(e.what(), "DataLoader")) << e.what();
      EXPECT_TRUE(contains(e.what(), "workers " + std::to_string(w))) << e.what();
    }
  }
  EXPECT_NO_THROW((DataLoader<double>(data, {.batch_size = 2, .workers = 256})));
  // Without prefetching the worker count is still checked, and unused.
  EXPECT_THROW((DataLoader<double>(data, {.prefetch = 0, .workers = 0})), DataError);
}

}  // namespace
