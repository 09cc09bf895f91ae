// Save and load time of a model file: nn::save (one .npz, stored or deflated) and
// nn::load against one save_npy / load_npy per array, for an MLP 784-256-10 (float, about
// 0.8 MB of parameters). Every save is durable (fsync of the file and its directory), so
// the figures include the disk's flush time, the same for each variant.
//
//   save_model [directory] [repetitions]   (defaults: $TMPDIR or /tmp, 20)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>
#include <xgrad/data/data.hpp>
#include <xgrad/nn/nn.hpp>

namespace {

struct Variant {
  const char* name;
  std::function<void()> run;
  std::vector<double> ms;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const char* tmp = std::getenv("TMPDIR");
  const fs::path base =
      fs::path(argc > 1 ? argv[1] : (tmp && *tmp ? tmp : "/tmp")) / "xgrad_save_model";
  const int reps = argc > 2 ? std::atoi(argv[2]) : 20;
  fs::create_directories(base / "npy");

  xgrad::Graph<float> g;
  xgrad::nn::Sequential<float> model(g);
  model.add<xgrad::nn::Linear>(784, 256, xgrad::nn::LinearOptions{true, 1});
  model.add<xgrad::nn::ReLU>();
  model.add<xgrad::nn::Linear>(256, 10, xgrad::nn::LinearOptions{true, 2});
  std::size_t bytes = 0;
  for (const auto& s : model.state()) bytes += g.value(s.node).size() * sizeof(float);

  const std::string stored = (base / "mlp.npz").string(), packed = (base / "mlp_z.npz").string();
  std::vector<Variant> vs = {
      {"nn::save (.npz, stored)", [&] { xgrad::nn::save(model, stored); }, {}},
      {"nn::save (.npz, deflated)",
       [&] {
         xgrad::nn::save(model, packed, {true, ""});
       },
       {}},
      {"save_npy per array (4 files)",
       [&] {
         for (const auto& s : model.state())
           xgrad::data::save_npy((base / "npy" / (s.name + ".npy")).string(), g.value(s.node));
       },
       {}},
      {"nn::load (.npz, stored)", [&] { xgrad::nn::load(model, stored); }, {}},
      {"nn::load (.npz, deflated)", [&] { xgrad::nn::load(model, packed); }, {}},
      {"load_npy per array (4 files)",
       [&] {
         for (const auto& s : model.state()) {
           g.value(s.node) =
               xgrad::data::load_npy<float>((base / "npy" / (s.name + ".npy")).string());
         }
       },
       {}},
  };
  for (auto& v : vs) v.run();  // warm-up, and the files the loads read
  for (int r = 0; r < reps; ++r) {
    for (auto& v : vs) {
      const auto t0 = std::chrono::steady_clock::now();
      v.run();
      v.ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  std::printf(
      "MLP 784-256-10 float: %zu parameter bytes; .npz %ju bytes stored, %ju deflated; %d reps\n",
      bytes, static_cast<std::uintmax_t>(fs::file_size(stored)),
      static_cast<std::uintmax_t>(fs::file_size(packed)), reps);
  // Saves are compared with save_npy per array, loads with load_npy per array.
  std::printf("| variant | min ms | median ms | max ms | / per-array .npy (median) |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  for (std::size_t i = 0; i < vs.size(); ++i) {
    const Variant& v = vs[i];
    const double peer = median(vs[i < 3 ? 2 : 5].ms);
    const auto [lo, hi] = std::minmax_element(v.ms.begin(), v.ms.end());
    std::printf("| %s | %.2f | %.2f | %.2f | %.2f |\n", v.name, *lo, median(v.ms), *hi,
                median(v.ms) / peer);
  }
  fs::remove_all(base);
}
