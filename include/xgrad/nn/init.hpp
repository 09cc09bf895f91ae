/// @file init.hpp
/// @brief Parameter initialisers (namespace xgrad::nn::init), in place on an array, with
/// PyTorch's definitions of fan-in, fan-out and gain.
///
/// Every random initialiser takes a seed. Without one it draws the next seed from a
/// process-wide stream set by manual_seed(), so a model built twice after the same
/// manual_seed() gets the same weights, layer by layer. Values are computed by xgrad
/// itself (not by a standard-library distribution), so a seed gives the same numbers with
/// every compiler and standard library.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <xtensor/xarray.hpp>

namespace xgrad::nn {

/// Restarts the stream of seeds that initialisers without an explicit seed draw from.
void manual_seed(std::uint64_t seed);
/// The next seed of that stream (each call advances it).
std::uint64_t next_seed();

namespace init {

/// Which fan kaiming initialisers scale by.
enum class FanMode { fan_in, fan_out };

/// (fan_in, fan_out) of a weight array: (shape[1], shape[0]) times the receptive field
/// (the product of shape[2:]) for a weight of rank 2 or more, as PyTorch computes it; a
/// 1-d array has fan_in = fan_out = its size. Throws ValueError for a 0-d array.
std::pair<std::size_t, std::size_t> fans(const std::vector<std::size_t>& shape);

/// The recommended gain for a nonlinearity: "linear", "sigmoid", "conv" and "identity" 1,
/// "tanh" 5/3, "relu" sqrt(2), "leaky_relu" sqrt(2 / (1 + a^2)), "selu" 3/4; ValueError
/// otherwise.
double gain(const std::string& nonlinearity, double a = 0.01);

/// Every element 0.
template <class T>
void zeros(xt::xarray<T>& w);
/// Every element 1.
template <class T>
void ones(xt::xarray<T>& w);
/// Every element v.
template <class T>
void constant(xt::xarray<T>& w, double v);
/// Uniform in [lo, hi).
template <class T>
void uniform(xt::xarray<T>& w, double lo = 0, double hi = 1,
             std::optional<std::uint64_t> seed = {});
/// Normal with the given mean and standard deviation.
template <class T>
void normal(xt::xarray<T>& w, double mean = 0, double std = 1,
            std::optional<std::uint64_t> seed = {});
/// Glorot: uniform in +-gain * sqrt(6 / (fan_in + fan_out)).
template <class T>
void xavier_uniform(xt::xarray<T>& w, double gain = 1, std::optional<std::uint64_t> seed = {});
/// Glorot: normal with std gain * sqrt(2 / (fan_in + fan_out)).
template <class T>
void xavier_normal(xt::xarray<T>& w, double gain = 1, std::optional<std::uint64_t> seed = {});
/// He: uniform in +-gain(nonlinearity, a) * sqrt(3 / fan). Linear and Conv2d default to
/// kaiming_uniform(w, sqrt(5)), LibTorch's default.
template <class T>
void kaiming_uniform(xt::xarray<T>& w, double a = 0, FanMode mode = FanMode::fan_in,
                     const std::string& nonlinearity = "leaky_relu",
                     std::optional<std::uint64_t> seed = {});
/// He: normal with std gain(nonlinearity, a) / sqrt(fan).
template <class T>
void kaiming_normal(xt::xarray<T>& w, double a = 0, FanMode mode = FanMode::fan_in,
                    const std::string& nonlinearity = "leaky_relu",
                    std::optional<std::uint64_t> seed = {});
/// A (semi-)orthogonal matrix times gain, from the QR decomposition of a normal matrix
/// (arrays of rank > 2 are flattened to (shape[0], rest)); ValueError for rank < 2.
template <class T>
void orthogonal(xt::xarray<T>& w, double gain = 1, std::optional<std::uint64_t> seed = {});

}  // namespace init
}  // namespace xgrad::nn
