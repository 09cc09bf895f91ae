// The tutorials' command line (see cli.hpp).
#include "cli.hpp"

#include <iostream>

namespace cli {

bool parse(int argc, char** argv, std::initializer_list<Option> options) {
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

}  // namespace cli
