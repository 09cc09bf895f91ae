/// @file optim.hpp
/// @brief Everything for training: the Optimizer base, the built-in optimizers,
/// learning-rate schedules and stopping rules (namespace xgrad::optim).
#pragma once

#include "xgrad/optim/optimizer.hpp"
#include "xgrad/optim/optimizers.hpp"
#include "xgrad/optim/schedule.hpp"
#include "xgrad/optim/stopping.hpp"
