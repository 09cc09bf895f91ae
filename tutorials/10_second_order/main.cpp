// Tutorial 10: second-order methods, with Hessians that are graph nodes.
//
// Newton's method beside gradient descent on the lecture note's bowl f(x, y) = x^2 + 2y^2
// and on its linear regression: on a quadratic, one Newton step lands on the minimum. The
// Hessians come from xgrad::hessian, printed and drawn like any other node. Then
// Hessian-free optimisation: Newton steps solved by conjugate gradient on Hessian-vector
// products (xgrad::hvp), which never form the Hessian, on a logistic regression; the
// iteration counts of both methods and a plot of their gradient norms.
// README.md walks through this file step by step.
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <random>
#include <string>
#include <vector>
#include <xgrad/io.hpp>  // prints arrays with operator<<
#include <xgrad/xgrad.hpp>
#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "cli.hpp"
#include "figures.hpp"

int main() {
  bool ok = true;
  const auto check = cli::checker(ok);
  std::cout << std::setprecision(10);

  // [bowl]
  xgrad::Graph<double> g;
  auto x = g.parameter("x", xt::xarray<double>(-1.694766835));  // tutorial 2's start
  auto y = g.parameter("y", xt::xarray<double>(-1.0906437));
  auto f = xgrad::square(x) + 2.0 * xgrad::square(y);
  auto df = xgrad::grad(f, {x, y});
  // The Hessian's four entries: d2f/dx2, d2f/dxdy, d2f/dydx, d2f/dy2.
  auto hxx = xgrad::hessian(f, x), hyy = xgrad::hessian(f, y);
  auto hxy = xgrad::jacobian(df[0], y), hyx = xgrad::jacobian(df[1], x);
  std::cout << "f = " << xgrad::to_string(f) << "\n"
            << "Hessian = [[" << xgrad::to_string(hxx) << ", " << xgrad::to_string(hxy) << "], ["
            << xgrad::to_string(hyx) << ", " << xgrad::to_string(hyy) << "]]\n";
  auto bowl = xgrad::compile({f, df[0], df[1], hxx, hxy, hyx, hyy});
  // [end]

  // [newton-bowl]
  // Newton: solve H d = -grad f and step to p + d. H is diagonal here, but the step is
  // written for any 2 x 2 Hessian.
  const auto& b = bowl.run();
  const xt::xarray<double> H = {{b[3](), b[4]()}, {b[5](), b[6]()}};
  const xt::xarray<double> grad0 = {b[1](), b[2]()};
  const xt::xarray<double> step = xt::linalg::solve(H, -grad0);
  g.value(x)() += step(0);
  g.value(y)() += step(1);
  const auto& after = bowl.run();
  std::cout << "Newton, 1 step: (x, y) = (" << g.value(x)() << ", " << g.value(y)()
            << "), f = " << after[0]() << ", |grad| = " << std::hypot(after[1](), after[2]())
            << "\n"
            << "gradient descent (tutorial 2, lr 0.01): 631 steps to |grad| <= 1e-5\n";
  check(after[0]() == 0 && g.value(x)() == 0 && g.value(y)() == 0,
        "one Newton step reaches the minimum (0, 0) of the bowl");
  // [end]

  // [regression]
  xgrad::Graph<double> r;
  xt::xarray<double> X = {{1, 1, 1}, {1, 2, 1}, {2, 2, 1}, {2, 3, 1}};  // bias column last
  const xt::xarray<double> yv = {6, 8, 9, 11};                          // X @ [1, 2, 3]
  auto Xi = r.input("X", {xgrad::open, 3});
  auto yi = r.input("y", {xgrad::open});
  auto beta = r.parameter("beta", xt::xarray<double>{10.1, 15.1, -6.5});
  auto loss = xgrad::sum(xgrad::square(yi - xgrad::matmul(Xi, beta))) / 2.0;
  auto gb = xgrad::grad(loss, {beta})[0];
  auto Hb = xgrad::hessian(loss, beta);  // X^T X, as a (3, 3) node
  std::cout << "\nloss = " << xgrad::to_string(loss) << "\ngradient = " << xgrad::to_string(gb)
            << "\nHessian = " << xgrad::to_string(Hb) << "\n"
            << "gradient in LaTeX: " << xgrad::to_latex(gb) << "\n";
  auto reg = xgrad::compile({loss, gb, Hb});
  const auto& o = reg.run({{Xi, X}, {yi, yv}});
  std::cout << "Hessian at beta0 = " << o[2] << "\n";
  const xt::xarray<double> XtX = xt::linalg::dot(xt::transpose(X), X);
  check(xt::amax(xt::abs(o[2] - XtX))() < 1e-12, "the Hessian is X^T X");
  check(figures::draw_graph("hessian_graph", xgrad::to_dot(Hb)), "Hessian graph drawn");
  // [end]

  // [newton-regression]
  r.value(beta) += xt::linalg::solve(o[2], -o[1]);  // one Newton step
  const auto& o1 = reg.run({{Xi, X}, {yi, yv}});
  std::cout << "Newton, 1 step: beta = " << r.value(beta) << ", loss " << o1[0]()
            << ", |grad| = " << xt::linalg::norm(o1[1]) << "\n"
            << "gradient descent (tutorial 3, lr 0.01): 5000 steps to within 5e-6 of [1, 2, 3]\n";
  check(xt::amax(xt::abs(r.value(beta) - xt::xarray<double>{1, 2, 3}))() < 1e-10,
        "one Newton step solves the least-squares problem");
  // [end]

  // [logistic-data]
  // 400 points in 5 dimensions (plus a bias column), labels t = +-1 drawn from a logistic
  // model. Normal deviates by Box-Muller from mt19937's raw output, which the C++
  // standard fixes, so the data and the iteration counts are the same everywhere.
  const std::size_t n = 400, d = 6;
  std::mt19937 rng(10);
  auto uniform = [&] { return (rng() + 0.5) / 4294967296.0; };
  auto normal = [&] {
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  };
  const xt::xarray<double> w_true = {1.5, -2, 0.5, 1, -1, 0.25};
  xt::xarray<double> F = xt::ones<double>({n, d}), t = xt::zeros<double>({n});
  for (std::size_t i = 0; i < n; ++i) {
    double z = w_true(d - 1);
    for (std::size_t j = 0; j + 1 < d; ++j) {
      const double scale = (j + 1.0) * (j + 1.0);  // growing scales: an ill-conditioned problem
      F(i, j) = normal() * scale;
      z += w_true(j) * F(i, j) / scale;
    }
    t(i) = uniform() < 1 / (1 + std::exp(-z)) ? 1.0 : -1.0;
  }
  // [end]

  // [logistic]
  // loss(w) = mean(log(1 + exp(-t * (F @ w)))) + lambda/2 ||w||^2 (softplus(-t z) is the
  // stable form of log(1 + exp(-t z))); grad and Hessian-vector products as nodes.
  xgrad::Graph<double> lg;
  auto Fi = lg.input("F", {xgrad::open, static_cast<xgrad::Dim>(d)});
  auto ti = lg.input("t", {xgrad::open});
  auto v = lg.input("v", {static_cast<xgrad::Dim>(d)});  // the direction of H v
  auto w = lg.parameter("w", xt::xarray<double>(xt::zeros<double>({d})));
  const double lambda = 1e-3;
  auto lloss = xgrad::mean(xgrad::softplus(-ti * xgrad::matmul(Fi, w))) +
               (lambda / 2) * xgrad::sum(xgrad::square(w));
  auto lgrad = xgrad::grad(lloss, {w})[0];
  auto Hv = xgrad::hvp(lloss, w, v);
  std::cout << "\nlogistic loss = " << xgrad::to_string(lloss)
            << "\ngradient = " << xgrad::to_string(lgrad) << "\n";
  auto value_grad = xgrad::compile({lloss, lgrad});
  auto hess_vec = xgrad::compile({Hv});
  const std::vector<xgrad::Feed<double>> data{{Fi, F}, {ti, t}};
  // [end]

  // [hessian-free]
  // Newton-CG: each outer step solves H d = -g by conjugate gradient, which only needs
  // products H p; it stops at a relative residual of min(0.5, sqrt(|g|)) (inexact Newton).
  auto H_times = [&](const xt::xarray<double>& p) {
    std::vector<xgrad::Feed<double>> feeds = data;
    feeds.push_back({v, p});
    return xt::xarray<double>(hess_vec.run(feeds)[0]);
  };
  const double tol = 1e-10;
  std::vector<double> newton_axis, newton_norm;  // gradient norm after each H v product
  int outer = 0, products = 0;
  xt::xarray<double> grad_w = value_grad.run(data)[1];
  double gnorm = xt::linalg::norm(grad_w);
  newton_axis.push_back(0);
  newton_norm.push_back(gnorm);
  while (gnorm > tol && outer < 50) {
    xt::xarray<double> dir = xt::zeros<double>({d}), res = -grad_w, p = res;
    double rr = xt::sum(res * res)();
    const double stop = std::min(0.5, std::sqrt(gnorm)) * gnorm;
    for (std::size_t k = 0; k < d && std::sqrt(rr) > stop; ++k) {
      const xt::xarray<double> Ap = H_times(p);
      ++products;
      const double alpha = rr / xt::sum(p * Ap)();
      dir += alpha * p;
      res -= alpha * Ap;
      const double rr_new = xt::sum(res * res)();
      p = res + (rr_new / rr) * p;
      rr = rr_new;
    }
    lg.value(w) += dir;
    ++outer;
    grad_w = value_grad.run(data)[1];
    gnorm = xt::linalg::norm(grad_w);
    newton_axis.push_back(products);
    newton_norm.push_back(gnorm);
    std::cout << "Newton-CG step " << outer << ": " << products
              << " H v products so far, |grad| = " << gnorm << "\n";
  }
  const xt::xarray<double> w_newton = lg.value(w);
  // [end]

  // [gradient-descent]
  // Gradient descent from the same start, with the step 1/L that the largest curvature L
  // allows (L from the Hessian's largest eigenvalue at the solution, times 1.1 for margin).
  xt::xarray<double> Hfull = xt::zeros<double>({d, d});
  for (std::size_t j = 0; j < d; ++j) {
    xt::xarray<double> e = xt::zeros<double>({d});
    e(j) = 1;
    xt::view(Hfull, xt::all(), j) = H_times(e);
  }
  const double L = 1.1 * xt::amax(xt::linalg::eigvalsh(Hfull))();
  lg.value(w) = xt::zeros<double>({d});
  std::vector<double> gd_axis, gd_norm;
  int gd_steps = 0;
  const int gd_budget = 200000;
  for (double norm = 1; norm > tol && gd_steps < gd_budget; ++gd_steps) {
    const auto& out = value_grad.run(data);
    norm = xt::linalg::norm(out[1]);
    if (gd_steps % 10 == 0) {
      gd_axis.push_back(gd_steps);
      gd_norm.push_back(norm);
    }
    if (norm <= tol) break;
    lg.value(w) -= (1 / L) * out[1];
  }
  std::cout << "\nNewton-CG: " << outer << " Newton steps, " << products
            << " Hessian-vector products, |grad| = " << gnorm << "\n"
            << "gradient descent (step 1/L): " << gd_steps << " steps to |grad| <= " << tol
            << "\nmax |w_newton - w_gd| = " << xt::amax(xt::abs(w_newton - lg.value(w)))() << "\n";
  check(gnorm <= tol && outer < 15, "Newton-CG converges in a few steps");
  check(gd_steps < gd_budget && xt::amax(xt::abs(w_newton - lg.value(w)))() < 1e-6,
        "gradient descent reaches the same minimum, much later");
  // [end]

  // [plot]
  figures::Plot conv{
      .name = "newton_vs_gd",
      .settings = {"set logscale xy", "set format y '10^{%L}'",
                   "set xlabel 'gradient or H v evaluations'", "set ylabel '|grad loss|'",
                   "set key top right",
                   "set title 'Logistic regression: Newton-CG against gradient descent'"},
      .series = {{"Newton-CG (per H v product)", newton_axis, newton_norm, "linespoints pt 7"},
                 {"gradient descent, step 1/L", gd_axis, gd_norm, "lines lw 2"}}};
  for (auto& s : conv.series) {
    for (double& a : s.x) a += 1;  // log scale: count from 1
  }
  check(figures::draw(conv), "plot drawn");
  std::cout << (ok ? "all checks passed" : "SOME CHECKS FAILED") << "\n";
  return ok ? 0 : 1;
  // [end]
}
