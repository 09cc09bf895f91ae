/// @file print.hpp
/// @brief Formulas and Graphviz drawings of graphs.
#pragma once

#include <string>

#include "xgrad/graph.hpp"

namespace xgrad {

/// A readable formula for a node, e.g. "2*x + 2": infix arithmetic, function calls for
/// other ops, names for named nodes, values for scalar constants. What is an identity is
/// left out of the text (not of the graph): sums and broadcasts to the operand's own
/// static shape (an open extent counts as the same n everywhere), sizes with one open
/// extent print as n, numeric factors and scalar denominators are collected in front of
/// products (`-2/n * X^T @ (y - X @ beta)`), `a + -b` prints as `a - b` and a division by
/// a scalar that is safe at 0 (safe_div) as a division.
template <class T>
std::string to_string(Expr<T> e);

/// The formula of to_string() in LaTeX math, e.g. `-\frac{2}{n} X^\top (y - X \beta)`:
/// `^\top` for transposes, `\frac` for divisions, `\lVert x \rVert` for norms, `\sqrt`,
/// Greek names (beta) as symbols, other calls as `\operatorname`. For MathJax pages and
/// papers; the text carries no math delimiters.
template <class T>
std::string to_latex(Expr<T> e);

/// Graphviz source for the subgraph e depends on: one box per node with its op or kind,
/// name and shape (rendered with `dot -Tsvg`). An operand that enters a matrix product
/// transposed has a bold edge marked T, and the product's label says which (X^T @ r).
template <class T>
std::string to_dot(Expr<T> e);

/// Graphviz source for the whole graph.
template <class T>
std::string to_dot(const Graph<T>& g);

extern template std::string to_string(Expr<float>);
extern template std::string to_string(Expr<double>);
extern template std::string to_latex(Expr<float>);
extern template std::string to_latex(Expr<double>);
extern template std::string to_dot(Expr<float>);
extern template std::string to_dot(Expr<double>);
extern template std::string to_dot(const Graph<float>&);
extern template std::string to_dot(const Graph<double>&);

}  // namespace xgrad
