// The command line and the self-checks of the tutorials: "--name VALUE" options with a
// usage line, and the check(passed, what) helper whose results become the exit code.
// Shared like figures.hpp, so that each main.cpp stays about gradient descent; parse() is
// compiled once, in cli.cpp.
#pragma once

#include <functional>
#include <initializer_list>
#include <iostream>
#include <string>

namespace cli {

/// One "--name VALUE" option: `set` receives the value's text.
struct Option {
  std::string name;        // with the dashes: "--every"
  std::string value_name;  // shown in the usage line: "K"
  std::function<void(const char*)> set;
};

/// Applies each "--name VALUE" pair of argv to its option. On an unknown name or a missing
/// value prints "usage: PROGRAM [--name VALUE]..." to stderr and returns false.
bool parse(int argc, char** argv, std::initializer_list<Option> options);

/// check(passed, what): prints "CHECK FAILED: what" for a failed check and clears `ok`,
/// which main turns into its exit code.
inline auto checker(bool& ok) {
  return [&ok](bool passed, const std::string& what) {
    if (!passed) std::cout << "CHECK FAILED: " << what << "\n";
    ok = ok && passed;
  };
}

}  // namespace cli
