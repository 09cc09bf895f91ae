/// @file xgrad.hpp
/// @brief Everything a user needs: graphs, ops, autodiff, compiled functions, printing
/// of nodes, gradient checks, optimizers, data, layers, training and plots. Printing arrays with
/// operator<< is opt-in: xgrad/io.hpp.
#pragma once

#include "xgrad/autodiff.hpp"
#include "xgrad/data/data.hpp"
#include "xgrad/error.hpp"
#include "xgrad/function.hpp"
#include "xgrad/gradcheck.hpp"
#include "xgrad/graph.hpp"
#include "xgrad/nn/nn.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/optim/optim.hpp"
#include "xgrad/plot.hpp"
#include "xgrad/print.hpp"
#include "xgrad/threads.hpp"
#include "xgrad/train/train.hpp"
