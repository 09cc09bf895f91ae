/// @file nn.hpp
/// @brief Everything of xgrad::nn: modules, layers, initialisers and model files.
#pragma once

#include "xgrad/nn/conv.hpp"
#include "xgrad/nn/init.hpp"
#include "xgrad/nn/layers.hpp"
#include "xgrad/nn/module.hpp"
#include "xgrad/nn/norm.hpp"
#include "xgrad/nn/serialize.hpp"
