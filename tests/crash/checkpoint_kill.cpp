// Crash safety of checkpoints: a child process writes checkpoints in a loop (version k
// holds parameters equal to k) and is killed with SIGKILL at random moments; after every
// kill the file on disk must load and be exactly one of the versions written.
// Usage: checkpoint_kill [kills] [folder]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <xgrad/xgrad.hpp>

namespace data = xgrad::data;
namespace optim = xgrad::optim;
namespace train = xgrad::train;

namespace {

struct Setup {
  xgrad::Graph<double> g;
  xgrad::Expr<double> x = g.input("x", {xgrad::open, 64});
  xgrad::Expr<double> y = g.input("y", {xgrad::open});
  // About 1 MB of parameters, so that a save takes long enough to be interrupted.
  xgrad::Expr<double> w = g.parameter("w", xt::zeros<double>({64, 2048}));
  xgrad::Expr<double> b = g.parameter("b", xt::zeros<double>({2048}));
  xgrad::Expr<double> loss = xgrad::mean(xgrad::square(xgrad::matmul(x, w) + b)) - xgrad::mean(y);
  optim::Adam<double> adam{{w, b}, 0.1};
  std::unique_ptr<train::Trainer<double>> trainer;
  Setup() {
    train::Task<double> task;
    task.x = x;
    task.y = y;
    task.loss = loss;
    trainer = std::make_unique<train::Trainer<double>>(task, adam);
  }
};

[[noreturn]] void writer(const std::string& path) {
  Setup s;
  for (long k = 1;; ++k) {
    s.g.value(s.w).fill(static_cast<double>(k));
    s.g.value(s.b).fill(static_cast<double>(k));
    train::save_checkpoint(*s.trainer, path, {.numbers = {{"version", static_cast<double>(k)}}});
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int kills = argc > 1 ? std::atoi(argv[1]) : 60;
  const std::filesystem::path dir =
      argc > 2 ? std::filesystem::path(argv[2])
               : std::filesystem::temp_directory_path() / "xgrad_checkpoint_kill";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "run.npz").string();
  std::mt19937 rng(2024);
  std::uniform_int_distribution<int> wait_us(0, 30000);
  Setup reader;
  int loaded = 0, absent = 0;
  long last = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kills; ++i) {
    std::cout.flush();
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      return 2;
    }
    if (pid == 0) writer(path);
    std::this_thread::sleep_for(std::chrono::microseconds(wait_us(rng)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!std::filesystem::exists(path)) {
      ++absent;  // killed before its first commit
      continue;
    }
    try {
      const train::Extras ex = train::load_checkpoint(*reader.trainer, path);
      const double k = ex.numbers.at("version");
      const auto& w = reader.g.value(reader.w);
      const auto& b = reader.g.value(reader.b);
      const bool exact = xt::all(xt::equal(w, k)) && xt::all(xt::equal(b, k));
      if (!exact || k < 1) {
        std::cout << "kill " << i << ": version " << k << " does not hold its own values\n";
        return 1;
      }
      last = static_cast<long>(k);
      ++loaded;
    } catch (const xgrad::Error& e) {
      std::cout << "kill " << i << ": the checkpoint on disk does not load: " << e.what() << "\n";
      return 1;
    }
  }
  std::size_t leftovers = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) leftovers += e.path() != path;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << kills << " kills in " << seconds << " s: " << loaded
            << " checkpoints loaded intact, " << absent
            << " kills before the first save, last version seen " << last << ", " << leftovers
            << " temporary files left\n";
  std::filesystem::remove_all(dir);
  // A killed save may leave its temporary; the next save removes it, so at most one stays.
  if (leftovers > 1 || loaded < kills / 2) {
    std::cout << "FAILED\n";
    return 1;
  }
  return 0;
}
