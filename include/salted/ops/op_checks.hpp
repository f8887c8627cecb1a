// Parameter and shape checks shared by the layer ops (conv2d,
// conv_transpose2d, dense), so that every op words its errors the same way:
// "<op>: <field>: expected <what>, found <value>".
#pragma once

#include <cinttypes>
#include <cstdint>

#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace ops {
namespace detail {

// Channel counts, kernel sizes, strides, dilations and paddings above this
// are corrupt files, not models; bounding them keeps size arithmetic in int64.
constexpr int64_t op_param_limit = int64_t(1) << 24;

inline Status check_param(const char* op, const char* field, int64_t value, int64_t lo) {
    if (value < lo || value > op_param_limit)
        return make_error(Errc::invalid_argument, "%s: %s: expected %" PRId64 "..%" PRId64 ", found %" PRId64, op,
                          field, lo, op_param_limit, value);
    return Status();
}

inline Status check_groups(const char* op, int64_t in_channels, int64_t out_channels, int64_t groups) {
    SALTED_TRY(check_param(op, "groups", groups, 1));
    if (in_channels % groups != 0)
        return make_error(Errc::invalid_argument, "%s: groups: expected a divisor of in_channels=%" PRId64
                          ", found %" PRId64, op, in_channels, groups);
    if (out_channels % groups != 0)
        return make_error(Errc::invalid_argument, "%s: groups: expected a divisor of out_channels=%" PRId64
                          ", found %" PRId64, op, out_channels, groups);
    return Status();
}

inline Status check_weight_bias(const char* op, ConstTensorView weight, const Shape& want_weight, ConstTensorView bias,
                                int64_t out_channels) {
    if (!want_weight.validate().ok())
        return make_error(Errc::invalid_argument, "%s: weight shape: expected at most 2^40 elements, found %s", op,
                          want_weight.str().c_str());
    if (!weight.data) return make_error(Errc::invalid_argument, "%s: weight: expected data, found null", op);
    if (weight.shape != want_weight)
        return make_error(Errc::shape_mismatch, "%s: weight shape: expected %s, found %s", op,
                          want_weight.str().c_str(), weight.shape.str().c_str());
    if (bias.data && bias.shape != Shape({out_channels}))
        return make_error(Errc::shape_mismatch, "%s: bias shape: expected [%" PRId64 "], found %s", op, out_channels,
                          bias.shape.str().c_str());
    return Status();
}

// An input of rank 4 with `channels` channels and valid dimensions.
inline Status check_nchw_input(const char* op, const Shape& in, int64_t channels) {
    if (in.rank() != 4)
        return make_error(Errc::shape_mismatch, "%s: input rank: expected 4 (NCHW), found %d (shape %s)", op,
                          in.rank(), in.str().c_str());
    SALTED_TRY(in.validate());
    if (in[1] != channels)
        return make_error(Errc::shape_mismatch, "%s: input channels: expected %" PRId64 ", found %" PRId64
                          " (shape %s)", op, channels, in[1], in.str().c_str());
    return Status();
}

// Common run() checks: non-null data, the expected output shape, no overlap
// between input and output (the kernels read the input after writing output).
inline Status check_run(const char* op, ConstTensorView in, TensorView out, const Shape& want_out) {
    if (!in.data) return make_error(Errc::invalid_argument, "%s: input: expected data, found null", op);
    if (!out.data) return make_error(Errc::invalid_argument, "%s: output: expected data, found null", op);
    if (out.shape != want_out)
        return make_error(Errc::shape_mismatch, "%s: output shape: expected %s, found %s", op,
                          want_out.str().c_str(), out.shape.str().c_str());
    const float* ob = out.data;
    const float* oe = out.data + want_out.numel();
    const float* ib = in.data;
    const float* ie = in.data + in.shape.numel();
    if (ob < ie && ib < oe)
        return make_error(Errc::invalid_argument, "%s: output: expected a buffer disjoint from the input, found overlap",
                          op);
    return Status();
}

}  // namespace detail
}  // namespace ops
}  // namespace salted
