// ArrayFile: IDX headers, positioned row reads and element conversion (the .npy header
// is in npy_format.cpp).
#include "xgrad/data/array_file.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../kernels/loops.hpp"
#include "io.hpp"
#include "npy_format.hpp"

namespace xgrad::data {

using detail::at_byte;
using detail::element_name;
using detail::fail;

std::size_t StoredFormat::size() const {
  switch (type) {
    case Stored::int8:
    case Stored::uint8:
      return 1;
    case Stored::int16:
    case Stored::uint16:
      return 2;
    case Stored::int32:
    case Stored::uint32:
    case Stored::float32:
      return 4;
    default:
      return 8;
  }
}

std::string StoredFormat::descr() const {
  // In the order of the Stored enumerators.
  static const char* const codes[] = {"i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"};
  return std::string(size() == 1 ? "|" : big_endian ? ">" : "<") + codes[static_cast<int>(type)];
}

namespace {

// --- IDX header ---------------------------------------------------------------------------

void parse_idx(ArrayFile::Impl& f) {
  const std::string& path = f.path;
  if (f.file_size == 0) fail(path, "", "empty file: expected an IDX file (magic 00 00 type dims)");
  unsigned char m[4] = {};
  const std::size_t have = static_cast<std::size_t>(std::min<std::uint64_t>(f.file_size, 4));
  f.read(0, have, m);
  if (have < 4) {
    fail(path, f.at(have),
         "truncated header: expected the 4-byte IDX magic number (00 00 type dims)");
  }
  if (m[0] != 0 || m[1] != 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "got %02x %02x", m[0], m[1]);
    fail(path, f.at(0),
         std::string("expected the IDX magic number 00 00: not an IDX file (") + buf + ")");
  }
  f.format.big_endian = true;
  static const std::pair<unsigned char, Stored> types[] = {
      {0x08, Stored::uint8}, {0x09, Stored::int8},    {0x0B, Stored::int16},
      {0x0C, Stored::int32}, {0x0D, Stored::float32}, {0x0E, Stored::float64}};
  auto it = std::find_if(std::begin(types), std::end(types),
                         [&](const auto& t) { return t.first == m[2]; });
  if (it == std::end(types)) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02X", m[2]);
    fail(path, f.at(2),
         std::string("unknown IDX type code ") + buf +
             ": expected 0x08 (ubyte), 0x09, 0x0B, 0x0C, 0x0D or 0x0E");
  }
  f.format.type = it->second;
  if (f.format.size() == 1) f.format.big_endian = false;
  const unsigned dims = m[3];
  if (dims == 0) fail(path, f.at(3), "0 dimensions: expected at least 1");
  const std::uint64_t hlen = 4 + 4ull * dims;
  if (f.file_size < hlen) {
    fail(path, f.at(f.file_size),
         "truncated header: expected " + std::to_string(hlen) + " bytes (4 + 4 x " +
             std::to_string(dims) + " dimensions), the file has " + std::to_string(f.file_size));
  }
  std::vector<unsigned char> d(4ull * dims);
  f.read(4, d.size(), d.data());
  for (unsigned i = 0; i < dims; ++i) {
    f.shape.push_back((std::size_t{d[4 * i]} << 24) | (std::size_t{d[4 * i + 1]} << 16) |
                      (std::size_t{d[4 * i + 2]} << 8) | std::size_t{d[4 * i + 3]});
  }
  f.finish(hlen, "from the header");
}

// --- element conversion ------------------------------------------------------------------

template <class S>
S load(const std::byte* p, bool swap) {
  if constexpr (sizeof(S) == 1) {
    S v;
    std::memcpy(&v, p, 1);
    return v;
  } else {
    using Bits =
        std::conditional_t<sizeof(S) == 2, std::uint16_t,
                           std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>>;
    Bits b;
    std::memcpy(&b, p, sizeof b);
    if (swap) {
      if constexpr (sizeof(S) == 2)
        b = __builtin_bswap16(b);
      else if constexpr (sizeof(S) == 4)
        b = __builtin_bswap32(b);
      else
        b = __builtin_bswap64(b);
    }
    S v;
    std::memcpy(&v, &b, sizeof v);
    return v;
  }
}

