#include "atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

#include "io.hpp"

namespace xgrad::data::detail {

namespace {

namespace fs = std::filesystem;

std::string directory_of(const std::string& target) {
  const fs::path dir = fs::path(target).parent_path();
  return dir.empty() ? std::string(".") : dir.string();
}

// The pid in a name "<base>.tmp.<pid>.<n>", or 0 when the name is not of that form.
pid_t temp_owner(const std::string& name, const std::string& base) {
  const std::string prefix = base + ".tmp.";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return 0;
  std::size_t i = prefix.size();
  long long pid = 0;
  const std::size_t digits = i;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && pid < (1ll << 40))
    pid = pid * 10 + (name[i++] - '0');
  if (i == digits || i >= name.size() || name[i] != '.' || i + 1 == name.size()) return 0;
  for (std::size_t j = i + 1; j < name.size(); ++j) {
    if (name[j] < '0' || name[j] > '9') return 0;
  }
  return static_cast<pid_t>(pid);
}

// Temporaries of other processes that are still running may be saves in progress; those
// of this process belong to live writers. Only the rest are removed.
void remove_stale_temps(const std::string& target) {
  const std::string base = fs::path(target).filename().string();
  std::error_code ec;
  for (fs::directory_iterator it(directory_of(target), ec), end; !ec && it != end;
       it.increment(ec)) {
    const pid_t pid = temp_owner(it->path().filename().string(), base);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;
    fs::remove(it->path(), ignored);
  }
}

}  // namespace

int create_temp(const std::string& target, std::string& tmp) {
  remove_stale_temps(target);
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0;; ++attempt) {
    tmp = target + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST || attempt > 100) {
      const int e = errno;
      const std::string t = tmp;
      tmp.clear();
      fail(target, "", "cannot create the temporary file " + t + ": " + errno_text(e));
    }
  }
}

void commit_temp(int& fd, const std::string& tmp, const std::string& target) {
  if (::fsync(fd) != 0) fail(target, "", "fsync of " + tmp + " failed: " + errno_text(errno));
  const int f = fd;
  fd = -1;
  if (::close(f) != 0) fail(target, "", "close of " + tmp + " failed: " + errno_text(errno));
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    fail(target, "", "cannot rename " + tmp + " into place: " + errno_text(errno));
  }
  // The rename is durable only once the directory entry is on disk.
  const std::string dir = directory_of(target);
  const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) return;  // a directory we may not open (execute-only): the rename stands
  const int rc = ::fsync(d);
  const int e = errno;
  ::close(d);
  if (rc != 0 && e != EINVAL && e != EROFS) {
    fail(target, "",
         "written and renamed into place, but the fsync of its directory " + dir +
             " failed: " + errno_text(e));
  }
}

void write_all(int fd, const std::string& path, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t r = ::write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(path, "", "write error: " + errno_text(errno));
    }
    p += r;
    n -= static_cast<std::size_t>(r);
  }
}

void write_all_at(int fd, const std::string& path, std::uint64_t offset, const void* data,
                  std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t r = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(path, at_byte(offset), "write error: " + errno_text(errno));
    }
    p += r;
    offset += static_cast<std::uint64_t>(r);
    n -= static_cast<std::size_t>(r);
  }
}

}  // namespace xgrad::data::detail
