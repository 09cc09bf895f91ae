// DataLoader and its epochs (see include/xgrad/data/loader.hpp): the order of each epoch,
// and the worker threads that gather batches ahead of the consumer.
#include "xgrad/data/loader.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include "../exec/thread_pool.hpp"
#include "instantiate.hpp"

namespace xgrad::data {

PositionRange shard_batch_positions(std::size_t n, std::size_t batch_size, std::size_t shards,
                                    std::size_t shard, std::size_t b) {
  if (batch_size == 0 || shards == 0 || shard >= shards || shards > n) {
    throw DataError("shard_batch_positions: shard " + std::to_string(shard) + " of " +
                    std::to_string(shards) + ", batch_size " + std::to_string(batch_size) + ", " +
                    std::to_string(n) +
                    " examples: expected batch_size >= 1 and shard < shards <= examples");
  }
  const std::size_t s = n / shards;
  if (b * batch_size >= s) {
    throw DataError("shard_batch_positions: batch " + std::to_string(b) + " of a shard of " +
                    std::to_string(s) + " examples in batches of " + std::to_string(batch_size) +
                    ": expected < " + std::to_string((s + batch_size - 1) / batch_size));
  }
  const std::size_t c = std::min(batch_size, s - b * batch_size);
  return {b * batch_size * shards + shard * c, c};
}

namespace {
constexpr std::size_t kMaxWorkers = 256;  // LoaderOptions::workers; more is a mistake
}  // namespace

template <Element T, Element L>
DataLoader<T, L>::DataLoader(const Dataset<T, L>& data, const LoaderOptions& options)
    : data_(&data), n_(data.size()), opts_(options) {
  if (opts_.batch_size == 0) throw DataError("DataLoader: batch_size 0: expected at least 1");
  if (opts_.shuffle_block == 0) {
    throw DataError("DataLoader: shuffle_block 0: expected at least 1 row per block");
  }
  if (opts_.workers == 0 || opts_.workers > kMaxWorkers) {
    throw DataError("DataLoader: workers " + std::to_string(opts_.workers) + ": expected 1 to " +
                    std::to_string(kMaxWorkers) + " prefetching threads (prefetch = 0 for none)");
  }
  if (n_ == 0) throw DataError("DataLoader: the data set is empty: expected at least 1 example");
  if (opts_.shards == 0 || opts_.shard >= opts_.shards || opts_.shards > n_) {
    throw DataError("DataLoader: shard " + std::to_string(opts_.shard) + " of " +
                    std::to_string(opts_.shards) + " over " + std::to_string(n_) +
                    " examples: expected shard < shards <= data set size");
  }
  if (opts_.drop_last && shard_size() < opts_.batch_size) {
    throw DataError("DataLoader: drop_last with batch_size " + std::to_string(opts_.batch_size) +
                    " over " + std::to_string(shard_size()) +
                    " examples would yield no batch: expected batch_size <= data set size" +
                    (opts_.shards > 1 ? " / shards" : ""));
  }
}

template <Element T, Element L>
Permutation DataLoader<T, L>::order(std::size_t epoch) const {
  return opts_.shuffle ? Permutation(n_, opts_.seed, epoch, opts_.shuffle_block)
                       : Permutation::identity(n_);
}

template <Element T, Element L>
std::vector<std::size_t> DataLoader<T, L>::batch_indices(std::size_t epoch, std::size_t b) const {
  if (b >= num_batches()) {
    throw DataError("DataLoader: batch " + std::to_string(b) + " requested: expected < " +
                    std::to_string(num_batches()) + " batches per epoch");
  }
  const Permutation p = order(epoch);
  const PositionRange r = shard_batch_positions(n_, opts_.batch_size, opts_.shards, opts_.shard, b);
  std::vector<std::size_t> idx(r.count);
  p.fill(r.first, idx);
  return idx;
}

namespace {

/// The data set's class name ("MyData"), for messages about a gather() it implements.
std::string type_name(const std::type_info& t) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(t.name(), nullptr, nullptr, &status),
                                           std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(t.name());
}

}  // namespace

template <Element T, Element L>
Batch<T, L> DataLoader<T, L>::batch(std::size_t epoch, std::size_t b) const {
  const std::vector<std::size_t> idx = batch_indices(epoch, b);
  Batch<T, L> out = data_->gather(idx);
  // A user's gather() that returns fewer (or more) rows than indices would otherwise
  // surface later as a shape error in a graph, or as rows silently missing.
  auto rows = [](const auto& a) { return a.dimension() ? a.shape(0) : std::size_t{0}; };
  if (rows(out.features) != idx.size() || rows(out.targets) != idx.size()) {
    throw DataError("DataLoader: data set " + type_name(typeid(*data_)) + " (" +
                    std::to_string(n_) + " examples) gathered " +
                    std::to_string(rows(out.features)) + " feature rows and " +
                    std::to_string(rows(out.targets)) + " target rows for " +
                    std::to_string(idx.size()) + " indices (batch " + std::to_string(b) +
                    " of epoch " + std::to_string(epoch) + "): expected one row per index");
  }
  return out;
}

// Gathers the epoch's batches ahead of the consumer on min(workers, prefetch) threads
// (and, with consumer_gathers, on the consumer's while it waits). Batches are claimed in
// order, at most `prefetch` claimed and not yet taken by the consumer; batch b is gathered
// into slot b mod prefetch, which batch b - prefetch has left by then, so the consumer takes
// them in order whatever thread finishes first. A gather that throws stores its exception in
// its slot and no batch after it is claimed: the consumer receives the batches before it,
// then the exception.
//
// The consumer spins for up to kSpinUs before it blocks on a batch not ready yet: when a
// gather takes about as long as a step (a file in the page cache, a small model), it would
// otherwise be woken for every batch, which costs more than the gather on a virtual machine
// (workload 5 in file order, docs/benchmarks.md). `ready` is atomic for the spin; every change
// is still made under the mutex. The workers do not spin for a free slot: they would take
// the core from the compute threads of a step that takes longer than a gather.
template <Element T, Element L>
struct DataLoader<T, L>::Epoch::Workers {
  static constexpr unsigned kSpinUs = 50;

