/// @file loader.hpp
/// @brief DataLoader: shuffled, non-overlapping minibatches every epoch, prefetched by
/// background threads, ready to bind to a compiled Function.
///
/// @code
/// xgrad::data::NpyDataset<double> data("X.npy", "y.npy");
/// xgrad::data::DataLoader loader(data, {.batch_size = 256, .seed = 42});
/// for (std::size_t epoch = 0; epoch < 10; ++epoch)
///   for (const auto& batch : loader.epoch(epoch)) {
///     const auto& out = step.run(batch.feeds(X, y));  // out[0] loss, out[1] gradient
///     g.value(beta) -= lr * out[1];
///   }
/// @endcode
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <vector>

#include "xgrad/data/dataset.hpp"
#include "xgrad/data/permutation.hpp"

namespace xgrad::data {

/// Settings of a DataLoader, named at the call site with designated initialisers:
/// `DataLoader loader(data, {.batch_size = 256, .seed = 42, .prefetch = 0})`; settings
/// left out keep the defaults below.
struct LoaderOptions {
  /// Examples per batch, at least 1; the last batch of an epoch may hold fewer.
  std::size_t batch_size = 1;
  /// Visit the examples in a new seeded order every epoch; false: the natural order.
  bool shuffle = true;
  /// Seed of the epoch orders: the same seed and epoch number give the same order.
  std::uint64_t seed = 0;
  /// Drop the last batch of an epoch when it would hold fewer than batch_size examples.
  bool drop_last = false;
  /// Batches gathered ahead of the consumer by background threads, at most this many at
  /// a time, ready or in progress (0: every batch is gathered in the consumer's thread,
  /// when it is reached). A consumer that reaches a batch not ready yet spins for up to
  /// 50 microseconds before it sleeps: waking a sleeping thread for every batch costs more
  /// than a fast gather.
  std::size_t prefetch = 2;
  /// Threads that gather the prefetched batches, 1 to 256 (min(workers, prefetch) are
  /// started; none with prefetch 0). More than one pays where a gather waits on slow
  /// reads (a file not in the page cache, a network file system, decoding) while
  /// another could run: each thread gathers whole batches, which the consumer still
  /// receives in order, with the same contents whatever the number of threads. With
  /// several threads the data set's gather() is called from several threads at once
  /// (every built-in data set allows that).
  std::size_t workers = 1;
  /// While the consumer waits for a batch that is not ready, it gathers a later one itself
  /// (one a worker could claim: prefetch still bounds the batches in flight), instead of
  /// waiting idle. What it buys: a consumer faster than its workers (a small model over a
  /// shuffled file) puts its own core to work, without an extra thread competing with it
  /// for the cores. What it costs: gather() then runs on the consumer's thread and a
  /// worker's at once even with one worker, so the data set must allow concurrent calls
  /// (every built-in one does); and the consumer's next batch may wait for the gather it
  /// started. No effect with prefetch 0.
  bool consumer_gathers = false;
  /// Shuffle runs of this many consecutive examples instead of single examples (1: a
  /// full shuffle): epoch e visits the runs in a seeded order and the examples of a run
  /// in their natural order (Permutation(n, seed, e, shuffle_block)). What it buys: a
  /// data set that reads adjacent examples together, like NpyDataset, gathers a batch
  /// with about batch_size / shuffle_block reads instead of batch_size. What it costs:
  /// batches consist of runs of neighbours, so data stored in a meaningful order
  /// (sorted, grouped by class or by time) should be shuffled on disk once first, or use
  /// a block much smaller than the batch. No effect when shuffle is off; at least 1.
  std::size_t shuffle_block = 1;
  /// Data parallelism: the number of processes (ranks) that share each epoch, at least 1.
  /// Every rank computes the same epoch order; of its first shards * floor(n / shards)
  /// positions, global batch b (shards * batch_size consecutive positions) is cut into
  /// `shards` equal consecutive pieces and rank `shard` takes piece number `shard` (see
  /// shard_batch_positions). The ranks' shards are disjoint, of equal length floor(n /
  /// shards), and so have the same number of batches: no rank waits in a collective for
  /// a batch another rank does not have. The remainder, n mod shards (< shards)
  /// examples at the end of the epoch's order, is skipped for that epoch; the order
  /// changes every epoch, so a different few are skipped each time (padding with repeats,
  /// as torch's DistributedSampler does, would visit some examples twice).
  std::size_t shards = 1;
  /// This process's shard (its rank), below shards.
  std::size_t shard = 0;
};

/// Positions [first, first + count) of an epoch's order.
struct PositionRange {
  std::size_t first = 0;  ///< First position.
  std::size_t count = 0;  ///< Number of positions.
};

/// The positions of an epoch's order that batch b of shard `shard` covers when n examples
/// are shared by `shards` ranks in local batches of batch_size (see LoaderOptions::shards):
/// with s = floor(n / shards) and c = min(batch_size, s - b batch_size), the range starts
/// at b batch_size shards + shard c and holds c positions. The ranks' batches b together
/// are the positions [b batch_size shards, ... + shards c): one rank's batch of
/// shards * batch_size, split. A pure function, so that the sharding property can be
/// checked for any sizes without processes. Throws DataError for b past the shard's last
/// batch, a shard >= shards, or shards > n.
PositionRange shard_batch_positions(std::size_t n, std::size_t batch_size, std::size_t shards,
                                    std::size_t shard, std::size_t b);

/// Cuts a data set into minibatches, epoch by epoch. Epoch e visits the examples in the
/// order of a permutation derived from (seed, e) alone (Permutation(n, seed, e,
/// shuffle_block); the identity when shuffle is off), cut into consecutive batches of
/// batch_size: within an epoch no example appears twice, and any epoch can be reproduced
/// without replaying the ones before it. The last, smaller batch is kept, or dropped
/// with drop_last (see LoaderOptions). The data set must outlive the loader; the loader
/// holds no per-example memory.
template <Element T, Element L = T>
class DataLoader {
 public:
  class Epoch;