// Converts n elements; returns the index of the first one that does not fit in U, or n.
template <class S, class U>
std::size_t convert_run(const std::byte* src, bool swap, std::size_t n, U* dst) {
  if (n == 0) return 0;
  if constexpr (std::is_same_v<S, U>) {
    if (!swap) {
      std::memcpy(dst, src, n * sizeof(U));
      return n;
    }
  }
  if constexpr (sizeof(S) == 1 && std::is_floating_point_v<U>) {
    // Every byte fits: the common case of image pixels, at vector speed.
    xgrad::detail::widen(reinterpret_cast<const S*>(src), dst, n);
    return n;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const S v = load<S>(src + i * sizeof(S), swap);
    if constexpr (std::is_integral_v<U> && std::is_integral_v<S>) {
      if (!std::in_range<U>(v)) return i;
    } else if constexpr (std::is_integral_v<U>) {
      const double lo = static_cast<double>(std::numeric_limits<U>::min());
      if (!(static_cast<double>(v) >= lo && static_cast<double>(v) < -lo)) return i;
    }
    dst[i] = static_cast<U>(v);
  }
  return n;
}

template <class U>
std::size_t convert_any(StoredFormat f, const std::byte* src, std::size_t n, U* dst) {
  const bool swap = f.size() > 1 && f.big_endian != (std::endian::native == std::endian::big);
  switch (f.type) {
    case Stored::int8:
      return convert_run<std::int8_t>(src, swap, n, dst);
    case Stored::uint8:
      return convert_run<std::uint8_t>(src, swap, n, dst);
    case Stored::int16:
      return convert_run<std::int16_t>(src, swap, n, dst);
    case Stored::uint16:
      return convert_run<std::uint16_t>(src, swap, n, dst);
    case Stored::int32:
      return convert_run<std::int32_t>(src, swap, n, dst);
    case Stored::uint32:
      return convert_run<std::uint32_t>(src, swap, n, dst);
    case Stored::int64:
      return convert_run<std::int64_t>(src, swap, n, dst);
    case Stored::uint64:
      return convert_run<std::uint64_t>(src, swap, n, dst);
    case Stored::float32:
      return convert_run<float>(src, swap, n, dst);
    case Stored::float64:
      return convert_run<double>(src, swap, n, dst);
  }
  return n;
}

// --- row reads ---------------------------------------------------------------------------

// Rows rows[k, k + count) are first, first + 1, ...
struct Run {
  std::size_t first, count, k;
};
// Rows [first, first + count) of the file, read at once: runs [run_begin, run_end).
struct Span {
  std::size_t first, count, run_begin, run_end;
};

// What visit_rows needs per call, kept per thread so that a steady stream of batches
// allocates nothing; the buffer is not zeroed (every byte used is read first).
struct ReadScratch {
  std::vector<Run> runs;
  std::vector<Span> spans;
  std::vector<std::size_t> missed;
  std::unique_ptr<std::byte[]> buf;
  std::size_t capacity = 0;
  bool busy = false;

  std::byte* buffer(std::size_t n) {
    if (capacity < n) {
      buf.reset();
      buf.reset(new std::byte[n]);
      capacity = n;
    }
    return buf.get();
  }
};

// The thread's scratch, or `fallback` when a visitor reads rows itself (nested calls).
class ScratchLease {
 public:
  explicit ScratchLease(ReadScratch& fallback) {
    thread_local ReadScratch mine;
    s_ = mine.busy ? &fallback : &mine;
    s_->busy = true;
  }
  ~ScratchLease() { s_->busy = false; }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  ReadScratch& get() { return *s_; }

 private:
  ReadScratch* s_;
};

}  // namespace

// --- ArrayFile ---------------------------------------------------------------------------

