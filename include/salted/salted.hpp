// Umbrella include: the engine (core, kernels, ops, salt). File formats
// (npy, model file, frames), images and datasets are separate headers under
// salted/io/ so an embedded head pulls in only what it uses.
#pragma once

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"
#include "salted/core/simd.hpp"
#include "salted/core/tensor.hpp"

#include "salted/ops/activation.hpp"
#include "salted/ops/add.hpp"
#include "salted/ops/batch_norm.hpp"
#include "salted/ops/concat.hpp"
#include "salted/ops/conv2d.hpp"
#include "salted/ops/conv_transpose2d.hpp"
#include "salted/ops/dense.hpp"
#include "salted/ops/flatten.hpp"
#include "salted/ops/pad.hpp"
#include "salted/ops/pool.hpp"
#include "salted/ops/salt_layers.hpp"
#include "salted/ops/softmax.hpp"

#include "salted/salt/desalt.hpp"
#include "salted/salt/draw.hpp"
#include "salted/salt/fc_salt_vector.hpp"
