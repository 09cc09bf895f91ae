// NpzWriter: libzip writes the archive through a source of our own that writes to the
// temporary file (atomic_file.hpp), so the archive reaches the disk with one fsync and one
// rename and libzip never creates files of its own.
#include <sys/types.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>
#include <string>
#include <vector>

#include "atomic_file.hpp"
#include "io.hpp"
#include "npy_format.hpp"
#include "xgrad/data/npz.hpp"

namespace xgrad::data {

using detail::fail;

namespace {

// 1980-01-01 12:00 UTC: the start of the zip (DOS) calendar in every time zone, so equal
// contents give equal archives.
constexpr std::time_t kMemberTime = 315576000;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

struct NpzWriter::Impl {
  std::string path, tmp;
  NpzOptions options;
  int fd = -1;
  bool committed = false;
  std::vector<std::string> names, members;
  std::vector<std::vector<std::byte>> contents;  // one per member, alive until zip_close
  std::set<std::string> member_set;
  // The write source's state while libzip writes the archive.
  std::uint64_t pos = 0, end = 0;
  zip_error_t error{};
  std::string io_error;  // the first write failure, with errno's text

  void check_name(const std::string& name, const std::string& member, const char* what) const {
    if (committed) fail(path, "", "adding " + quoted(name) + " after commit(): expected none");
    std::string problem;
    if (name.empty()) fail(path, "", std::string("empty ") + what + " name: expected a name");
    if (name.find('\0') != std::string::npos) problem = "a NUL byte";
    if (name.front() == '/') problem = "a leading '/'";
    if (("/" + name + "/").find("/../") != std::string::npos) problem = "a '..' component";
    if (!problem.empty()) {
      fail(path, "",
           std::string(what) + " name " + quoted(name) + " has " + problem +
               ": expected a relative name such as 'layer.0.weight'");
    }
    if (member_set.count(member)) {
      fail(path, "",
           std::string(what) + " " + quoted(name) + " added twice: expected unique names");
    }
  }
  void add_member(std::string name, std::string member, std::vector<std::byte> data) {
    member_set.insert(member);
    names.push_back(std::move(name));
    members.push_back(std::move(member));
    contents.push_back(std::move(data));
  }
  zip_int64_t source(void* data, zip_uint64_t len, zip_source_cmd_t cmd);
  void write_archive();
};

namespace {

zip_int64_t source_callback(void* self, void* data, zip_uint64_t len, zip_source_cmd_t cmd) {
  return static_cast<NpzWriter::Impl*>(self)->source(data, len, cmd);
}

}  // namespace

// A writable libzip source over the temporary file; reading yields an empty archive, as
// the archive is always created anew (ZIP_TRUNCATE).
zip_int64_t NpzWriter::Impl::source(void* data, zip_uint64_t len, zip_source_cmd_t cmd) {
  switch (cmd) {
    case ZIP_SOURCE_SUPPORTS:
      return ZIP_SOURCE_SUPPORTS_WRITABLE;
    case ZIP_SOURCE_STAT: {
      auto* st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len, &error);
      if (!st) return -1;
      zip_stat_init(st);
      st->size = 0;
      st->valid |= ZIP_STAT_SIZE;
      return sizeof(zip_stat_t);
    }
    case ZIP_SOURCE_ERROR:
      return zip_error_to_data(&error, data, len);
    case ZIP_SOURCE_OPEN:
    case ZIP_SOURCE_READ:
    case ZIP_SOURCE_CLOSE:
    case ZIP_SOURCE_SEEK:
    case ZIP_SOURCE_TELL:
    case ZIP_SOURCE_FREE:
    case ZIP_SOURCE_ROLLBACK_WRITE:
    case ZIP_SOURCE_REMOVE:
      return 0;
    case ZIP_SOURCE_BEGIN_WRITE:
      pos = end = 0;
      if (::ftruncate(fd, 0) != 0) {
        io_error = "cannot truncate " + tmp + ": " + detail::errno_text(errno);
        zip_error_set(&error, ZIP_ER_WRITE, errno);
        return -1;
      }
      return 0;
    case ZIP_SOURCE_WRITE:
      try {
        detail::write_all_at(fd, tmp, pos, data, static_cast<std::size_t>(len));
      } catch (const DataError& e) {
        if (io_error.empty()) io_error = e.what();
        zip_error_set(&error, ZIP_ER_WRITE, errno);
        return -1;
      }
      pos += len;
      end = std::max(end, pos);
      return static_cast<zip_int64_t>(len);
    case ZIP_SOURCE_SEEK_WRITE: {
      const zip_int64_t at = zip_source_seek_compute_offset(pos, end, data, len, &error);
      if (at < 0) return -1;
      pos = static_cast<std::uint64_t>(at);
      return 0;
    }
    case ZIP_SOURCE_TELL_WRITE:
      return static_cast<zip_int64_t>(pos);
    case ZIP_SOURCE_COMMIT_WRITE:
      return 0;  // NpzWriter::commit() syncs and renames once zip_close() succeeded
    default:
      zip_error_set(&error, ZIP_ER_OPNOTSUPP, 0);
      return -1;
  }
}

void NpzWriter::Impl::write_archive() {
  if (members.empty()) {
    // libzip removes an archive left without members; numpy.savez() writes this record,
    // the whole of an empty zip file (end of central directory, every field zero).
    static const unsigned char empty_zip[22] = {'P', 'K', 5, 6};
    detail::write_all(fd, tmp, empty_zip, sizeof empty_zip);
    return;
  }
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_function_create(&source_callback, this, &err);
  zip_t* za = src ? zip_open_from_source(src, ZIP_CREATE | ZIP_TRUNCATE, &err) : nullptr;
  if (!za) {
    const std::string msg = zip_error_strerror(&err);
    zip_error_fini(&err);
    if (src) zip_source_free(src);
    fail(path, "", "cannot start the zip archive: " + msg);
  }
  zip_error_fini(&err);
  auto give_up = [&](const std::string& what) {
    const std::string msg = io_error.empty() ? std::string(zip_strerror(za)) : io_error;
    zip_discard(za);
    fail(path, "", what + ": " + msg);
  };
  const zip_int32_t method = options.compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE;
  const zip_uint32_t level = options.compress ? static_cast<zip_uint32_t>(options.level) : 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    zip_source_t* m = zip_source_buffer(za, contents[i].data(), contents[i].size(), 0);
    if (!m) give_up("cannot add " + quoted(members[i]));
    const zip_int64_t idx = zip_file_add(za, members[i].c_str(), m, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(m);
      give_up("cannot add " + quoted(members[i]));
    }
    const auto u = static_cast<zip_uint64_t>(idx);
    if (zip_set_file_compression(za, u, method, level) != 0 ||
        zip_file_set_mtime(za, u, kMemberTime, 0) != 0) {
      give_up("cannot set up " + quoted(members[i]));
    }
  }
  if (zip_close(za) != 0) give_up("cannot write the zip archive to " + tmp);
}

