// Streams a .npy file larger than the memory it is allowed to use: the seed's linear
// regression (columns x1, x2, a bias column of ones, y) learned by minibatch SGD through
// NpyDataset + DataLoader + a compiled Function, with the plain update beta -= lr * grad.
// Reports rows per second and peak resident memory of each phase (shuffle off, a full
// shuffle, a shuffle in blocks of 64 rows) beside a plain sequential read() of the same
// file, and beside one pread() per row (per block of 64 rows) in a shuffled order without the
// loader: the bounds of a shuffle that reads every row (block) by itself.
//
//   stream_npy [--gib G] [--dir DIR] [--batch B] [--lr LR] [--workers W]
//              [--consumer-gathers] [--shuffled-rows R] [--cache-mib M] [--cold] [--remove]
//              [--no-reset]
//
// The file (G GiB of float64, default 2) is generated in DIR (default $TMPDIR or /tmp) if
// missing and kept for later runs unless --remove is given. Peak memory is measured per
// phase (VmHWM, reset between phases); --no-reset keeps the kernel's whole-run peak
// intact instead, for `/usr/bin/time -v stream_npy --no-reset`. --workers: the loader's
// prefetching threads (LoaderOptions::workers, default 1); --consumer-gathers: the loop
// gathers later batches itself while it waits (LoaderOptions::consumer_gathers). --shuffled-rows:
// stop the fully shuffled phases after R rows (default: the whole epoch).
//
// --cache-mib M: the file does not fit in the page cache. Every phase starts with the
// file dropped from the page cache, and a thread keeps at most about M MiB of it cached
// (every 20 ms it counts the file's cached pages with mincore and drops them all with
// posix_fadvise DONTNEED once there are more): what a memory limit below the file size
// does to the cache, without a cgroup. Phases then read from the disk.
//
// --cold: every phase starts with the file dropped from the page cache, and nothing else:
// for a run under a real memory limit smaller than the file (scripts/bench.sh runs it in a
// memory cgroup), where the kernel itself keeps the cache small. Pages cached before, by
// another cgroup, would otherwise be read without counting against the limit.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>
#include <xgrad/data/data.hpp>
#include <xgrad/xgrad.hpp>

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kBeta[3] = {1.5, -2.0, 0.5};  // y = 1.5 x1 - 2 x2 + 0.5 + noise

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Peak resident memory of this process in MiB since the last reset_peak() (VmHWM), or
// since start when the kernel cannot reset it (or --no-reset). A reset also resets what
// getrusage and /usr/bin/time report, so the whole run's peak is the largest phase peak.
bool g_reset = true;
bool reset_peak() {
  if (!g_reset) return false;
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  return bool(f.flush());
}
double peak_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024;
}

std::uint64_t next(std::uint64_t& s) { return xgrad::data::mix64(s += 0x9e3779b97f4a7c15ULL); }
double uniform(std::uint64_t& s) { return double(next(s) >> 11) * 0x1.0p-53 * 2 - 1; }  // [-1, 1)

double generate(const std::string& path, std::size_t rows) {
  reset_peak();
  std::printf("generating %s: %zu rows x 4 float64 (%.2f GiB) ...\n", path.c_str(), rows,
              double(rows) * 32 / (1 << 30));
  std::fflush(stdout);
  const auto t0 = Clock::now();
  xgrad::data::NpyWriter w(path, xgrad::data::Stored::float64, {rows, 4});
  std::vector<double> chunk;
  std::uint64_t s = 2024;
  for (std::size_t r = 0; r < rows;) {
    const std::size_t n = std::min<std::size_t>(rows - r, 1 << 15);
    chunk.resize(n * 4);
    for (std::size_t i = 0; i < n; ++i) {
      const double x1 = uniform(s), x2 = uniform(s), noise = 0.1 * uniform(s);
      chunk[4 * i] = x1;
      chunk[4 * i + 1] = x2;
      chunk[4 * i + 2] = 1;
      chunk[4 * i + 3] = kBeta[0] * x1 + kBeta[1] * x2 + kBeta[2] + noise;
    }
    w.write(std::span<const double>(chunk));
    r += n;
  }
  w.commit();
  const double peak = peak_mib();
  std::printf("  written in %.1f s, %.1f MiB peak RSS\n", seconds_since(t0), peak);
  return peak;
}

