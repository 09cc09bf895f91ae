/// @file train/train.hpp
/// @brief Everything for fitting a model (namespace xgrad::train): Trainer and Task,
/// metrics, callbacks and the history.
#pragma once

#include "xgrad/train/callback.hpp"
#include "xgrad/train/callbacks.hpp"
#include "xgrad/train/checkpoint.hpp"
#include "xgrad/train/history.hpp"
#include "xgrad/train/metrics.hpp"
#include "xgrad/train/trainer.hpp"