NpzWriter::NpzWriter(std::string path, NpzOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.path = std::move(path);
  w.options = options;
  zip_error_init(&w.error);
  if (options.level < 0 || options.level > 9) {
    fail(w.path, "",
         "compression level " + std::to_string(options.level) +
             ": expected 0 (zlib's default) or 1 to 9");
  }
  w.fd = detail::create_temp(w.path, w.tmp);
}

NpzWriter::~NpzWriter() {
  if (impl_->fd >= 0) ::close(impl_->fd);
  if (!impl_->committed && !impl_->tmp.empty()) ::unlink(impl_->tmp.c_str());
  zip_error_fini(&impl_->error);
}

void NpzWriter::add_bytes(const std::string& name, Stored type,
                          const std::vector<std::size_t>& shape, const void* data,
                          std::size_t bytes) {
  Impl& w = *impl_;
  const std::string member = name + ".npy";
  w.check_name(name, member, "array");
  const StoredFormat f{type, false};
  std::uint64_t expected = f.size();
  bool overflow = false;
  for (std::size_t d : shape)
    overflow |= __builtin_mul_overflow(expected, std::uint64_t{d}, &expected);
  if (overflow || expected != bytes) {
    fail(w.path, "",
         "array " + quoted(name) + ": " + std::to_string(bytes) + " data bytes: expected " +
             (overflow ? std::string("more than 2^64") : std::to_string(expected)) +
             " for its shape and dtype " + f.descr());
  }
  const std::string header = detail::npy_header(f, shape);
  std::vector<std::byte> content(header.size() + bytes);
  std::memcpy(content.data(), header.data(), header.size());
  if (bytes) std::memcpy(content.data() + header.size(), data, bytes);
  w.add_member(name, member, std::move(content));
}

void NpzWriter::add_text(const std::string& name, std::string_view text) {
  Impl& w = *impl_;
  if (name.size() >= 4 && name.compare(name.size() - 4, 4, ".npy") == 0) {
    fail(w.path, "",
         "text entry " + quoted(name) +
             " ends in '.npy': expected another name (NumPy reads "
             "'.npy' members as arrays)");
  }
  w.check_name(name, name, "text entry");
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  w.add_member(name, name, std::vector<std::byte>(p, p + text.size()));
}

void NpzWriter::commit() {
  Impl& w = *impl_;
  if (w.committed) return;
  w.write_archive();
  detail::commit_temp(w.fd, w.tmp, w.path);
  w.committed = true;
  w.contents.clear();
}

const std::string& NpzWriter::path() const { return impl_->path; }

std::vector<std::string> NpzWriter::names() const { return impl_->names; }

}  // namespace xgrad::data
