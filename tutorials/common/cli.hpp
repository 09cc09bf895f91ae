// The command line and the self-checks of the tutorials: "--name VALUE" options with a
// usage line, and the check(passed, what) helper whose results become the exit code.
// Shared like figures.hpp, so that each main.cpp stays about gradient descent.
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
inline bool parse(int argc, char** argv, std::initializer_list<Option> options) {
  for (int i = 1; i < argc; i += 2) {
    const Option* option = nullptr;
    for (const Option& o : options) {
      if (o.name == argv[i]) option = &o;
    }
    if (!option || i + 1 >= argc) {
      std::cerr << "usage: " << argv[0];
      for (const Option& o : options) std::cerr << " [" << o.name << " " << o.value_name << "]";
      std::cerr << "\n";
      return false;
    }
    option->set(argv[i + 1]);
  }
  return true;
}

/// check(passed, what): prints "CHECK FAILED: what" for a failed check and clears `ok`,
/// which main turns into its exit code.
inline auto checker(bool& ok) {
  return [&ok](bool passed, const std::string& what) {
    if (!passed) std::cout << "CHECK FAILED: " << what << "\n";
    ok = ok && passed;
  };
}

}  // namespace cli
