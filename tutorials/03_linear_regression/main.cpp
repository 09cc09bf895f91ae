// Tutorial 3: linear regression coefficients by gradient descent.
//
// The lecture note's third example with its exact numbers: X = [[1,1],[1,2],[2,2],[2,3]]
// with a column of ones appended, y = X @ [1, 2] + 3, beta starting at [10.1, 15.1, -6.5],
// 5000 steps of beta <- beta - 0.01 * grad with grad = -X^T (y - X beta). Then the two
// objectives of the note (the RMSE form and the squared form) with their gradients, all
// checked against the closed-form least-squares solution, the graphs of the loss and of
// its gradient drawn with Graphviz, and the same fit on a real data set: the diabetes data
// shipped by Debian's python3-sklearn package, read through xgrad's CSV dataset.
// README.md walks through this file step by step.
//
// Usage: 03_linear_regression [--every K]
//   --every K  print every K-th iteration (default 1: every one, as the note does)
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnorm.hpp>
#include <xtensor/xview.hpp>

#include "cli.hpp"
#include "figures.hpp"

// [format]
// "[a, b, c]" for a vector, with the stream's precision.
std::string vec(const xt::xarray<double>& v) {
  std::ostringstream s;
  s << std::setprecision(7) << "[";
  for (std::size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v.flat(i);
  return s.str() + "]";
}
// [end]

// Tutorial 3's second half, defined after main(): the same fit on the diabetes data.
struct DiabetesFit {
  bool found = false;                           // diabetes.csv was there
  double r2_mse = 0, r2_rmse = 0, r2_star = 0;  // R^2 of the three fits
};
DiabetesFit fit_diabetes(const std::string& csv);

int main(int argc, char** argv) {
  int every = 1;
  if (!cli::parse(argc, argv,
                  {{"--every", "K", [&](const char* v) { every = std::max(1, std::atoi(v)); }}})) {
    return 2;
  }
  bool ok = true;
  const auto check = cli::checker(ok);

  // [data]
  xt::xarray<double> X = {{1, 1}, {1, 2}, {2, 2}, {2, 3}};
  const xt::xarray<double> y = xt::linalg::dot(X, xt::xarray<double>{1, 2}) + 3.0;
  X = xt::concatenate(xt::xtuple(X, xt::ones<double>({4, 1})), 1);  // bias column
  const xt::xarray<double> beta0 = {10.1, 15.1, -6.5};
  const double n = 4;
  std::cout << "y = " << vec(y) << "\n";
  // [end]

  // [graph]
  xgrad::Graph<double> g;
  auto Xi = g.input("X", {xgrad::open, 3});  // n rows, 3 columns; bound at each run
  auto yi = g.input("y", {xgrad::open});
  auto beta = g.parameter("beta", beta0);
  auto pred = xgrad::matmul(Xi, beta);                         // X beta
  auto half_sse = xgrad::sum(xgrad::square(yi - pred)) / 2.0;  // the note's loop
  auto rmse = xgrad::rmse(pred, yi);                           // ||y - X beta|| / sqrt(n)
  auto mse = xgrad::mse(pred, yi);                             // ||y - X beta||^2 / n
  std::vector<xgrad::Expr<double>> losses{half_sse, rmse, mse};
  const std::vector<std::string> names{"half_sse", "rmse", "mse"};
  std::vector<xgrad::Function<double>> fns;
  for (std::size_t k = 0; k < losses.size(); ++k) {
    auto grad = xgrad::grad(losses[k], {beta})[0];
    std::cout << names[k] << " = " << xgrad::to_string(losses[k]) << "\n"
              << "  gradient = " << xgrad::to_string(grad) << "\n";
    fns.push_back(xgrad::compile({losses[k], grad}));
  }
  // [end]

  // [gradients]
  const xt::xarray<double> r = y - xt::linalg::dot(X, beta0);  // residual at beta0
  const xt::xarray<double> Xt_r = xt::linalg::dot(xt::transpose(X), r);
  const double rmse0 = std::sqrt(xt::sum(r * r)() / n);
  const std::vector<xt::xarray<double>> by_hand{-Xt_r, -Xt_r / (n * rmse0), -(2 / n) * Xt_r};
  for (std::size_t k = 0; k < fns.size(); ++k) {
    const auto& out = fns[k].run({{Xi, X}, {yi, y}});
    const double diff = xt::amax(xt::abs(out[1] - by_hand[k]))();
    std::cout << names[k] << " at beta0: " << out[0]() << ", gradient " << vec(out[1])
              << ", by hand " << vec(by_hand[k]) << ", max difference " << diff << "\n";
    check(diff < 1e-12 * (1 + xt::amax(xt::abs(by_hand[k]))()), names[k] + " gradient by hand");
  }
  // [end]

  // [descent]
  const double lr = 0.01;
  const int steps = 5000;
  auto& note = fns[0];  // the note's loop: grad = -X^T (y - X beta)
  for (int t = 1; t <= steps; ++t) {
    const auto& out = note.run({{Xi, X}, {yi, y}});
    g.value(beta) -= lr * out[1];  // beta <- beta - lr * grad
    if (t % every == 0) {
      std::cout << "iteration " << t << ": grad = " << vec(out[1])
                << ", beta = " << vec(g.value(beta)) << "\n";
    }
  }
  const xt::xarray<double> beta_note = g.value(beta);
  // [end]

  // [closed-form]
  const xt::xarray<double> beta_star = std::get<0>(xt::linalg::lstsq(X, y));
  const double note_error = xt::amax(xt::abs(beta_note - beta_star))();
  std::cout << "\nleast squares (lstsq): beta* = " << vec(beta_star) << "\n"
            << "gradient descent, " << steps << " steps: beta = " << vec(beta_note)
            << ", max |beta - beta*| = " << note_error << "\n";
  // [end]

  // [objectives]
  const int long_steps = 2 * steps;
  std::vector<double> long_axis;
  std::vector<std::vector<double>> distance(fns.size());  // ||beta_t - beta*|| per step
  std::vector<xt::xarray<double>> finals;
  std::vector<double> final_losses;
  for (std::size_t k = 0; k < fns.size(); ++k) {
    g.value(beta) = beta0;
    for (int t = 1; t <= long_steps; ++t) {
      g.value(beta) -= lr * fns[k].run({{Xi, X}, {yi, y}})[1];
      distance[k].push_back(xt::norm_l2(g.value(beta) - beta_star)());
      if (k == 0) long_axis.push_back(t);
    }
    finals.push_back(g.value(beta));
    final_losses.push_back(fns[k].run({{Xi, X}, {yi, y}})[0]());
    std::cout << names[k] << ", " << long_steps << " steps: beta = " << vec(finals[k])
              << ", max |beta - beta*| = " << xt::amax(xt::abs(finals[k] - beta_star))()
              << ", loss " << final_losses[k] << "\n";
  }
  // Where the rmse run stalls: its step is the mse step with rate lr / (2 rmse), which
  // becomes unstable once that rate exceeds 2 / (largest eigenvalue of (2/n) X^T X).
  const double lambda_max = xt::amax(xt::linalg::eigvalsh(xt::linalg::dot(xt::transpose(X), X)))();
  const double rmse_stall = lr * lambda_max / (2 * n);
  std::cout << "rmse stalls near lr * lambda_max(X^T X) / (2n) = " << rmse_stall << "\n";
  // [end]

  // [graphs]
  auto half_sse_grad = xgrad::grad(half_sse, {beta})[0];
  check(figures::draw_graph("loss_graph", xgrad::to_dot(half_sse)) &&
            figures::draw_graph("gradient_graph", xgrad::to_dot(half_sse_grad)),
        "graphs drawn");
  // [end]

  // [diabetes]
  std::cout << "\n";
  const DiabetesFit diabetes = fit_diabetes("diabetes.csv");
  // [end]

  // [plot]
  figures::Plot plot{.name = "convergence",
                     .settings = {"set logscale y", "set format y '10^{%L}'", "set xlabel 'step'",
                                  "set ylabel '||beta - beta*||'",
                                  "set title 'Distance to the least-squares solution, lr = 0.01'"}};
  const std::vector<std::string> titles{"||y - X beta||^2 / 2 (the note's loop)",
                                        "rmse: ||y - X beta|| / sqrt(n)",
                                        "mse: ||y - X beta||^2 / n"};
  for (std::size_t k = 0; k < fns.size(); ++k) {
    plot.series.push_back({titles[k], long_axis, distance[k]});
  }
  check(figures::draw(plot), "plot drawn");
  // [end]

  // [checks]
  check(std::abs(y(0) - 6) + std::abs(y(3) - 11) == 0, "y = X @ [1, 2] + 3");
  check(xt::amax(xt::abs(beta_star - xt::xarray<double>{1, 2, 3}))() < 1e-10, "lstsq: [1, 2, 3]");
  check(note_error < 1e-4, "the note's 5000 steps reach [1, 2, 3] within 1e-4");
  check(xt::amax(xt::abs(finals[0] - beta_star))() < 1e-10, "half_sse, 10000 steps: 1e-10");
  check(xt::amax(xt::abs(finals[2] - beta_star))() < 1e-4, "mse, 10000 steps: within 1e-4");
  check(xt::amax(xt::abs(finals[1] - beta_star))() < 2e-2, "rmse, 10000 steps: within 2e-2");
  check(std::abs(final_losses[1] / rmse_stall - 1) < 0.05, "rmse stalls where predicted");
  check(!diabetes.found || (diabetes.r2_star > 0.5 && diabetes.r2_mse > diabetes.r2_star - 1e-3 &&
                            diabetes.r2_rmse > diabetes.r2_star - 1e-3),
        "diabetes: descent matches least squares within 1e-3 in R^2");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}

DiabetesFit fit_diabetes(const std::string& csv) {
  // [diabetes-load]
  if (!std::filesystem::exists(csv)) {
    std::cout << csv << " not found, real-data part skipped: install python3-sklearn "
              << "(sudo apt-get install --no-install-recommends python3-sklearn), re-run cmake "
              << "and build 03_linear_regression\n";
    return {};
  }
  xgrad::data::CsvDataset<double> data(csv, xgrad::data::CsvOptions().targets({"progression"}));
  xt::xarray<double> F = data.features();  // (442, 10)
  const xt::xarray<double> t = data.targets();
  const std::size_t rows = F.shape(0), cols = F.shape(1);
  const xt::xarray<double> mean = xt::mean(F, {0});
  const xt::xarray<double> sd = xt::sqrt(xt::mean(xt::square(F - mean), {0}));
  F = (F - mean) / sd;  // each column: mean 0, standard deviation 1
  F = xt::concatenate(xt::xtuple(F, xt::ones<double>({rows, std::size_t{1}})), 1);
  std::cout << "diabetes: " << rows << " patients, " << cols << " features (";
  for (std::size_t j = 0; j < cols; ++j) std::cout << (j ? " " : "") << data.feature_names()[j];
  std::cout << "), target: " << data.target_names()[0] << "\n";
  // [end]

  // [diabetes-fit]
  xgrad::Graph<double> g;
  auto X = g.input("X", {xgrad::open, static_cast<xgrad::Dim>(cols + 1)});
  auto y = g.input("y", {xgrad::open});
  auto w = g.parameter("w", xt::zeros<double>({cols + 1}));
  auto pred = xgrad::matmul(X, w);
  auto mse = xgrad::mse(pred, y), rmse = xgrad::rmse(pred, y);
  auto mse_step = xgrad::compile({mse, xgrad::grad(mse, {w})[0]});
  auto rmse_step = xgrad::compile({rmse, xgrad::grad(rmse, {w})[0]});
  const int steps = 20000;
  for (int s = 0; s < steps; ++s) g.value(w) -= 0.1 * mse_step.run({{X, F}, {y, t}})[1];
  const xt::xarray<double> w_mse = g.value(w);
  g.value(w) = xt::zeros<double>({cols + 1});
  for (int s = 0; s < steps; ++s) g.value(w) -= 10.0 * rmse_step.run({{X, F}, {y, t}})[1];
  const xt::xarray<double> w_rmse = g.value(w);
  const xt::xarray<double> w_star = std::get<0>(xt::linalg::lstsq(F, t));
  // [end]

  // [diabetes-report]
  auto report = [&](const std::string& what, const xt::xarray<double>& coef) {
    const xt::xarray<double> e = t - xt::linalg::dot(F, coef);
    const double sse = xt::sum(e * e)(), sst = xt::sum(xt::square(t - xt::mean(t)()))();
    std::cout << what << ": RMSE " << std::sqrt(sse / rows) << ", R^2 " << 1 - sse / sst << "\n";
    return 1 - sse / sst;
  };
  DiabetesFit fit{.found = true,
                  .r2_mse = report("gradient descent on mse  (lr 0.1, 20000 steps)", w_mse),
                  .r2_rmse = report("gradient descent on rmse (lr 10, 20000 steps) ", w_rmse),
                  .r2_star = report("least squares (lstsq)                        ", w_star)};
  std::cout << "coefficients (per standard deviation):\n   feature       mse      rmse     lstsq\n";
  for (std::size_t j = 0; j <= cols; ++j) {
    std::cout << std::setw(10) << (j < cols ? data.feature_names()[j] : "bias") << std::fixed
              << std::setprecision(2) << std::setw(10) << w_mse(j) << std::setw(10) << w_rmse(j)
              << std::setw(10) << w_star(j) << "\n";
  }
  std::cout << std::defaultfloat << std::setprecision(6);
  return fit;
  // [end]
}