ArrayFile::ArrayFile(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

ArrayFile ArrayFile::from_impl(std::shared_ptr<const Impl> impl) {
  return ArrayFile(std::move(impl));
}

namespace {

std::shared_ptr<ArrayFile::Impl> open_source(const std::string& path, bool allow_gzip) {
  auto f = std::make_shared<ArrayFile::Impl>();
  f->path = path;
  f->fd = detail::open_read(path, f->file_size);
  if (allow_gzip && f->file_size >= 2) {
    std::byte head[2];
    f->read(0, 2, head);
    if (detail::is_gzip(head, 2)) {
      f->memory = detail::gunzip(path);
      f->in_memory = true;
      f->file_size = f->memory.size();
      f->fd = detail::Fd();
      f->where_prefix = "decompressed ";
    }
  }
  return f;
}

}  // namespace

ArrayFile ArrayFile::open_npy(const std::string& path) {
  auto f = open_source(path, false);
  detail::parse_npy(*f);
  return ArrayFile(std::move(f));
}

ArrayFile ArrayFile::open_idx(const std::string& path) {
  auto f = open_source(path, true);
  parse_idx(*f);
  return ArrayFile(std::move(f));
}

const std::string& ArrayFile::path() const { return impl_->path; }
const std::vector<std::size_t>& ArrayFile::shape() const { return impl_->shape; }
StoredFormat ArrayFile::format() const { return impl_->format; }
std::size_t ArrayFile::rows() const { return impl_->rows; }
std::size_t ArrayFile::row_elements() const { return impl_->row_elements; }
std::size_t ArrayFile::row_bytes() const { return impl_->row_bytes; }
std::uint64_t ArrayFile::data_offset() const { return impl_->offset; }
bool ArrayFile::in_memory() const { return impl_->in_memory; }

void ArrayFile::read_rows(std::size_t first, std::size_t count, std::byte* out) const {
  const Impl& f = *impl_;
  if (first > f.rows || count > f.rows - first) {
    fail(f.path, "",
         "rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
             ") requested: expected a range within the " + std::to_string(f.rows) + " rows");
  }
  f.read(f.offset + std::uint64_t{first} * f.row_bytes, count * f.row_bytes, out);
}

void ArrayFile::visit_rows_impl(std::span<const std::size_t> rows, Visitor visit, void* ctx) const {
  const Impl& f = *impl_;
  const std::size_t m = rows.size(), rb = f.row_bytes;
  if (m == 0) return;
  // Reads from the file check the rows run by run below (a block shuffle's batch has a few
  // runs for a thousand rows); the other cases check them all first.
  if (rb == 0 || f.in_memory) check_indices(rows, f.rows, f.path);
  if (rb == 0) {
    const std::byte none{};
    for (std::size_t k = 0; k < m; ++k) visit(ctx, k, 1, &none);
    return;
  }
  if (f.in_memory) {
    // The rows of a shuffled batch are scattered, and each starts with a cache miss that the
    // hardware prefetcher cannot foresee: the row about 4 KiB ahead in the batch is
    // prefetched (its first 2 KiB; the hardware follows a longer row itself).
    const std::byte* base = f.memory.data() + f.offset;
    const std::size_t ahead = std::max<std::size_t>(1, 4096 / rb);
    const std::size_t lines = std::min<std::size_t>(rb, 2048);
    for (std::size_t k = 0; k < m;) {
      if (k + ahead < m) {
        const std::byte* p = base + rows[k + ahead] * rb;
        for (std::size_t b = 0; b < lines; b += 64) __builtin_prefetch(p + b);
      }
      std::size_t e = k + 1;
      while (e < m && rows[e] == rows[e - 1] + 1) ++e;
      visit(ctx, k, e - k, base + rows[k] * rb);
      k = e;
    }
    return;
  }
  // Runs of consecutive rows in the requested order (a block shuffle's blocks, a whole
  // batch in file order), sorted by first row and read as spans: runs that touch or lie
  // within kGap bytes of each other share one read of at most max(4 MiB, one row).
  constexpr std::size_t kGap = 4096, kSpan = std::size_t{4} << 20;
  const std::size_t gap_rows = kGap / rb, cap_rows = std::max<std::size_t>(1, kSpan / rb);
  ReadScratch local;
  ScratchLease lease(local);
  ReadScratch& s = lease.get();
  s.runs.clear();
  // A run of rows first, first + 1, ... is within the file when its first row is and its
  // count fits after it (a run whose rows wrap around passes SIZE_MAX, so it starts
  // outside). check_indices then names the first row outside.
  auto add_run = [&](std::size_t first, std::size_t count, std::size_t k) {
    if (first >= f.rows || count > f.rows - first) check_indices(rows, f.rows, f.path);
    s.runs.push_back({first, count, k});
  };
  std::size_t first = rows[0], count = 1, k0 = 0;
  for (std::size_t k = 1; k < m; ++k) {
    if (rows[k] == first + count && count < cap_rows) {
      ++count;
    } else {
      add_run(first, count, k0);
      first = rows[k], count = 1, k0 = k;
    }
  }
  add_run(first, count, k0);
  std::sort(s.runs.begin(), s.runs.end(),
            [](const Run& a, const Run& b) { return a.first < b.first; });
  s.spans.clear();
  std::size_t longest = 0;
  for (std::size_t i = 0; i < s.runs.size();) {
    const std::size_t lo = s.runs[i].first;
    std::size_t hi = lo + s.runs[i].count, j = i + 1;
    while (j < s.runs.size() && s.runs[j].first <= hi + gap_rows &&
           std::max(hi, s.runs[j].first + s.runs[j].count) - lo <= cap_rows) {
      hi = std::max(hi, s.runs[j].first + s.runs[j].count);
      ++j;
    }
    s.spans.push_back({lo, hi - lo, i, j});
    longest = std::max(longest, hi - lo);
    i = j;
  }
  std::byte* buf = s.buffer(longest * rb);
  auto visit_span = [&](const Span& sp) {
    for (std::size_t r = sp.run_begin; r < sp.run_end; ++r) {
      const Run& run = s.runs[r];
      const std::byte* p = buf + (run.first - sp.first) * rb;
      visit(ctx, run.k, run.count, p);
    }
  };
  // Spans in the page cache are read and visited at once; for the others the kernel is
  // asked to fetch them all in the background before they are read one by one, so that a
  // batch not in the cache waits for the disk about once rather than once per span.
  s.missed.clear();
  for (std::size_t i = 0; i < s.spans.size(); ++i) {
    const Span& sp = s.spans[i];
    if (detail::pread_cached(f.fd.get(), f.offset + std::uint64_t{sp.first} * rb, sp.count * rb,
                             buf)) {
      visit_span(sp);
    } else {
      s.missed.push_back(i);
    }
  }
  if (s.missed.size() > 1) {
    for (std::size_t i : s.missed)
      detail::will_need(f.fd.get(), f.offset + std::uint64_t{s.spans[i].first} * rb,
                        s.spans[i].count * rb);
  }
  for (std::size_t i : s.missed) {
    const Span& sp = s.spans[i];
    f.read(f.offset + std::uint64_t{sp.first} * rb, sp.count * rb, buf);
    visit_span(sp);
  }
}

template <Element U>
void ArrayFile::convert(const std::byte* row, std::size_t row_index, std::size_t first,
                        std::size_t count, U* out) const {
  const Impl& f = *impl_;
  const std::size_t es = f.format.size();
  const std::size_t bad = convert_any(f.format, row + first * es, count, out);
  if (bad != count) {
    const std::uint64_t off =
        f.offset + std::uint64_t{row_index} * f.row_bytes + (first + bad) * es;
    double v = 0;
    convert_any(f.format, row + (first + bad) * es, 1, &v);
    fail(f.path, f.at(off),
         f.format.descr() + " value " + std::to_string(v) + " (row " + std::to_string(row_index) +
             "): expected a value that fits in " + element_name<U>());
  }
}

template <Element U>
void ArrayFile::require_convertible(const std::string& role) const {
  if (std::is_integral_v<U> && impl_->format.is_float()) {
    fail(impl_->path, "",
         "dtype " + impl_->format.descr() +
             " holds floating-point values: expected an integer dtype for " + role + " of type " +
             element_name<U>());
  }
}

template <Element U>
void ArrayFile::gather(std::span<const std::size_t> rows, U* out) const {
  const std::size_t re = row_elements(), rb = row_bytes();
  const bool raw = stores_as<U>();
  visit_row_runs(rows, [&](std::size_t k, std::size_t count, const std::byte* bytes) {
    if (raw) {  // a run of rows of U is one copy (none for rows of no bytes: out may be null)
      if (rb) std::memcpy(out + k * re, bytes, count * rb);
      return;
    }
    for (std::size_t t = 0; t < count; ++t)
      convert<U>(bytes + t * rb, rows[k + t], 0, re, out + (k + t) * re);
  });
}

#define XGRAD_DATA_INSTANTIATE(U)                                                                  \
  template void ArrayFile::convert<U>(const std::byte*, std::size_t, std::size_t, std::size_t, U*) \
      const;                                                                                       \
  template void ArrayFile::require_convertible<U>(const std::string&) const;                       \
  template void ArrayFile::gather<U>(std::span<const std::size_t>, U*) const;
XGRAD_DATA_INSTANTIATE(float)
XGRAD_DATA_INSTANTIATE(double)
XGRAD_DATA_INSTANTIATE(std::int32_t)
XGRAD_DATA_INSTANTIATE(std::int64_t)
#undef XGRAD_DATA_INSTANTIATE

}  // namespace xgrad::data
