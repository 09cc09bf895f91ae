// Plots through gnuplot and graph drawings through Graphviz (see xgrad/plot.hpp).
#include "xgrad/plot.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace xgrad::plot {

bool have_program(const std::string& program) {
  const std::string cmd = "command -v " + program + " > /dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

std::string absolute(const std::string& file) {
  return std::filesystem::absolute(file).lexically_normal().string();
}

bool draw(const Plot& p) {
  const std::string script = p.name + ".gp";
  {
    std::ofstream gp(script);
    gp.precision(10);
    for (std::size_t i = 0; i < p.series.size(); ++i) {
      gp << "$data" << i << " << EOD\n";
      const Series& s = p.series[i];
      for (std::size_t k = 0; k < s.x.size() && k < s.y.size(); ++k) {
        gp << s.x[k] << ' ' << s.y[k] << '\n';
      }
      gp << "EOD\n";
    }
    for (const auto& s : p.settings) gp << s << '\n';
    std::string terms;
    for (const auto& t : p.extra_terms) terms += (terms.empty() ? "" : ", ") + t;
    for (std::size_t i = 0; i < p.series.size(); ++i) {
      const Series& s = p.series[i];
      terms += (terms.empty() ? "" : ", ") + std::string("$data") + std::to_string(i) +
               (p.command == "splot" ? " using 1:2:(0)" : " using 1:2") + " with " + s.style +
               (s.title.empty() ? " notitle" : " title " + quoted(s.title));
    }
    const std::string size = std::to_string(p.width) + "," + std::to_string(p.height) +
                             (p.enhanced ? " enhanced" : " noenhanced");
    // pngcairo draws smoother lines than the libgd png terminal; both ship with gnuplot.
    gp << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
       << "  set terminal pngcairo size " << size << "\n} else {\n"
       << "  set terminal png size " << size << "\n}\n"
       << "set output '" << p.name << ".png'\n"
       << p.command << ' ' << terms << '\n'
       << "set terminal svg size " << size << " dynamic\n"
       << "set output '" << p.name << ".svg'\n"
       << "replot\nunset output\n";
  }
  if (!have_program("gnuplot")) {
    std::cout << "plot " << p.name << ": gnuplot not found, wrote " << absolute(script)
              << " (install gnuplot with: sudo apt-get install gnuplot-nox)\n";
    return true;
  }
  const std::string cmd = "gnuplot '" + script + "'";
  if (std::system(cmd.c_str()) != 0) {
    std::cout << "plot " << p.name << ": gnuplot failed on " << absolute(script) << "\n";
    return false;
  }
  std::cout << "plot: " << absolute(p.name + ".png") << "\n      " << absolute(p.name + ".svg")
            << "\n";
  return true;
}

bool draw_graph(const std::string& name, const std::string& dot_source) {
  const std::string file = name + ".dot";
  std::ofstream(file) << dot_source;
  if (!have_program("dot")) {
    std::cout << "graph " << name << ": Graphviz not found, wrote " << absolute(file)
              << " (install it with: sudo apt-get install graphviz)\n";
    return true;
  }
  for (const char* format : {"svg", "png"}) {
    const std::string cmd =
        std::string("dot -T") + format + " '" + file + "' -o '" + name + "." + format + "'";
    if (std::system(cmd.c_str()) != 0) {
      std::cout << "graph " << name << ": dot failed on " << absolute(file) << "\n";
      return false;
    }
  }
  std::cout << "graph: " << absolute(name + ".svg") << "\n       " << absolute(name + ".png")
            << "\n";
  return true;
}

}  // namespace xgrad::plot
