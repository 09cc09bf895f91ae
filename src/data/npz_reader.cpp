// NpzFile: the zip directory through libzip, each .npy member's header parsed by the
// .npy code (npy_format.cpp) from the first bytes of its decompressed stream.
#include <zip.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "io.hpp"
#include "npy_format.hpp"
#include "xgrad/data/npz.hpp"

namespace xgrad::data {

using detail::element_name;
using detail::fail;

struct NpzFile::Impl {
  std::string path;
  zip_t* za = nullptr;
  std::vector<NpzEntry> entries;
  std::vector<zip_uint64_t> index;  // zip index of each entry
  std::map<std::string, std::size_t> by_name;
  mutable std::mutex mutex;  // libzip archives are not safe for concurrent reads

  ~Impl() {
    if (za) zip_discard(za);
  }
  // "<path>: <member>", the path the member's errors name.
  std::string where(const NpzEntry& e) const { return path + ": " + e.member; }
  const NpzEntry& entry(const std::string& name, std::size_t& at) const;
  // Appends decompressed bytes of the open member to out until it holds `upto` bytes.
  void read_into(zip_file_t* zf, const NpzEntry& e, std::vector<std::byte>& out,
                 std::uint64_t upto) const;
  std::vector<std::byte> read_member(std::size_t at) const;
  std::shared_ptr<ArrayFile::Impl> array_impl(const NpzEntry& e) const;
};

namespace {

std::string zip_message(int code) {
  zip_error_t e;
  zip_error_init_with_code(&e, code);
  std::string s = zip_error_strerror(&e);
  zip_error_fini(&e);
  return s;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

const NpzEntry& NpzFile::Impl::entry(const std::string& name, std::size_t& at) const {
  auto it = by_name.find(name);
  if (it == by_name.end()) {
    std::string have;
    std::size_t shown = 0;
    for (const auto& e : entries) {
      if (shown++ == 8) {
        have += ", ...";
        break;
      }
      have += (have.empty() ? "'" : ", '") + e.name + "'";
    }
    fail(path, "",
         "no entry '" + name + "': expected one of the " + std::to_string(entries.size()) +
             " entries" + (have.empty() ? std::string() : " (" + have + ")"));
  }
  at = it->second;
  return entries[at];
}

void NpzFile::Impl::read_into(zip_file_t* zf, const NpzEntry& e, std::vector<std::byte>& out,
                              std::uint64_t upto) const {
  upto = std::min(upto, e.bytes);
  while (out.size() < upto) {
    const std::size_t old = out.size();
    // At least 4 KiB (headers are read in few calls), at most 16 MiB a step (a corrupt
    // directory's size claims no more memory than the data really read).
    const std::uint64_t step = std::min<std::uint64_t>(upto - old, std::uint64_t{16} << 20);
    const auto want = static_cast<std::size_t>(
        std::max<std::uint64_t>(step, std::min<std::uint64_t>(4096, e.bytes - old)));
    out.resize(old + want);
    const zip_int64_t r = zip_fread(zf, out.data() + old, want);
    if (r < 0) {
      out.resize(old);
      fail(where(e), "", std::string("cannot read the member: ") + zip_file_strerror(zf));
    }
    out.resize(old + static_cast<std::size_t>(r));
    if (r == 0) {
      fail(where(e), detail::at_byte(old),
           "member ends early: expected " + std::to_string(e.bytes) + " bytes");
    }
  }
}

std::vector<std::byte> NpzFile::Impl::read_member(std::size_t at) const {
  const NpzEntry& e = entries[at];
  std::lock_guard<std::mutex> lock(mutex);
  zip_file_t* zf = zip_fopen_index(za, index[at], 0);
  if (!zf) fail(where(e), "", std::string("cannot open the member: ") + zip_strerror(za));
  struct Close {
    zip_file_t* f;
    ~Close() { zip_fclose(f); }
  } close{zf};
  std::vector<std::byte> out;
  out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(e.bytes, std::uint64_t{64} << 20)));
  read_into(zf, e, out, e.bytes);
  // Reading past the end makes libzip check the CRC of what was read.
  std::byte extra;
  const zip_int64_t r = zip_fread(zf, &extra, 1);
  if (r < 0) fail(where(e), "", std::string("corrupt member: ") + zip_file_strerror(zf));
  if (r > 0)
    fail(where(e), "", "member longer than its recorded " + std::to_string(e.bytes) + " bytes");
  return out;
}

std::shared_ptr<ArrayFile::Impl> NpzFile::Impl::array_impl(const NpzEntry& e) const {
  auto f = std::make_shared<ArrayFile::Impl>();
  f->path = where(e);
  f->in_memory = true;
  f->file_size = e.bytes;
  return f;
}

NpzFile::NpzFile(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

NpzFile NpzFile::open(const std::string& path) {
  auto z = std::make_shared<Impl>();
  z->path = path;
  {
    std::uint64_t size = 0;
    detail::open_read(path, size);  // a missing file or a directory, named like the others
    if (size == 0) fail(path, "", "empty file: expected a .npz (zip) archive");
  }
  int code = 0;
  z->za = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (!z->za) {
    fail(path, "",
         "not a readable .npz archive (" + zip_message(code) +
             "): expected a complete zip file such as numpy.savez writes");
  }
  const zip_int64_t n = zip_get_num_entries(z->za, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    const auto u = static_cast<zip_uint64_t>(i);
    if (zip_stat_index(z->za, u, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME)) {
      fail(path, "", "entry " + std::to_string(i) + ": " + zip_strerror(z->za));
    }
    NpzEntry e;
    e.member = st.name;
    if (ends_with(e.member, "/")) continue;  // a directory
    e.bytes = st.size;
    e.compressed = st.comp_method != ZIP_CM_STORE;
    e.is_array = ends_with(e.member, ".npy");
    e.name = e.is_array ? e.member.substr(0, e.member.size() - 4) : e.member;
    if (e.is_array) {
      // The header, from the first bytes of the member's (decompressed) stream.
      auto f = z->array_impl(e);
      zip_file_t* zf = zip_fopen_index(z->za, u, 0);
      if (!zf) {
        e.error = z->where(e) + ": cannot open the member: " + zip_strerror(z->za);
      } else {
        const Impl& zr = *z;
        f->fill = [&zr, &e, zf](std::vector<std::byte>& mem, std::uint64_t end) {
          zr.read_into(zf, e, mem, end);
        };
        try {
          detail::parse_npy(*f);
          e.format = f->format;
          e.shape = f->shape;
        } catch (const DataError& err) {
          e.error = detail::message_of(err);
        }
        zip_fclose(zf);
      }
    }
    if (z->by_name.count(e.name)) continue;  // a repeated name: the first one counts
    z->by_name.emplace(e.name, z->entries.size());
    z->entries.push_back(std::move(e));
    z->index.push_back(u);
  }
  return NpzFile(std::move(z));
}

const std::string& NpzFile::path() const { return impl_->path; }

const std::vector<NpzEntry>& NpzFile::entries() const { return impl_->entries; }

const NpzEntry* NpzFile::find(const std::string& name) const {
  auto it = impl_->by_name.find(name);
  return it == impl_->by_name.end() ? nullptr : &impl_->entries[it->second];
}

ArrayFile NpzFile::array(const std::string& name) const {
  std::size_t at = 0;
  const NpzEntry& e = impl_->entry(name, at);
  if (!e.is_array) {
    fail(impl_->path, "",
         "entry '" + name + "' is a text entry: expected an array ('.npy' member)");
  }
  if (!e.error.empty()) throw DataError(e.error);
  auto f = impl_->array_impl(e);
  f->memory = impl_->read_member(at);
  detail::parse_npy(*f);
  return ArrayFile::from_impl(std::move(f));
}

template <Element U>
xt::xarray<U> NpzFile::read(const std::string& name) const {
  return detail::read_array<U>(array(name),
                               "NpzFile::read<" + std::string(element_name<U>()) + ">");
}

std::string NpzFile::read_text(const std::string& name) const {
  std::size_t at = 0;
  impl_->entry(name, at);
  const std::vector<std::byte> b = impl_->read_member(at);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

template xt::xarray<float> NpzFile::read<float>(const std::string&) const;
template xt::xarray<double> NpzFile::read<double>(const std::string&) const;
template xt::xarray<std::int32_t> NpzFile::read<std::int32_t>(const std::string&) const;
template xt::xarray<std::int64_t> NpzFile::read<std::int64_t>(const std::string&) const;

}  // namespace xgrad::data
