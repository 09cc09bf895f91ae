/// @file error.hpp
/// @brief The exception hierarchy: every error xgrad raises derives from xgrad::Error.
#pragma once

#include <stdexcept>
#include <string>

namespace xgrad {

/// Base of every exception thrown by xgrad, so callers can catch one type.
class Error : public std::runtime_error {
 public:
  /// Builds an error; the message is prefixed with "xgrad: " so logs show the origin.
  explicit Error(const std::string& what) : std::runtime_error("xgrad: " + what) {}
  /// The message without the "xgrad: " prefix, for quoting it inside another message.
  std::string message() const { return std::string(what()).substr(7); }
};

/// Operand shapes that do not fit an op (raised at build time when shapes are known,
/// otherwise when a Function plans its buffers).
class ShapeError : public Error {
 public:
  /// Builds a shape error from a complete message.
  using Error::Error;
};

/// A missing, misplaced, wrongly typed or wrongly ranked value bound to an input.
class BindingError : public Error {
 public:
  /// Builds a binding error from a complete message.
  using Error::Error;
};

/// A value outside an op's domain: a label out of range, a bad axis, a non-finite result
/// caught by the opt-in finite check.
class ValueError : public Error {
 public:
  /// Builds a value error from a complete message.
  using Error::Error;
};

/// A request the graph cannot answer, such as a gradient of a node with respect to a node
/// it does not depend on, or handles from two different graphs mixed in one op.
class GraphError : public Error {
 public:
  /// Builds a graph error from a complete message.
  using Error::Error;
};

/// Memory a node needs that could not be allocated (a constant folded to terabytes, an
/// output too large for the machine): names the node, its shape and the bytes requested.
class AllocationError : public Error {
 public:
  /// Builds an allocation error from a complete message.
  using Error::Error;
};

}  // namespace xgrad