  struct Slot {
    Batch<T, L> batch;
    std::exception_ptr error;
    std::atomic<bool> ready{false};
  };

  Workers(const DataLoader& loader, std::size_t epoch, std::size_t first, std::size_t count)
      : loader(loader),
        epoch(epoch),
        count(count),
        slots(loader.opts_.prefetch),
        claimed(first),
        taken(first),
        failed(count) {
    const std::size_t n = std::min(loader.opts_.workers, loader.opts_.prefetch);
    threads.reserve(n);
    try {
      for (std::size_t i = 0; i < n; ++i) threads.emplace_back([this] { work(); });
    } catch (...) {
      stop_and_join();
      throw;
    }
  }
  ~Workers() { stop_and_join(); }

  void stop_and_join() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    can_claim.notify_all();
    for (std::thread& t : threads) t.join();
  }

  // Moves the next batch (or its gather's exception) out of its slot into out, waiting
  // for it if need be; out's previous arrays are freed outside the lock. With
  // consumer_gathers, while its batch is not ready the consumer first gathers the later
  // batches it may claim, then spins or sleeps.
  void take(Batch<T, L>& out, std::exception_ptr& error) {
    Batch<T, L> next;
    Slot& s = slots[taken % slots.size()];  // only this thread changes `taken`
    if (loader.opts_.consumer_gathers && !s.ready.load(std::memory_order_acquire)) {
      std::unique_lock<std::mutex> lock(mutex);
      while (!s.ready.load(std::memory_order_relaxed) && may_claim()) gather(lock);
    }
    exec::spin_until([&] { return s.ready.load(std::memory_order_acquire); }, kSpinUs);
    {
      std::unique_lock<std::mutex> lock(mutex);
      is_ready.wait(lock, [&] { return s.ready.load(std::memory_order_relaxed); });
      std::swap(next, s.batch);
      std::swap(error, s.error);
      s.ready.store(false, std::memory_order_relaxed);
      ++taken;
    }
    can_claim.notify_one();  // a slot is free
    out = std::move(next);
  }

  // Under the mutex: no batch will be claimed any more (stopped, none left, or one failed
  // before the next).
  bool finished() const { return stop || claimed >= count || claimed > failed; }
  // Under the mutex: the next batch may be claimed now (its slot has been taken).
  bool may_claim() const { return !finished() && claimed < taken + slots.size(); }

  // Claims the next batch and gathers it into its slot; called with `lock` held, which is
  // released during the gather.
  void gather(std::unique_lock<std::mutex>& lock) {
    const std::size_t b = claimed++;
    lock.unlock();
    Batch<T, L> batch;
    std::exception_ptr error;
    try {
      batch = loader.batch(epoch, b);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    Slot& s = slots[b % slots.size()];
    s.batch = std::move(batch);
    s.error = std::move(error);
    s.ready.store(true, std::memory_order_release);
    if (s.error) failed = std::min(failed, b);
    is_ready.notify_one();  // one consumer
  }

  void work() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      can_claim.wait(lock, [this] { return finished() || may_claim(); });
      if (finished()) return;
      gather(lock);
    }
  }

  const DataLoader& loader;
  const std::size_t epoch, count;
  std::mutex mutex;
  std::condition_variable can_claim, is_ready;
  std::vector<Slot> slots;  // one per batch in flight
  std::size_t claimed;      // the next batch to claim
  std::size_t taken;        // the next batch the consumer takes
  std::size_t failed;       // the first batch whose gather threw (count: none)
  bool stop = false;
  std::vector<std::thread> threads;  // last: started once everything they read exists
};

template <Element T, Element L>
DataLoader<T, L>::Epoch::Epoch(const DataLoader& loader, std::size_t e, std::size_t first)
    : loader_(&loader), epoch_(e), count_(loader.num_batches()), next_(first) {
  if (first > count_) {
    throw DataError("DataLoader::epoch: first batch " + std::to_string(first) + " of an epoch of " +
                    std::to_string(count_) + " batches");
  }
}

template <Element T, Element L>
DataLoader<T, L>::Epoch::~Epoch() = default;

template <Element T, Element L>
typename DataLoader<T, L>::Epoch::iterator DataLoader<T, L>::Epoch::begin() {
  if (started_) throw DataError("DataLoader::Epoch: begin() called twice: an epoch is single-pass");
  started_ = true;
  if (loader_->opts_.prefetch > 0 && next_ < count_)
    workers_ = std::make_unique<Workers>(*loader_, epoch_, next_, count_);
  advance();
  return iterator(this);
}

template <Element T, Element L>
void DataLoader<T, L>::Epoch::advance() {
  if (done_) return;
  if (next_ == count_) {
    done_ = true;
    current_ = {};
    return;
  }
  if (!workers_) {
    current_ = loader_->batch(epoch_, next_++);
    return;
  }
  std::exception_ptr error;
  workers_->take(current_, error);
  if (error) {
    done_ = true;
    current_ = {};
    std::rethrow_exception(error);
  }
  ++next_;
}

// Instantiates the nested Epoch (and its iterator) too.
#define XGRAD_DATA_INSTANTIATE(T, L) template class DataLoader<T, L>;
XGRAD_DATA_FOR_EACH_ELEMENT_PAIR(XGRAD_DATA_INSTANTIATE)
#undef XGRAD_DATA_INSTANTIATE

}  // namespace xgrad::data
