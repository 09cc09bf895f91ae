/// @file print.hpp
/// @brief Formulas and Graphviz drawings of graphs.
#pragma once

#include <string>

#include "xgrad/graph.hpp"

namespace xgrad {

/// A readable formula for a node, e.g. "2*x + 2": infix arithmetic, function calls for
/// other ops, names for named nodes, values for scalar constants.
template <class T>
std::string to_string(Expr<T> e);

/// Graphviz source for the subgraph e depends on: one box per node with its op or kind,
/// name and shape (rendered with `dot -Tsvg`).
template <class T>
std::string to_dot(Expr<T> e);

/// Graphviz source for the whole graph.
template <class T>
std::string to_dot(const Graph<T>& g);

extern template std::string to_string(Expr<float>);
extern template std::string to_string(Expr<double>);
extern template std::string to_dot(Expr<float>);
extern template std::string to_dot(Expr<double>);
extern template std::string to_dot(const Graph<float>&);
extern template std::string to_dot(const Graph<double>&);

}  // namespace xgrad
