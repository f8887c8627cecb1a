// torch.flatten(x, start_dim) with end_dim = -1: [N, C, H, W] -> [N, C*H*W]
// for the default start_dim 1, the step between a CNN's features and its
// dense layers. NCHW is row-major, so flattening never moves an element: the
// free view is the normal path, the copy is for callers that need a new buffer.
#pragma once

#include <cstdint>
#include <cstring>

#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace ops {

inline Result<Shape> flatten_output_shape(const Shape& in, int start_dim = 1) {
    SALTED_TRY(in.validate());
    if (start_dim < 0 || start_dim >= in.rank())
        return make_error(Errc::invalid_argument, "flatten: start_dim: expected 0..%d for input %s, found %d",
                          in.rank() - 1, in.str().c_str(), start_dim);
    int64_t dims[Shape::max_rank];
    int64_t tail = 1;
    for (int d = 0; d < in.rank(); ++d) {
        if (d < start_dim) dims[d] = in[d];
        else tail *= in[d];
    }
    dims[start_dim] = tail;
    return Shape::from(dims, start_dim + 1);
}

// The same elements under the flattened shape; no copy.
inline Result<ConstTensorView> flatten_view(ConstTensorView in, int start_dim = 1) {
    SALTED_ASSIGN(const Shape s, flatten_output_shape(in.shape, start_dim));
    return ConstTensorView(in.data, s);
}
inline Result<TensorView> flatten_view(TensorView in, int start_dim = 1) {
    SALTED_ASSIGN(const Shape s, flatten_output_shape(in.shape, start_dim));
    return TensorView(in.data, s);
}

// Copies `in` into `out` (shape = flatten_output_shape). In place is a no-op.
inline Status flatten(ConstTensorView in, TensorView out, int start_dim = 1) {
    SALTED_ASSIGN(const Shape want, flatten_output_shape(in.shape, start_dim));
    if (out.shape != want)
        return make_error(Errc::shape_mismatch, "flatten: output shape: expected %s, found %s", want.str().c_str(),
                          out.shape.str().c_str());
    if (out.data != in.data) std::memmove(out.data, in.data, static_cast<std::size_t>(in.numel()) * sizeof(float));
    return Status();
}

namespace ref {
// Scalar twin of ops::flatten: an element loop.
inline Status flatten(ConstTensorView in, TensorView out, int start_dim = 1) {
    SALTED_ASSIGN(const Shape want, flatten_output_shape(in.shape, start_dim));
    if (out.shape != want) return make_error(Errc::shape_mismatch, "flatten: output shape differs");
    for (int64_t i = 0; i < in.numel(); ++i) out[i] = in[i];
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
