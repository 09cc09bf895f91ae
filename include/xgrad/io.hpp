/// @file io.hpp
/// @brief Printing arrays: operator<< for xt::xarray and every xtensor expression.
///
/// Opt-in, not part of xgrad.hpp: most files of a program print no array, and only those
/// that do should parse and instantiate xtensor's printing code.
/// @code
/// #include <xgrad/io.hpp>
/// #include <xgrad/xgrad.hpp>
/// std::cout << xgrad::eval(dy) << "\n";
/// @endcode
/// Printing nodes, as formulas or Graphviz, is xgrad/print.hpp (part of xgrad.hpp).
#pragma once

#include <xtensor/xio.hpp>
