// The CPU quota of the process's cgroup, for the default thread count (thread_pool.cpp): a
// container started with `docker run --cpus=2` on a large host sees every core in its
// affinity mask but gets two cores' worth of time, and a pool sized by the mask would
// oversubscribe it.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "thread_pool.hpp"

namespace xgrad::exec {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A whole number >= 0 at the start of s (after blanks), or -1.
long long leading_number(const std::string& s, std::size_t* end = nullptr) {
  std::size_t i = s.find_first_not_of(" \t");
  if (i == std::string::npos || s[i] < '0' || s[i] > '9') return -1;
  errno = 0;
  char* e = nullptr;
  const long long v = std::strtoll(s.c_str() + i, &e, 10);
  if (errno) return -1;
  if (end) *end = static_cast<std::size_t>(e - s.c_str());
  return v;
}

// Keeps the smallest limit seen (0: none yet; a limit of 0 is no limit).
void keep_smallest(int& best, int n) {
  if (n > 0 && (best == 0 || n < best)) best = n;
}

// CPUs a quota of `quota` per `period` allows, rounded up; 0 for no limit.
int cpus_of(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return 0;
  const long long n = (quota + period - 1) / period;
  return static_cast<int>(std::min<long long>(n, INT_MAX));
}

// v2: cpu.max, "max 100000" (no limit) or "200000 100000".
int cpus_v2(const std::string& dir) {
  const std::string text = read_file(dir + "/cpu.max");
  std::size_t end = 0;
  const long long quota = leading_number(text, &end);
  if (quota < 0) return 0;
  return cpus_of(quota, leading_number(text.substr(end)));
}

// v1: cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us.
int cpus_v1(const std::string& dir) {
  const std::string q = read_file(dir + "/cpu.cfs_quota_us");
  if (q.empty()) return 0;
  return cpus_of(leading_number(q), leading_number(read_file(dir + "/cpu.cfs_period_us")));
}

// The smallest limit of a cgroup and its ancestors under `mount`; a limit of an ancestor
// holds for every cgroup below it. A path that does not exist under the mount (a container
// without a cgroup namespace sees the host's path, but has its own cgroup mounted at the
// root) reaches the mount's own files on the way up.
template <class F>
int smallest_limit(const std::string& mount, std::string path, F&& limit_of) {
  int best = 0;
  for (;;) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    keep_smallest(best, limit_of(path == "/" ? mount : mount + path));
    if (path.empty() || path == "/") return best;
    const std::size_t slash = path.rfind('/');
    path = slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
  }
}

}  // namespace

int cgroup_cpu_limit(const std::string& cgroup_root, const std::string& proc_self_cgroup) {
  int best = 0;
  std::istringstream lines(proc_self_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    // hierarchy-ID:controller-list:cgroup-path
    const std::size_t a = line.find(':');
    const std::size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (path.empty() || path[0] != '/') continue;
    if (line.compare(0, a, "0") == 0 && controllers.empty()) {  // the v2 hierarchy
      // Mounted at the root, or beside the v1 controllers on a hybrid system.
      for (const char* sub : {"", "/unified"}) {
        keep_smallest(best, smallest_limit(cgroup_root + sub, path, cpus_v2));
      }
      continue;
    }
    std::vector<std::string> names;
    std::istringstream list(controllers);
    for (std::string c; std::getline(list, c, ',');) names.push_back(c);
    if (std::find(names.begin(), names.end(), "cpu") == names.end()) continue;
    // A v1 controller is mounted under its own name, or under the joined list of the
    // controllers mounted together ("cpu,cpuacct").
    for (const std::string& dir : {controllers, std::string("cpu"), std::string("cpu,cpuacct")}) {
      keep_smallest(best, smallest_limit(cgroup_root + "/" + dir, path, cpus_v1));
    }
  }
  return best;
}

int cgroup_cpu_limit() {
  return cgroup_cpu_limit("/sys/fs/cgroup", read_file("/proc/self/cgroup"));
}

}  // namespace xgrad::exec
