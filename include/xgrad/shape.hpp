/// @file shape.hpp
/// @brief The vocabulary every other header uses: dimensions, shapes and element types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace xgrad {

/// One extent of a shape; xgrad::open marks a dimension left open until values are bound.
using Dim = std::ptrdiff_t;
/// A static shape; dimensions may be xgrad::open (typically the leading batch dimension).
using Shape = std::vector<Dim>;
/// A dimension whose extent is only known when a value is bound (the batch size).
inline constexpr Dim open = -1;
/// The largest rank the kernels handle; their index arithmetic lives on the stack.
inline constexpr std::size_t max_rank = 8;

/// Formats a shape as "(2, 3)", with "?" for open dimensions.
std::string shape_str(std::span<const Dim> shape);
/// Number of elements of a fully known shape.
std::size_t shape_size(std::span<const Dim> shape);
/// True when the product of the shape's known, nonzero extents exceeds PTRDIFF_MAX: no
/// array of that shape has valid strides (zeros are skipped, since an empty array still
/// has strides). Every node's shape and every bound value is checked against this.
bool shape_overflows(std::span<const Dim> shape);
/// "12 bytes (3 elements of 4 bytes)": the size of a buffer, for allocation messages
/// (without overflowing where the byte count exceeds 64 bits).
std::string bytes_str(std::size_t elements, std::size_t element_size);

/// Element types a bound value may have; integers are accepted only by integer inputs.
enum class DType : std::uint8_t { float32, float64, int32, int64 };
/// Human-readable dtype name, for error messages.
const char* dtype_name(DType d);
/// The DType tag of a C++ element type (float, double, int32_t, int64_t).
template <class U>
constexpr DType dtype_of();
/// @cond INTERNAL
template <>
constexpr DType dtype_of<float>() {
  return DType::float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::float64;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::int32;
}
template <>
constexpr DType dtype_of<std::int64_t>() {
  return DType::int64;
}
/// @endcond

}  // namespace xgrad
