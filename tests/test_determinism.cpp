// Determinism: tutorial 5's training (an MLP, Adam with a cosine schedule, shuffled
// minibatches from the DataLoader; reduced here to synthetic data and a small network)
// gives the same parameters to the last bit whether the loader prefetches batches in its
// worker thread or gathers them in the training thread, and from run to run; with xgrad on
// two threads (products split across them) too.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>
#include <xgrad/xgrad.hpp>

namespace {

namespace data = xgrad::data;
namespace optim = xgrad::optim;

// Tutorial 5's model: y = W3 relu(W2 relu(W1 x + b1) + b2) + b3, He-initialised.
class Mlp {
 public:
  Mlp(xgrad::Graph<float>& g, const std::vector<std::size_t>& sizes, std::uint32_t seed) {
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
      std::normal_distribution<float> normal(0.0f, std::sqrt(2.0f / sizes[i]));
      xt::xarray<float> w = xt::xarray<float>::from_shape({sizes[i], sizes[i + 1]});
      for (auto& v : w) v = normal(rng);
      const std::string k = std::to_string(i + 1);
      params_.push_back(g.parameter("W" + k, std::move(w)));
      params_.push_back(g.parameter("b" + k, xt::zeros<float>({sizes[i + 1]})));
    }
  }
  xgrad::Expr<float> operator()(xgrad::Expr<float> x) const {
    for (std::size_t i = 0; i < params_.size(); i += 2) {
      x = xgrad::matmul(x, params_[i]) + params_[i + 1];
      if (i + 2 < params_.size()) x = xgrad::relu(x);
    }
    return x;
  }
  const std::vector<xgrad::Expr<float>>& parameters() const { return params_; }

 private:
  std::vector<xgrad::Expr<float>> params_;
};

// 600 points of 12 features in 4 classes (the sign pattern of two projections).
data::TensorDataset<float, std::int64_t> synthetic() {
  const std::size_t n = 600, d = 12;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  xt::xarray<float> x = xt::xarray<float>::from_shape({n, d});
  xt::xarray<std::int64_t> y = xt::xarray<std::int64_t>::from_shape({n});
  for (std::size_t i = 0; i < n; ++i) {
    float a = 0, b = 0;
    for (std::size_t j = 0; j < d; ++j) {
      x(i, j) = normal(rng);
      a += (j % 2 ? 1.f : -0.5f) * x(i, j);
      b += (j < d / 2 ? 1.f : -1.f) * x(i, j);
    }
    y(i) = (a > 0 ? 1 : 0) + (b > 0 ? 2 : 0);
  }
  return {std::move(x), std::move(y)};
}

struct Trained {
  std::vector<std::string> bytes;  // each parameter's value, byte for byte
  double first_loss = 0, last_loss = 0;
};

// 300 Adam steps over shuffled batches of 32 (tutorial 5's loop), with this prefetch and
// these layer sizes.
Trained train(const data::Dataset<float, std::int64_t>& set, std::size_t prefetch,
              const std::vector<std::size_t>& sizes = {12, 32, 16, 4}) {
  xgrad::Graph<float> g;
  auto x = g.input("x", {xgrad::open, 12});
  auto labels = g.input("labels", {xgrad::open}, xgrad::DType::int64);
  Mlp model(g, sizes, /*seed=*/42);
  auto loss = xgrad::cross_entropy(model(x), labels);
  const auto& params = model.parameters();
  std::vector<xgrad::Expr<float>> outputs{loss};
  for (auto gr : xgrad::grad(loss, params)) outputs.push_back(gr);
  auto step = xgrad::compile(outputs);
  data::DataLoader<float, std::int64_t> loader(
      set, {.batch_size = 32, .shuffle = true, .seed = 7, .prefetch = prefetch});
  const std::size_t epochs = 16, steps = epochs * loader.num_batches();  // 16 x 19 = 304
  optim::Adam<float> adam(params, optim::cosine(1e-2, steps, 1e-4));
  Trained t;
  for (std::size_t epoch = 1; epoch <= epochs; ++epoch) {
    adam.set_epoch(epoch);
    double sum = 0;
    for (const auto& batch : loader.epoch(epoch)) {
      const auto& out = step.run(batch.feeds(x, labels));
      adam.step(out[0](), out, 1);
      sum += out[0]() * batch.size();
    }
    (epoch == 1 ? t.first_loss : t.last_loss) = sum / set.size();
  }
  for (const auto& p : params) {
    const auto& v = g.value(p);
    t.bytes.emplace_back(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
  return t;
}

TEST(Determinism, TrainingIsBitIdenticalWithPrefetchOnAndOff) {
  const auto set = synthetic();
  const Trained off = train(set, 0), on = train(set, 2), again = train(set, 2);
  // The training did something: the loss fell well below the first epoch's.
  EXPECT_LT(off.last_loss, 0.5 * off.first_loss) << off.first_loss << " -> " << off.last_loss;
  ASSERT_EQ(off.bytes.size(), 6u);
  for (std::size_t k = 0; k < off.bytes.size(); ++k) {
    EXPECT_TRUE(off.bytes[k] == on.bytes[k]) << "parameter " << k << " differs with prefetch";
    EXPECT_TRUE(on.bytes[k] == again.bytes[k]) << "parameter " << k << " differs run to run";
  }
  EXPECT_EQ(off.last_loss, on.last_loss);
}

// At two threads, with layers wide enough that the matrix products are split between the
// threads (and the sums taken in two parts), two trainings give the same bytes.
TEST(Determinism, TrainingIsBitIdenticalRunToRunAtTwoThreads) {
  const int old = xgrad::num_threads();
  xgrad::set_num_threads(2);
  const auto set = synthetic();
  const std::vector<std::size_t> wide{12, 384, 192, 4};
  const Trained a = train(set, 0, wide), b = train(set, 2, wide);
  xgrad::set_num_threads(old);
  EXPECT_LT(a.last_loss, 0.5 * a.first_loss) << a.first_loss << " -> " << a.last_loss;
  ASSERT_EQ(a.bytes.size(), 6u);
  for (std::size_t k = 0; k < a.bytes.size(); ++k)
    EXPECT_TRUE(a.bytes[k] == b.bytes[k]) << "parameter " << k << " differs run to run";
  EXPECT_EQ(a.last_loss, b.last_loss);
}

}  // namespace
