/// @file data.hpp
/// @brief Everything for feeding data: datasets (in-memory, CSV, .npy, IDX), splits, the
/// minibatch DataLoader and the binding of batches to a Function (namespace xgrad::data).
#pragma once

#include "xgrad/data/array_file.hpp"
#include "xgrad/data/csv.hpp"
#include "xgrad/data/dataset.hpp"
#include "xgrad/data/feeds.hpp"
#include "xgrad/data/idx.hpp"
#include "xgrad/data/loader.hpp"
#include "xgrad/data/npy.hpp"
#include "xgrad/data/npz.hpp"
#include "xgrad/data/permutation.hpp"
