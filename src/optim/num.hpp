// Internal to src/optim/: how optimizers, schedules and stopping rules print a number
// in their messages and descriptions, so that the same value reads the same in each.
#pragma once

#include <sstream>
#include <string>

namespace xgrad::optim::detail {

/// v as operator<< prints it (6 significant digits): "0.01", "1e-08", "nan".
inline std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace xgrad::optim::detail
