// Concatenation of tensors along one axis (torch.cat). The main case is the
// channel axis of NCHW, where a CNN salt's maps join the activations; any
// axis works. Inputs must agree on every other dimension.
//
// Memory view: with `outer` = product of the dimensions before the axis, the
// output is `outer` blocks, each the inputs' contiguous slabs back to back,
// so the op is a sequence of memcpy calls.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace ops {

namespace detail {
// Resolves a PyTorch-style axis (negative counts from the end).
inline Result<int> resolve_axis(const char* op, int axis, int rank) {
    if (axis < -rank || axis >= rank)
        return make_error(Errc::invalid_argument, "%s: axis: expected %d..%d for rank %d, found %d", op, -rank,
                          rank - 1, rank, axis);
    return axis < 0 ? axis + rank : axis;
}
}  // namespace detail

// Output shape of concatenating `count` shapes along `axis`.
inline Result<Shape> concat_output_shape(const Shape* shapes, std::size_t count, int axis = 1) {
    if (count == 0) return make_error(Errc::invalid_argument, "concat: inputs: expected at least 1, found 0");
    const Shape& first = shapes[0];
    SALTED_ASSIGN(const int ax, detail::resolve_axis("concat", axis, first.rank()));
    Shape out = first;
    for (std::size_t k = 0; k < count; ++k) {
        const Shape& s = shapes[k];
        SALTED_TRY(s.validate());
        if (s.rank() != first.rank())
            return make_error(Errc::shape_mismatch, "concat: input %zu rank: expected %d, found %d (shape %s)", k,
                              first.rank(), s.rank(), s.str().c_str());
        for (int d = 0; d < s.rank(); ++d) {
            if (d != ax && s[d] != first[d])
                return make_error(Errc::shape_mismatch,
                                  "concat: input %zu dimension %d: expected %lld (as input 0; only axis %d may "
                                  "differ), found %lld",
                                  k, d, static_cast<long long>(first[d]), ax, static_cast<long long>(s[d]));
        }
        if (k > 0) out[ax] += s[ax];
    }
    SALTED_TRY(out.validate());
    return out;
}

inline Result<Shape> concat_output_shape(const std::vector<Shape>& shapes, int axis = 1) {
    return concat_output_shape(shapes.data(), shapes.size(), axis);
}

namespace detail {
inline Status check_concat(const ConstTensorView* inputs, std::size_t count, int axis, const TensorView& out,
                           int& ax) {
    std::vector<Shape> shapes(count);
    for (std::size_t k = 0; k < count; ++k) {
        if (inputs[k].data == nullptr)
            return make_error(Errc::invalid_argument, "concat: input %zu: expected a tensor, found none", k);
        shapes[k] = inputs[k].shape;
    }
    SALTED_ASSIGN(const Shape want, concat_output_shape(shapes.data(), count, axis));
    if (out.shape != want)
        return make_error(Errc::shape_mismatch, "concat: output shape: expected %s, found %s", want.str().c_str(),
                          out.shape.str().c_str());
    ax = axis < 0 ? axis + want.rank() : axis;
    return Status();
}
}  // namespace detail

// out = torch.cat(inputs, axis). The output must not overlap any input.
inline Status concat(const ConstTensorView* inputs, std::size_t count, TensorView out, int axis = 1) {
    int ax = 0;
    SALTED_TRY(detail::check_concat(inputs, count, axis, out, ax));
    int64_t outer = 1;
    for (int d = 0; d < ax; ++d) outer *= out.shape[d];
    const int64_t out_block = out.numel() / outer;
    // Parallel over the outer blocks only when there is enough to copy.
    parallel_for(outer, out.numel() / 4, [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o) {
            float* dst = out.data + o * out_block;
            for (std::size_t k = 0; k < count; ++k) {
                const int64_t block = inputs[k].numel() / outer;
                std::memcpy(dst, inputs[k].data + o * block, static_cast<std::size_t>(block) * sizeof(float));
                dst += block;
            }
        }
    });
    return Status();
}

inline Status concat(const std::vector<ConstTensorView>& inputs, TensorView out, int axis = 1) {
    return concat(inputs.data(), inputs.size(), out, axis);
}

namespace ref {
// Scalar twin of ops::concat: computes every output element's source by
// index arithmetic, with no block copies.
inline Status concat(const std::vector<ConstTensorView>& inputs, TensorView out, int axis = 1) {
    int ax = 0;
    SALTED_TRY(detail::check_concat(inputs.data(), inputs.size(), axis, out, ax));
    int64_t inner = 1;
    for (int d = ax + 1; d < out.shape.rank(); ++d) inner *= out.shape[d];
    const int64_t along = out.shape[ax];
    for (int64_t i = 0; i < out.numel(); ++i) {
        const int64_t o = i / (along * inner), a = (i / inner) % along, r = i % inner;
        int64_t start = 0;
        for (const ConstTensorView& in : inputs) {
            const int64_t len = in.shape[ax];
            if (a < start + len) {
                out[i] = in[(o * len + (a - start)) * inner + r];
                break;
            }
            start += len;
        }
    }
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