// Keeps at most about `mib` MiB of the file in the page cache while it lives (see
// --cache-mib); a no-op for mib 0. Dropping the file's pages also drops them for every
// other reader of the file, so use a file of this program's own.
class CacheLimit {
 public:
  CacheLimit(const std::string& path, double mib) {
    if (!(mib > 0)) return;
    fd_ = ::open(path.c_str(), O_RDONLY);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path);
    size_ = std::size_t(::lseek(fd_, 0, SEEK_END));
    const std::size_t page = std::size_t(::sysconf(_SC_PAGESIZE));
    map_ = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);  // never touched: no RSS
    if (map_ == MAP_FAILED) throw std::runtime_error("cannot map " + path);
    resident_.resize((size_ + page - 1) / page);
    limit_pages_ = std::size_t(mib * double(1 << 20)) / page;
    drop();
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (::mincore(map_, size_, resident_.data()) != 0) continue;
        std::size_t n = 0;
        for (unsigned char c : resident_) n += c & 1;
        if (n > limit_pages_) drop();
      }
    });
  }
  ~CacheLimit() {
    if (fd_ < 0) return;
    stop_ = true;
    thread_.join();
    ::munmap(map_, size_);
    ::close(fd_);
  }
  CacheLimit(const CacheLimit&) = delete;
  CacheLimit& operator=(const CacheLimit&) = delete;
  std::size_t drops() const { return drops_; }

 private:
  void drop() {
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
    ++drops_;
  }
  int fd_ = -1;
  std::size_t size_ = 0, limit_pages_ = 0;
  void* map_ = nullptr;
  std::vector<unsigned char> resident_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> drops_{0};
  std::thread thread_;
};

// Drops the file from the page cache (for --cold).
void drop_from_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

struct Phase {
  const char* name;
  std::size_t rows;
  double secs, peak;
};

void print(const Phase& p) {
  std::printf("%-40s %12zu rows %8.2f s %12.0f rows/s %8.1f MiB peak RSS\n", p.name, p.rows, p.secs,
              double(p.rows) / p.secs, p.peak);
  std::fflush(stdout);
}

// Plain sequential read() of the whole file in 8 MiB pieces (summing the values so the
// reads are used): the I/O ceiling for the loader.
Phase sequential_read(const std::string& path, std::size_t rows) {
  reset_peak();
  const auto t0 = Clock::now();
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  std::vector<double> buf(1 << 20);
  double sum = 0;
  for (ssize_t r; (r = ::read(fd, buf.data(), buf.size() * sizeof(double))) > 0;) {
    for (std::size_t i = 0, n = std::size_t(r) / sizeof(double); i < n; ++i) sum += buf[i];
  }
  ::close(fd);
  Phase p{"plain sequential read()", rows, seconds_since(t0), peak_mib()};
  if (sum == 42) std::printf(" ");  // keep the loop
  return p;
}

// One pread() per block of `block` rows, blocks in a shuffled order (Permutation(rows / block,
// 1, 0); block 1 is the loader's order of a full shuffle for seed 1, epoch 0), for the first
// max_rows rows: what a shuffle costs when every block is read by itself, without the loader
// (the bound of the shuffled phases: a read per block at a random place of the page cache).
Phase random_reads(const std::string& path, std::size_t rows, std::size_t block,
                   std::size_t max_rows, const char* name) {
  const std::uint64_t offset = xgrad::data::ArrayFile::open_npy(path).data_offset();
  reset_peak();
  const auto t0 = Clock::now();
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  const xgrad::data::Permutation order(rows / block, 1, 0);
  const std::size_t count = std::min(rows / block, max_rows / block + (max_rows % block != 0));
  std::vector<double> buf(4 * block);
  const std::size_t bytes = buf.size() * sizeof(double);
  double sum = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const off_t at = off_t(offset + order(i) * bytes);
    if (::pread(fd, buf.data(), bytes, at) != ssize_t(bytes))
      throw std::runtime_error("short read of " + path);
    sum += buf[3];
  }
  ::close(fd);
  Phase p{name, count * block, seconds_since(t0), peak_mib()};
  if (sum == 42) std::printf(" ");  // keep the loop
  return p;
}

// How the loader gathers: its prefetching threads, and whether the consumer helps.
struct Loading {
  std::size_t workers = 1;
  bool consumer_gathers = false;
};

