// Helpers shared by every test file.
#pragma once

#include <string>

namespace xgrad_test {

/// Whether `sub` occurs in `s`: error messages are checked for the parts they must name.
inline bool contains(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

}  // namespace xgrad_test
