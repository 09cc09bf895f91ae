/// @file ops/table.hpp
/// @brief How the op tables of the ops/ headers expand. Each family header lists its ops
/// once, as the rows of an X-macro table (XGRAD_ELEMENTWISE_OPS, XGRAD_REDUCE_OPS, ...)
/// with the documentation of each op in front of its row. The header expands the table
/// into the declarations users see; src/ops/ expands the same table into the explicit
/// instantiations for float and double (and, for elementwise ops, into the builders), so
/// no second list of the ops exists to fall out of step.
#pragma once

// One builder from a row X(name, (parameters)); default arguments stay in the parameters.
// The helper macros are hidden from the API docs (EXCLUDE_SYMBOLS), the ops they declare
// are not.
#define XGRAD_DETAIL_DECLARE(name, params) \
  template <class T>                       \
  Expr<T> name params;
