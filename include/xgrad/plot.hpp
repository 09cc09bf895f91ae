/// @file plot.hpp
/// @brief Line plots through gnuplot and graph drawings through Graphviz, written beside
/// the program: what the tutorials and train::HistoryPlot draw with.
///
/// A plot is one self-contained gnuplot script NAME.gp (data inline) in the current
/// directory; when gnuplot is installed it renders NAME.png and NAME.svg beside it and the
/// paths are printed. When gnuplot is missing, one line says how to install it and the
/// program carries on. Graph drawings work the same way with NAME.dot and Graphviz's `dot`.
#pragma once

#include <string>
#include <vector>

namespace xgrad::plot {

/// One curve or point set of a plot.
struct Series {
  std::string title = {};       ///< Legend entry ("" for none).
  std::vector<double> x = {};   ///< Abscissae.
  std::vector<double> y = {};   ///< Ordinates, as many as x.
  std::string style = "lines";  ///< gnuplot "with" clause: lines, points, linespoints...
};

/// A 2-d plot: gnuplot settings (labels, log scales...), data series, and optional extra
/// plot terms such as a function ("x**2 + 2*x + 3 title 'f'").
struct Plot {
  std::string name = {};                      ///< File stem: NAME.gp, NAME.png, NAME.svg.
  std::vector<std::string> settings = {};     ///< gnuplot commands run before plotting.
  std::vector<Series> series = {};            ///< The data.
  std::vector<std::string> extra_terms = {};  ///< Plotted before the series.
  std::string command = "plot";               ///< "splot" for surfaces and contour maps.
  int width = 800;                            ///< Pixels (PNG) or points (SVG).
  int height = 560;                           ///< Pixels (PNG) or points (SVG).
  /// gnuplot's enhanced text: x_k and x^2 as sub- and superscripts.
  bool enhanced = true;
};

/// True when `program` is on the PATH.
bool have_program(const std::string& program);
/// s as a single-quoted gnuplot string.
std::string quoted(const std::string& s);
/// The absolute, normalised path of a file in the current directory.
std::string absolute(const std::string& file);
/// Writes NAME.gp and renders NAME.png and NAME.svg with gnuplot. Returns false only when
/// gnuplot is installed but failed (a missing gnuplot is not an error).
bool draw(const Plot& p);
/// Writes Graphviz source to NAME.dot and renders NAME.svg and NAME.png with `dot`.
/// Returns false only when dot is installed but failed.
bool draw_graph(const std::string& name, const std::string& dot_source);

}  // namespace xgrad::plot
