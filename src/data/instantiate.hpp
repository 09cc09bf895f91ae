// Internal to src/data/: the pairs of element types (features T, targets L) the data
// module's class templates are explicitly instantiated for. Their members are defined
// in src/data/ only, so a user's file compiles none of them, and every pair a Batch can
// hold is here (the Element concept admits four types).
#pragma once

#include <cstdint>

/// Calls M(T, L) for each of the 16 pairs.
#define XGRAD_DATA_FOR_EACH_ELEMENT_PAIR(M) \
  M(float, float)                           \
  M(float, double)                          \
  M(float, std::int32_t)                    \
  M(float, std::int64_t)                    \
  M(double, float)                          \
  M(double, double)                         \
  M(double, std::int32_t)                   \
  M(double, std::int64_t)                   \
  M(std::int32_t, float)                    \
  M(std::int32_t, double)                   \
  M(std::int32_t, std::int32_t)             \
  M(std::int32_t, std::int64_t)             \
  M(std::int64_t, float)                    \
  M(std::int64_t, double)                   \
  M(std::int64_t, std::int32_t)             \
  M(std::int64_t, std::int64_t)
