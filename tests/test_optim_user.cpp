// A user optimizer written as the documentation of Optimizer::update says, in a file that
// includes nothing of xgrad but <xgrad/optim/optimizer.hpp> (and nothing of xtensor):
// that header must bring xt::noalias and xtensor's math with it.
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>
#include <xgrad/optim/optimizer.hpp>

namespace {

// Gradient descent on the sign of a momentum average, with every assignment through
// xt::noalias.
template <class T>
class SignMomentum : public xgrad::optim::Optimizer<T> {
 public:
  SignMomentum(std::vector<xgrad::Expr<T>> params, xgrad::optim::Schedule lr, double beta)
      : xgrad::optim::Optimizer<T>("SignMomentum", std::move(params), std::move(lr)),
        beta_(static_cast<T>(beta)) {
    this->check_range("beta", beta, 0, 1, false, true);
  }

 protected:
  void update(xt::xarray<T>& value, const xt::xarray<T>& grad, xgrad::optim::ParamState<T>& state,
              const xgrad::optim::StepContext<T>& ctx) override {
    xt::xarray<T>& m = state.tensor("m", value);
    xt::noalias(m) = beta_ * m + (1 - beta_) * grad;
    xt::noalias(value) -= ctx.lr * xt::sign(m);
  }

 private:
  T beta_;
};

TEST(OptimUser, OptimizerFromTheDocsCompilesAndSteps) {
  xgrad::Graph<double> g;
  auto w = g.parameter("w", xt::xarray<double>{1.0, -2.0, 0.5});
  SignMomentum<double> opt({w}, 0.25, 0.5);
  const std::vector<xt::xarray<double>> grads{xt::xarray<double>{4.0, -1.0, 0.0}};
  opt.step(grads);
  opt.step(grads);
  // m is (1 - beta) g, then (1 - beta^2) g: its sign is g's, so each step moves by lr
  // against the gradient, and not at all where the gradient is 0.
  const auto& v = g.value(w);
  EXPECT_DOUBLE_EQ(v(0), 0.5);
  EXPECT_DOUBLE_EQ(v(1), -1.5);
  EXPECT_DOUBLE_EQ(v(2), 0.5);
  EXPECT_DOUBLE_EQ(opt.param_state(0).tensors.at("m")(0), 3.0);
  EXPECT_EQ(opt.steps(), 2u);
  EXPECT_THROW(SignMomentum<double>({w}, 0.1, 1.0), xgrad::ValueError);
}

}  // namespace
