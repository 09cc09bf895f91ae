// Workload 4: a chain of 100000 scalar steps v = tanh(0.9 v + 0.1) from v0 = 0.5: build the
// graph, differentiate, compile, run forward and backward once, and tear it down. Every
// op is a 0-d tensor op, so this times the framework's per-op cost (graph nodes, autograd
// records, dispatch), not arithmetic.
//
// Variants (one run = build + gradient + compile + forward and backward + destruction):
//   xgrad     Graph, xgrad::grad, compile({v, dv/dv0}), one run
//   LibTorch  eager 0-d tensor ops with requires_grad, v.backward(), v0.grad()
//   hand      the forward loop storing every v, then the backward loop (the limit)
// Target: LibTorch / xgrad >= 10 per op (the op count is the same: mul, add, tanh per step).
//
//   w4_tanh_chain [STEPS]
#include <sys/resource.h>

#include <cmath>
#include <xgrad/xgrad.hpp>

#include "harness.hpp"

namespace {

constexpr double kV0 = 0.5;

// Reference value and derivative by hand.
std::pair<double, double> by_hand(std::size_t steps, std::vector<double>& vs) {
  vs.resize(steps + 1);
  vs[0] = kV0;
  for (std::size_t i = 0; i < steps; ++i) vs[i + 1] = std::tanh(0.9 * vs[i] + 0.1);
  double d = 1;
  for (std::size_t i = steps; i-- > 0;) d *= (1 - vs[i + 1] * vs[i + 1]) * 0.9;
  return {vs[steps], d};
}

void expect(const char* who, double got, double want) {
  if (!(std::abs(got - want) <= 1e-12 * std::max(1.0, std::abs(want)))) {
    std::fprintf(stderr, "%s: %.17g, expected %.17g\n", who, got, want);
    std::exit(1);
  }
}

struct Phases {
  double build = 0, grad = 0, compile = 0, run = 0, destroy = 0;
  long faults = 0;  // minor page faults of the whole run
};

long minor_faults() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return r.ru_minflt;
}

}  // namespace

int main(int argc, char** argv) {
  bench::setup_threads("w4_tanh_chain");
  const std::size_t steps = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  std::vector<double> hv;
  // Plain variables, not a structured binding: Clang 14 cannot capture those in lambdas.
  const auto want = by_hand(steps, hv);
  const double want_v = want.first, want_d = want.second;

  std::vector<bench::Variant> vs;
  std::vector<Phases> phases;  // of every xgrad run, warm-up included
  auto xgrad_chain = [&](Phases* ph) {
    const long f0 = minor_faults();
    auto t0 = bench::Clock::now();
    auto lap = [&t0](double* slot) {
      auto t = bench::Clock::now();
      if (slot) *slot = std::chrono::duration<double>(t - t0).count();
      t0 = t;
    };
    double v = 0, d = 0;
    {
      auto g = std::make_unique<xgrad::Graph<double>>();
      auto v0 = g->parameter("v0", xt::xarray<double>(kV0));
      auto x = v0;
      for (std::size_t i = 0; i < steps; ++i) x = xgrad::tanh(0.9 * x + 0.1);
      lap(ph ? &ph->build : nullptr);
      auto dx = xgrad::grad(x, {v0})[0];
      lap(ph ? &ph->grad : nullptr);
      auto f = xgrad::compile({x, dx});
      lap(ph ? &ph->compile : nullptr);
      const auto& out = f.run();
      v = out[0]();
      d = out[1]();
      lap(ph ? &ph->run : nullptr);
      // f and g are destroyed here.
    }
    lap(ph ? &ph->destroy : nullptr);
    if (ph) ph->faults = minor_faults() - f0;
    expect("xgrad value", v, want_v);
    expect("xgrad derivative", d, want_d);
  };
  vs.push_back({"xgrad (build + grad + compile + run)", "xgrad",
                [&] { xgrad_chain(&phases.emplace_back()); }});

#ifdef XGRAD_BENCH_HAVE_TORCH
  vs.push_back({"LibTorch (eager + backward)", "LibTorch", [&] {
                  double v = 0, d = 0;
                  {
                    auto v0 = torch::tensor(kV0, torch::dtype(torch::kFloat64).requires_grad(true));
                    auto x = v0;
                    for (std::size_t i = 0; i < steps; ++i) x = torch::tanh(0.9 * x + 0.1);
                    x.backward();
                    v = x.item<double>();
                    d = v0.grad().item<double>();
                  }
                  expect("LibTorch value", v, want_v);
                  expect("LibTorch derivative", d, want_d);
                }});
#endif

  vs.push_back({"hand-written forward + backward loops", "limit", [&] {
                  auto [v, d] = by_hand(steps, hv);
                  bench::keep(v);
                  bench::keep(d);
                }});

  bench::compare(vs, bench::reps(7));
  char title[128];
  std::snprintf(title, sizeof title, "4. tanh chain, %zu steps (3 ops each), f64", steps);
  bench::report(title, vs, 3.0 * static_cast<double>(steps), "op",
                {"M ops/s", 3.0 * static_cast<double>(steps) / 1e6});

  // Where xgrad's time goes: the median of each phase over the timed runs.
  if (phases.size() < 2) return 0;
  auto med = [&](double Phases::*m) {
    std::vector<double> x;
    for (std::size_t i = 1; i < phases.size(); ++i) x.push_back(phases[i].*m);
    std::sort(x.begin(), x.end());
    return x[x.size() / 2];
  };
  std::vector<long> faults;
  for (std::size_t i = 1; i < phases.size(); ++i) faults.push_back(phases[i].faults);
  std::sort(faults.begin(), faults.end());
  bench::note(
      "xgrad phases (median of the timed runs): build %s, grad %s, compile %s, run "
      "(plan + forward + backward) %s, destroy %s; %ld minor page faults per run",
      bench::human(med(&Phases::build)).c_str(), bench::human(med(&Phases::grad)).c_str(),
      bench::human(med(&Phases::compile)).c_str(), bench::human(med(&Phases::run)).c_str(),
      bench::human(med(&Phases::destroy)).c_str(), faults[faults.size() / 2]);
  return 0;
}