// One SGD epoch over the file (its first max_rows rows, rounded up to a batch); beta
// starts at zero. shuffle_block > 1 shuffles runs of that many rows, which the dataset
// reads in one piece each. lr 0: the loader alone, its batches only summed.
Phase sgd_epoch(const xgrad::data::NpyDataset<double>& data, bool shuffle,
                std::size_t shuffle_block, std::size_t batch, double lr, const Loading& loading,
                std::size_t max_rows, const char* name) {
  reset_peak();
  const auto t0 = Clock::now();
  xgrad::Graph<double> g;
  auto X = g.input("X", {xgrad::open, 3});
  auto y = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::zeros<double>({3}));
  auto loss = 0.5 * xgrad::mean(xgrad::square(y - xgrad::matmul(X, beta)));
  auto step = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});  // compiled once
  xgrad::data::DataLoader loader(data, {.batch_size = batch,
                                        .shuffle = shuffle,
                                        .seed = 1,
                                        .workers = loading.workers,
                                        .consumer_gathers = loading.consumer_gathers,
                                        .shuffle_block = shuffle_block});
  double last_loss = 0;
  std::size_t rows = 0;
  if (lr == 0) {  // the loader alone: batches summed, no SGD step
    for (const auto& b : loader.epoch(0)) {
      last_loss += b.targets(0);
      rows += b.size();
      if (rows >= max_rows) break;
    }
    Phase p{name, rows, seconds_since(t0), peak_mib()};
    if (last_loss == 42) std::printf(" ");  // keep the loop
    return p;
  }
  for (const auto& b : loader.epoch(0)) {
    const auto& out = step.run(b.feeds(X, y));
    g.value(beta) -= lr * out[1];
    last_loss = out[0]();
    rows += b.size();
    if (rows >= max_rows) break;
  }
  Phase p{name, rows, seconds_since(t0), peak_mib()};
  const auto& bv = g.value(beta);
  std::printf("  beta = (%.4f, %.4f, %.4f), want (%.1f, %.1f, %.1f); last batch loss %.5f\n", bv(0),
              bv(1), bv(2), kBeta[0], kBeta[1], kBeta[2], last_loss);
  return p;
}

