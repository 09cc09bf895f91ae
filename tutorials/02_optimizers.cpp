// Tutorial 2: optimizers, learning-rate schedules and stopping rules.
//
// Part 1 redoes the lecture note's linear regression (section 3) with an optimizer object:
// X = [[1,1],[1,2],[2,2],[2,3]] plus a column of ones, y = X @ [1, 2] + 3, beta starting at
// [10.1, 15.1, -6.5], learning rate 0.01, gradient -X^T (y - X beta). The loop is
// "compile once -> run -> step", and a stopping rule ends it once the gradient is tiny.
// Part 2 runs the built-in optimizers on the same problem. Part 3 writes an optimizer of
// our own (sign-SGD) outside the library. Part 4 is the note's section 4: SGD on shuffled
// minibatches oscillates around the minimum with a constant rate and settles with decay.
//
// Run with --verbose to print every iteration of part 1 (the note prints each one).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

namespace opt = xgrad::optim;

// Part 3: a user optimizer. Sign-SGD moves every coordinate by the learning rate against
// the sign of its gradient: p <- p - lr * sign(g). One method, no library change.
template <class T>
class SignSGD : public opt::Optimizer<T> {
 public:
  SignSGD(std::vector<xgrad::Expr<T>> params, opt::Schedule lr)
      : opt::Optimizer<T>("SignSGD", std::move(params), std::move(lr)) {}

 protected:
  void update(xt::xarray<T>& value, const xt::xarray<T>& grad, opt::ParamState<T>&,
              const opt::StepContext<T>& ctx) override {
    xt::noalias(value) -= ctx.lr * xt::sign(grad);
  }
};

// The note's regression problem as a graph: loss = ||y - X beta||^2 / 2.
struct Regression {
  xt::xarray<double> X = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {2, 3, 1}};
  xt::xarray<double> y = {6, 8, 9, 11};
  xgrad::Graph<double> g;
  xgrad::Expr<double> Xi = g.input("X", {xgrad::open, 3});
  xgrad::Expr<double> yi = g.input("y", {xgrad::open});
  xgrad::Expr<double> beta = g.parameter("beta", xt::xarray<double>{10.1, 15.1, -6.5});
  xgrad::Expr<double> loss = xgrad::sum(xgrad::square(yi - xgrad::matmul(Xi, beta))) / 2.0;
  // Outputs: the loss, then the gradient of each parameter.
  xgrad::Function<double> f = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});

  const std::vector<xt::xarray<double>>& run() { return f.run({{Xi, X}, {yi, y}}); }
  double error() {
    const auto& b = g.value(beta);
    return std::max({std::abs(b(0) - 1), std::abs(b(1) - 2), std::abs(b(2) - 3)});
  }
};

// Trains until the gradient norm is below 1e-6 or 20000 steps; returns the result.
opt::StopResult train(Regression& r, opt::Optimizer<double>& o, bool verbose = false) {
  auto stop = opt::grad_norm_below(1e-6) | opt::max_steps(20000);
  for (;;) {
    const auto& out = r.run();
    if (stop(o.steps(), out[0](), opt::global_norm(out, 1))) break;
    o.step(out, 1);  // the gradients start at output 1
    if (verbose) std::cout << "iteration " << o.steps() << ": beta = " << r.g.value(r.beta) << "\n";
  }
  return stop.result();
}

