/// @file train/train.hpp
/// @brief Everything for fitting a model (namespace xgrad::train): Trainer and Task,
/// metrics, callbacks, the history, and the Replicas interface of data parallelism.
#pragma once

#include "xgrad/train/callback.hpp"
#include "xgrad/train/callbacks.hpp"
#include "xgrad/train/checkpoint.hpp"
#include "xgrad/train/history.hpp"
#include "xgrad/train/metrics.hpp"
#include "xgrad/train/replicas.hpp"
#include "xgrad/train/trainer.hpp"