int usage() {
  std::fprintf(stderr,
               "usage: stream_npy [--gib G] [--dir DIR] [--batch B] [--lr LR] [--workers W] "
               "[--consumer-gathers] "
               "[--shuffled-rows R] [--cache-mib M] [--cold] [--remove] [--no-reset]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  double gib = 2.0, lr = 0.1, cache_mib = 0;
  std::size_t batch = 1024, shuffled_rows = SIZE_MAX;
  Loading loading;
  std::size_t& workers = loading.workers;
  bool remove = false, cold = false;
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp && *tmp ? tmp : "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--gib" && has_value) {
      gib = std::atof(argv[++i]);
    } else if (a == "--dir" && has_value) {
      dir = argv[++i];
    } else if (a == "--batch" && has_value) {
      batch = std::size_t(std::atoll(argv[++i]));
    } else if (a == "--lr" && has_value) {
      lr = std::atof(argv[++i]);
    } else if (a == "--workers" && has_value) {
      workers = std::size_t(std::atoll(argv[++i]));
    } else if (a == "--consumer-gathers") {
      loading.consumer_gathers = true;
    } else if (a == "--shuffled-rows" && has_value) {
      shuffled_rows = std::size_t(std::atoll(argv[++i]));
    } else if (a == "--cache-mib" && has_value) {
      cache_mib = std::atof(argv[++i]);
    } else if (a == "--cold") {
      cold = true;
    } else if (a == "--remove") {
      remove = true;
    } else if (a == "--no-reset") {
      g_reset = false;
    } else {
      return usage();
    }
  }
  if (!(gib > 0) || batch == 0 || workers == 0 || shuffled_rows == 0) return usage();
  const auto rows = std::size_t(gib * double(1ull << 30) / 32);
  const std::string path = dir + "/xgrad_stream_linreg_" + std::to_string(rows) + ".npy";
  try {
    bool reuse = false;
    try {
      const auto f = xgrad::data::ArrayFile::open_npy(path);
      reuse = f.shape() == std::vector<std::size_t>{rows, 4} &&
              f.format() == xgrad::data::StoredFormat{xgrad::data::Stored::float64, false};
    } catch (const xgrad::data::DataError&) {
    }
    double peak = 0;
    if (reuse) {
      std::printf("reusing %s (%zu rows x 4 float64)\n", path.c_str(), rows);
    } else {
      peak = generate(path, rows);
    }
    const double file_gib = double(rows) * 32 / (1 << 30);
    std::printf(
        "file %.2f GiB, batch %zu, lr %g, %zu loader worker(s)%s; peak RSS per phase (VmHWM%s)\n",
        file_gib, batch, lr, workers, loading.consumer_gathers ? " and the consumer" : "",
        reset_peak() ? ", reset per phase" : ", since start");
    if (cache_mib > 0) {
      std::printf(
          "page cache for the file limited to about %.0f MiB (dropped at each phase's start)\n",
          cache_mib);
    } else if (cold) {
      std::printf("the file is dropped from the page cache at each phase's start\n");
    } else {
      // An untimed read first: every phase then reads from the page cache, whatever the
      // kernel evicted since the file was written (a cold first phase measured the disk).
      sequential_read(path, rows);
    }
    std::vector<Phase> phases;
    auto run = [&](auto&& phase) {
      if (cold) drop_from_cache(path);
      const CacheLimit limit(path, cache_mib);
      phases.push_back(phase());
      print(phases.back());
      if (cache_mib > 0) std::printf("  (page cache dropped %zu times)\n", limit.drops());
    };
    run([&] { return sequential_read(path, rows); });
    xgrad::data::NpyDataset<double> data(path, {0, 1, 2}, {3});
    run([&] {
      return sgd_epoch(data, false, 1, batch, lr, loading, SIZE_MAX, "SGD epoch, shuffle off");
    });
    run([&] {
      return sgd_epoch(data, true, 1, batch, lr, loading, shuffled_rows, "SGD epoch, shuffled");
    });
    run([&] {
      return random_reads(path, rows, 1, shuffled_rows,
                          "one pread per row, shuffled order (bound)");
    });
    run([&] {
      return sgd_epoch(data, true, 64, batch, lr, loading, SIZE_MAX,
                       "SGD epoch, shuffled in blocks of 64 rows");
    });
    run([&] {
      return random_reads(path, rows, 64, SIZE_MAX,
                          "one pread per block of 64 rows, shuffled order (bound)");
    });
    run([&] {
      return sgd_epoch(data, false, 1, batch, 0, loading, SIZE_MAX,
                       "the loader alone, shuffle off (no SGD)");
    });
    const Phase &read = phases[0], &seq = phases[1], &shuf = phases[2], &bound = phases[3],
                &blocks = phases[4], &block_bound = phases[5];
    const auto rate = [](const Phase& p) { return double(p.rows) / p.secs; };
    std::printf(
        "loader / plain read: %.2f (shuffle off), %.3f (shuffled), %.2f (shuffled in blocks of "
        "64 rows); shuffled / one pread per row: %.2f; blocks of 64 / one pread per block: "
        "%.2f (the bound itself: %.2f of the plain read)\n",
        rate(seq) / rate(read), rate(shuf) / rate(read), rate(blocks) / rate(read),
        rate(shuf) / rate(bound), rate(blocks) / rate(block_bound), rate(block_bound) / rate(read));
    for (const Phase& p : phases) peak = std::max(peak, p.peak);
    std::printf("peak RSS of the whole run: %.1f MiB, for a %.0f MiB file\n", peak,
                file_gib * 1024);
    // Markdown rows for scripts/bench.sh: one run per phase (an epoch over a file of
    // gigabytes needs no repetitions to be stable).
    char setting[96] = "";
    if (workers > 1) std::snprintf(setting, sizeof setting, ", %zu workers", workers);
    if (loading.consumer_gathers) {
      const std::size_t n = std::strlen(setting);
      std::snprintf(setting + n, sizeof setting - n, ", consumer gathers too");
    }
    if (cache_mib > 0) {
      const std::size_t n = std::strlen(setting);
      std::snprintf(setting + n, sizeof setting - n, ", page cache %.0f MiB", cache_mib);
    }
    if (cold) {
      const std::size_t n = std::strlen(setting);
      std::snprintf(setting + n, sizeof setting - n, ", from the disk");
    }
    for (const Phase& p : phases) {
      std::printf(
          "MD | 5. .npy %.2f GiB, %zu rows x 4 f64, batch %zu%s | %s | %.2f s | %.3f M rows/s "
          "| %.2f GB/s | %.3f | %.1f MiB |\n",
          file_gib, p.rows, batch, setting, p.name, p.secs, rate(p) / 1e6, rate(p) * 32 / 1e9,
          rate(p) / rate(read), p.peak);
    }
    if (remove) std::remove(path.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stream_npy: %s\n", e.what());
    return 1;
  }
  return 0;
}
