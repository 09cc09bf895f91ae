// Initialisers. Random numbers come from a 64-bit Mersenne Twister turned into doubles
// and normal deviates here, not by <random>'s distributions, whose algorithms differ
// between standard libraries: a seed must give the same model everywhere.
#include "xgrad/nn/init.hpp"

#include <atomic>
#include <cmath>
#include <numbers>
#include <random>
#include <string>
#include <xtensor-blas/xlinalg.hpp>

#include "xgrad/error.hpp"

namespace xgrad::nn {
namespace {

std::atomic<std::uint64_t> seed_stream{0x5eed};

/// Uniform doubles in [0, 1) and standard normals (Box-Muller, both deviates used).
class Source {
 public:
  explicit Source(std::optional<std::uint64_t> seed) : rng_(seed ? *seed : next_seed()) {}
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 0;
    while (u1 == 0) u1 = uniform();  // log(0) is -inf
    const double u2 = uniform();
    const double r = std::sqrt(-2 * std::log(u1));
    spare_ = r * std::sin(2 * std::numbers::pi * u2);
    has_spare_ = true;
    return r * std::cos(2 * std::numbers::pi * u2);
  }

 private:
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

std::vector<std::size_t> shape_of(const auto& w) { return {w.shape().begin(), w.shape().end()}; }

template <class T>
void fill_uniform(xt::xarray<T>& w, double lo, double hi, std::optional<std::uint64_t> seed) {
  if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi)) {
    throw ValueError("nn::init::uniform: bounds [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + ") are not an interval");
  }
  Source s(seed);
  for (T& v : w) v = static_cast<T>(lo + (hi - lo) * s.uniform());
}

template <class T>
void fill_normal(xt::xarray<T>& w, double mean, double std, std::optional<std::uint64_t> seed) {
  if (!(std >= 0) || !std::isfinite(mean) || !std::isfinite(std)) {
    throw ValueError("nn::init::normal: mean " + std::to_string(mean) + " and std " +
                     std::to_string(std) + " must be finite, std >= 0");
  }
  Source s(seed);
  for (T& v : w) v = static_cast<T>(mean + std * s.normal());
}

std::size_t fan(const std::vector<std::size_t>& shape, init::FanMode mode) {
  auto [in, out] = init::fans(shape);
  return mode == init::FanMode::fan_in ? in : out;
}

void require_fan(std::size_t f, const char* who) {
  if (f == 0) throw ValueError(std::string("nn::init::") + who + ": the array has no elements");
}

}  // namespace

void manual_seed(std::uint64_t seed) { seed_stream.store(seed); }

std::uint64_t next_seed() {
  // splitmix64 over a counter: consecutive seeds give unrelated generator states.
  std::uint64_t z = seed_stream.fetch_add(0x9E3779B97F4A7C15ULL) + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

namespace init {

std::pair<std::size_t, std::size_t> fans(const std::vector<std::size_t>& shape) {
  if (shape.empty()) throw ValueError("nn::init: fan-in and fan-out need an array of rank >= 1");
  if (shape.size() == 1) return {shape[0], shape[0]};
  std::size_t field = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) field *= shape[i];
  return {shape[1] * field, shape[0] * field};
}

double gain(const std::string& nonlinearity, double a) {
  if (nonlinearity == "linear" || nonlinearity == "identity" || nonlinearity == "sigmoid" ||
      nonlinearity == "conv")
    return 1;
  if (nonlinearity == "tanh") return 5.0 / 3;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1 + a * a));
  if (nonlinearity == "selu") return 3.0 / 4;
  throw ValueError("nn::init::gain: unknown nonlinearity '" + nonlinearity +
                   "' (linear, identity, sigmoid, conv, tanh, relu, leaky_relu, selu)");
}