// Part 4: full-data losses over the last epochs of minibatch SGD.
std::vector<double> minibatch_sgd(opt::Schedule lr) {
  const std::size_t n = 64, batch = 8;
  std::mt19937 data_rng(11);
  std::uniform_real_distribution<double> u(0.0, 3.0);
  std::normal_distribution<double> noise(0.0, 0.5);
  xt::xarray<double> X = xt::xarray<double>::from_shape({n, 3}), y = xt::zeros<double>({n});
  for (std::size_t i = 0; i < n; ++i) {
    X(i, 0) = u(data_rng);
    X(i, 1) = u(data_rng);
    X(i, 2) = 1;
    y(i) = X(i, 0) + 2 * X(i, 1) + 3 + noise(data_rng);
  }
  xgrad::Graph<double> g;
  auto Xi = g.input("X", {xgrad::open, 3});
  auto yi = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", xt::xarray<double>{0, 0, 0});
  auto loss = xgrad::mse(xgrad::matmul(Xi, beta), yi);
  auto step = xgrad::compile({loss, xgrad::grad(loss, {beta})[0]});
  auto full = xgrad::compile({loss});
  opt::SGD<double> sgd({beta}, std::move(lr));

  std::mt19937 rng(5);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  xt::xarray<double> Xb = xt::xarray<double>::from_shape({batch, 3}),
                     yb = xt::zeros<double>({batch});
  std::vector<double> last;
  for (std::size_t epoch = 0; epoch < 300; ++epoch) {
    sgd.set_epoch(epoch);
    std::shuffle(order.begin(), order.end(), rng);            // once per epoch
    for (std::size_t start = 0; start < n; start += batch) {  // non-overlapping batches
      for (std::size_t k = 0; k < batch; ++k) {
        for (std::size_t j = 0; j < 3; ++j) Xb(k, j) = X(order[start + k], j);
        yb(k) = y(order[start + k]);
      }
      sgd.step(step.run({{Xi, Xb}, {yi, yb}}), 1);
    }
    if (epoch >= 290) last.push_back(full.run({{Xi, X}, {yi, y}})[0]());
  }
  return last;
}

int main(int argc, char** argv) {
  bool verbose = argc > 1 && std::strcmp(argv[1], "--verbose") == 0;
  bool ok = true;
  std::cout << std::setprecision(6);

  // Part 1: the note's gradient descent.
  {
    Regression r;
    opt::GradientDescent<double> gd({r.beta}, 0.01);
    auto res = train(r, gd, verbose);
    std::cout << "Part 1, GradientDescent: " << res.message << "\n  beta = " << r.g.value(r.beta)
              << "\n";
    ok = ok && res.reason == opt::StopReason::grad_norm && r.error() < 1e-5;
  }

  // Part 2: the built-in optimizers on the same problem.
  std::cout << "Part 2, steps until the gradient norm is below 1e-6:\n";
  auto report = [&](Regression& r, opt::Optimizer<double>& o) {
    auto res = train(r, o);
    std::cout << "  " << std::setw(16) << std::left << o.name() << std::setw(6) << res.steps
              << " steps, max error " << r.error() << " (" << opt::reason_name(res.reason) << ")\n";
    return r.error();
  };
  {
    Regression r1, r2, r3, r4;
    opt::Momentum<double> momentum({r1.beta}, 0.01, {.momentum = 0.9});
    opt::Nesterov<double> nesterov({r2.beta}, 0.01, {.momentum = 0.9});
    opt::Adam<double> adam({r3.beta}, 0.5);
    opt::AdaGrad<double> adagrad({r4.beta}, 5.0);
    ok = report(r1, momentum) < 1e-5 && ok;
    ok = report(r2, nesterov) < 1e-5 && ok;
    ok = report(r3, adam) < 1e-5 && ok;
    ok = report(r4, adagrad) < 1e-5 && ok;
  }

  // Part 3: our own optimizer, with a schedule: warm up for 100 steps, then cosine decay.
  {
    Regression r;
    SignSGD<double> sign({r.beta}, opt::linear_warmup(100, opt::cosine(0.05, 9900)));
    for (int i = 0; i < 10000; ++i) sign.step(r.run(), 1);
    std::cout << "Part 3, SignSGD (user-defined), 10000 steps: beta = " << r.g.value(r.beta)
              << "\n";
    ok = ok && r.error() < 1e-3;
  }

  // Part 4: minibatch SGD, constant rate vs. a rate decaying per epoch.
  {
    auto spread = [](const std::vector<double>& v) {
      auto [lo, hi] = std::minmax_element(v.begin(), v.end());
      return *hi - *lo;
    };
    auto constant = minibatch_sgd(0.05);
    auto decayed = minibatch_sgd(opt::by_epoch(opt::inverse_time(0.05, 0.05)));
    std::cout << "Part 4, full-data loss over the last 10 epochs of minibatch SGD:\n"
              << "  constant rate 0.05:            last " << constant.back() << ", spread "
              << spread(constant) << "\n"
              << "  0.05 / (1 + 0.05 epoch) decay: last " << decayed.back() << ", spread "
              << spread(decayed) << "\n";
    ok = ok && spread(decayed) < 0.1 * spread(constant) && decayed.back() < constant.back();
  }
  return ok ? 0 : 1;
}
