// Pictures for the tutorials: line plots through gnuplot and graph drawings through
// Graphviz. Shared by every tutorial, so that each main.cpp stays about gradient descent.
//
// A plot is written as one self-contained gnuplot script NAME.gp (data inline) in the
// current directory, the tutorial's build folder; when gnuplot is installed it renders
// NAME.png and NAME.svg beside it and the paths are printed. When gnuplot is missing, one
// line says how to install it and the tutorial carries on. Graph drawings work the same
// way with NAME.dot and Graphviz's `dot`.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

namespace figures {

/// One curve or point set of a plot.
struct Series {
  std::string title = {};       // legend entry ("" for none)
  std::vector<double> x = {};   // abscissae
  std::vector<double> y = {};   // ordinates, as many as x
  std::string style = "lines";  // gnuplot "with" clause: lines, points, linespoints...
};

/// A 2-d plot: gnuplot settings (labels, log scales...), data series, and optional extra
/// plot terms such as a function ("x**2 + 2*x + 3 title 'f'").
struct Plot {
  std::string name = {};                   // file stem: NAME.gp, NAME.png, NAME.svg
  std::vector<std::string> settings = {};  // gnuplot commands run before plotting
  std::vector<Series> series = {};
  std::vector<std::string> extra_terms = {};  // plotted before the series
  std::string command = "plot";               // "splot" for surfaces and contour maps
  int width = 800, height = 560;
  bool enhanced = true;  // gnuplot's enhanced text: x_k and x^2 as sub- and superscripts
};

/// True when `program` is on the PATH.
inline bool have_program(const std::string& program) {
  const std::string cmd = "command -v " + program + " > /dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

/// s as a single-quoted gnuplot string.
inline std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

inline std::string absolute(const std::string& file) {
  return std::filesystem::absolute(file).lexically_normal().string();
}

/// Writes NAME.gp and renders NAME.png and NAME.svg with gnuplot. Returns false only when
/// gnuplot is installed but failed (a missing gnuplot is not an error).
inline bool draw(const Plot& p) {
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

/// Writes Graphviz source to NAME.dot and renders NAME.svg and NAME.png with `dot`.
/// Returns false only when dot is installed but failed.
inline bool draw_graph(const std::string& name, const std::string& dot_source) {
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

}  // namespace figures
