/// @file xgrad.hpp
/// @brief Everything a user needs: graphs, ops, autodiff, compiled functions, printing
/// and gradient checks.
#pragma once

#include "xgrad/autodiff.hpp"
#include "xgrad/error.hpp"
#include "xgrad/function.hpp"
#include "xgrad/gradcheck.hpp"
#include "xgrad/graph.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/print.hpp"

// Printing values with std::cout is the first thing a learner does.
#include <xtensor/xio.hpp>
#include "xgrad/optim/optim.hpp"
#include "xgrad/data/data.hpp"
#include "xgrad/nn/nn.hpp"