template <class T>
void zeros(xt::xarray<T>& w) {
  w.fill(T(0));
}
template <class T>
void ones(xt::xarray<T>& w) {
  w.fill(T(1));
}
template <class T>
void constant(xt::xarray<T>& w, double v) {
  w.fill(static_cast<T>(v));
}
template <class T>
void uniform(xt::xarray<T>& w, double lo, double hi, std::optional<std::uint64_t> seed) {
  fill_uniform(w, lo, hi, seed);
}
template <class T>
void normal(xt::xarray<T>& w, double mean, double std, std::optional<std::uint64_t> seed) {
  fill_normal(w, mean, std, seed);
}
template <class T>
void xavier_uniform(xt::xarray<T>& w, double g, std::optional<std::uint64_t> seed) {
  auto [in, out] = fans(shape_of(w));
  require_fan(in + out, "xavier_uniform");
  const double b = g * std::sqrt(6.0 / static_cast<double>(in + out));
  fill_uniform(w, -b, b, seed);
}
template <class T>
void xavier_normal(xt::xarray<T>& w, double g, std::optional<std::uint64_t> seed) {
  auto [in, out] = fans(shape_of(w));
  require_fan(in + out, "xavier_normal");
  fill_normal(w, 0.0, g * std::sqrt(2.0 / static_cast<double>(in + out)), seed);
}
template <class T>
void kaiming_uniform(xt::xarray<T>& w, double a, FanMode mode, const std::string& nonlinearity,
                     std::optional<std::uint64_t> seed) {
  const std::size_t f = fan(shape_of(w), mode);
  require_fan(f, "kaiming_uniform");
  const double b = gain(nonlinearity, a) * std::sqrt(3.0 / static_cast<double>(f));
  fill_uniform(w, -b, b, seed);
}
template <class T>
void kaiming_normal(xt::xarray<T>& w, double a, FanMode mode, const std::string& nonlinearity,
                    std::optional<std::uint64_t> seed) {
  const std::size_t f = fan(shape_of(w), mode);
  require_fan(f, "kaiming_normal");
  fill_normal(w, 0.0, gain(nonlinearity, a) / std::sqrt(static_cast<double>(f)), seed);
}
template <class T>
void orthogonal(xt::xarray<T>& w, double g, std::optional<std::uint64_t> seed) {
  if (w.dimension() < 2) {
    throw ValueError("nn::init::orthogonal: needs an array of rank >= 2, got rank " +
                     std::to_string(w.dimension()));
  }
  const std::size_t rows = w.shape(0), cols = w.size() / std::max<std::size_t>(rows, 1);
  if (rows == 0 || cols == 0) return;
  // QR of a normal (max x min) matrix; Q's columns are orthonormal. The signs of R's
  // diagonal fix Q uniquely, so the result is uniform over orthogonal matrices.
  const std::size_t big = std::max(rows, cols), small = std::min(rows, cols);
  xt::xarray<double> a = xt::xarray<double>::from_shape({big, small});
  fill_normal(a, 0.0, 1.0, seed);
  auto [q, r] = xt::linalg::qr(a, xt::linalg::qrmode::reduced);
  for (std::size_t j = 0; j < small; ++j) {
    const double s = r(j, j) < 0 ? -1.0 : 1.0;
    for (std::size_t i = 0; i < big; ++i) q(i, j) *= s;
  }
  for (std::size_t i = 0; i < rows; ++i) {
    for (std::size_t j = 0; j < cols; ++j) {
      const double v = rows >= cols ? q(i, j) : q(j, i);  // transpose for wide matrices
      w.data()[i * cols + j] = static_cast<T>(g * v);
    }
  }
}

#define XGRAD_INSTANTIATE(T)                                                           \
  template void zeros(xt::xarray<T>&);                                                 \
  template void ones(xt::xarray<T>&);                                                  \
  template void constant(xt::xarray<T>&, double);                                      \
  template void uniform(xt::xarray<T>&, double, double, std::optional<std::uint64_t>); \
  template void normal(xt::xarray<T>&, double, double, std::optional<std::uint64_t>);  \
  template void xavier_uniform(xt::xarray<T>&, double, std::optional<std::uint64_t>);  \
  template void xavier_normal(xt::xarray<T>&, double, std::optional<std::uint64_t>);   \
  template void kaiming_uniform(xt::xarray<T>&, double, FanMode, const std::string&,   \
                                std::optional<std::uint64_t>);                         \
  template void kaiming_normal(xt::xarray<T>&, double, FanMode, const std::string&,    \
                               std::optional<std::uint64_t>);                          \
  template void orthogonal(xt::xarray<T>&, double, std::optional<std::uint64_t>);
XGRAD_INSTANTIATE(float)
XGRAD_INSTANTIATE(double)

}  // namespace init
}  // namespace xgrad::nn
