/// @file ops.hpp
/// @brief Builders for every built-in op, one header per family (xgrad/ops/*.hpp, which
/// mirror src/ops/). Each builder adds a node (after simplification) and returns its
/// handle.
#pragma once

#include "xgrad/ops/conv.hpp"
#include "xgrad/ops/elementwise.hpp"
#include "xgrad/ops/linalg.hpp"
#include "xgrad/ops/nn.hpp"
#include "xgrad/ops/norm.hpp"
#include "xgrad/ops/random.hpp"
#include "xgrad/ops/reduce.hpp"
#include "xgrad/ops/shape.hpp"