  /// A loader over data with these settings. Throws DataError for a batch size or a
  /// shuffle block of 0, workers outside 1 to 256, an empty data set, or drop_last with
  /// fewer examples than one batch.
  DataLoader(const Dataset<T, L>& data, const LoaderOptions& options);
  /// A loader over data in shuffled batches of batch_size, with the other settings at
  /// their defaults (LoaderOptions).
  DataLoader(const Dataset<T, L>& data, std::size_t batch_size)
      : DataLoader(data, LoaderOptions{.batch_size = batch_size}) {}

  /// Number of batches per epoch: ceil(m / batch_size), or floor with drop_last, where
  /// m = shard_size() (n without sharding).
  std::size_t num_batches() const {
    const std::size_t bs = opts_.batch_size, m = shard_size();
    return opts_.drop_last ? m / bs : (m + bs - 1) / bs;
  }
  /// Examples this loader visits per epoch (shard_size(), less the dropped remainder
  /// with drop_last).
  std::size_t examples_per_epoch() const {
    return opts_.drop_last ? num_batches() * opts_.batch_size : shard_size();
  }
  /// Examples of this loader's shard per epoch: floor(n / shards) (n without sharding).
  std::size_t shard_size() const { return n_ / opts_.shards; }
  /// The settings.
  const LoaderOptions& options() const { return opts_; }
  /// The data set.
  const Dataset<T, L>& dataset() const { return *data_; }

  /// The order in which epoch e visits the examples.
  Permutation order(std::size_t epoch) const;
  /// Data set indices of batch b (< num_batches()) of epoch e.
  std::vector<std::size_t> batch_indices(std::size_t epoch, std::size_t b) const;
  /// Batch b of epoch e, gathered now in the calling thread (random access to batches).
  Batch<T, L> batch(std::size_t epoch, std::size_t b) const;
  /// The batches of epoch e as a range for range-for; with prefetch > 0 worker threads
  /// gather ahead, and an exception one raises is rethrown in the consumer when it
  /// reaches that batch (the batches before it are delivered first).
  Epoch epoch(std::size_t e) const { return Epoch(*this, e); }
  /// The batches of epoch e from batch `first` on: where a run resumed from a checkpoint
  /// taken in the middle of an epoch continues (the batches are those of epoch(e)).
  Epoch epoch(std::size_t e, std::size_t first) const { return Epoch(*this, e, first); }

  /// One epoch's batches, a single-pass range. Owns the worker threads, which it stops and
  /// joins when destroyed (also when the loop is left early). Neither copyable nor movable.
  class Epoch {
   public:
    /// The epoch's iterator: dereferences to the current batch.
    class iterator {
     public:
      using value_type = Batch<T, L>;          ///< A batch.
      using difference_type = std::ptrdiff_t;  ///< Required by input_iterator.
      /// Detached iterator.
      iterator() = default;
      /// The current batch (valid until the next increment).
      Batch<T, L>& operator*() const { return e_->current_; }
      /// Member access to the current batch.
      Batch<T, L>* operator->() const { return &e_->current_; }
      /// Moves to the next batch (rethrows a worker's exception).
      iterator& operator++() {
        e_->advance();
        return *this;
      }
      /// Moves to the next batch.
      void operator++(int) { ++*this; }
      /// True past the last batch.
      bool operator==(std::default_sentinel_t) const { return e_->done_; }

     private:
      friend class Epoch;
      explicit iterator(Epoch* e) : e_(e) {}
      Epoch* e_ = nullptr;
    };

    /// Prepares epoch e of loader (which must outlive it) from batch `first` on (at most
    /// the batch count; DataError otherwise); nothing is read before begin().
    Epoch(const DataLoader& loader, std::size_t e, std::size_t first = 0);
    Epoch(const Epoch&) = delete;
    Epoch& operator=(const Epoch&) = delete;
    /// Stops and joins the workers (after the gathers in progress return).
    ~Epoch();

    /// Starts the epoch and returns an iterator at its first batch; callable once.
    iterator begin();
    /// The end sentinel.
    std::default_sentinel_t end() const { return {}; }
    /// Number of batches of the whole epoch (also when started past its first).
    std::size_t size() const { return count_; }
    /// The epoch number.
    std::size_t number() const { return epoch_; }

   private:
    struct Workers;  // the prefetching threads and their slots (src/data/loader.cpp)
    void advance();

    const DataLoader* loader_;
    std::size_t epoch_, count_;
    std::size_t next_ = 0;
    bool started_ = false, done_ = false;
    Batch<T, L> current_;
    std::unique_ptr<Workers> workers_;
  };

 private:
  const Dataset<T, L>* data_;
  std::size_t n_;
  LoaderOptions opts_;
};

}  // namespace xgrad::data
