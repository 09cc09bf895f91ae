// Pictures for the tutorials: the library's plots and graph drawings (xgrad/plot.hpp),
// under the short name the tutorials use.
#pragma once

#include <xgrad/plot.hpp>

namespace figures = xgrad::plot;
