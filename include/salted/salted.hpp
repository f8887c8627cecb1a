// Umbrella include: the whole engine (core, kernels, ops). File loaders,
// images and datasets are separate headers under salted/io/.
#pragma once

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"
#include "salted/core/simd.hpp"
#include "salted/core/tensor.hpp"
#include "salted/ops/activation.hpp"
