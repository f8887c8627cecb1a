// Constant padding of the last two (H, W) dimensions, four-sided:
// F.pad(x, (left, right, top, bottom), value=0). Negative amounts crop, as
// PyTorch allows. The WideResNet stride-2 block pads (left 0, right 1, top 0,
// bottom 1) before a padding-0 conv, which a symmetric conv padding cannot say.
#pragma once

#include <algorithm>
#include <cstdint>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace ops {

struct Pad2dParams {
    int64_t top = 0, left = 0, bottom = 0, right = 0;  // negative = crop
    float value = 0.0f;
};

// [..., H, W] -> [..., H + top + bottom, W + left + right], rank >= 3.
inline Result<Shape> pad2d_output_shape(const Pad2dParams& p, const Shape& in) {
    if (in.rank() < 3)
        return make_error(Errc::shape_mismatch, "pad2d: input rank: expected >= 3 ([N, C, H, W]), found %d (shape %s)",
                          in.rank(), in.str().c_str());
    SALTED_TRY(in.validate());
    const int64_t lim = int64_t(1) << 40;
    const int64_t amounts[4] = {p.top, p.left, p.bottom, p.right};
    const char* names[4] = {"top", "left", "bottom", "right"};
    for (int k = 0; k < 4; ++k)
        if (amounts[k] < -lim || amounts[k] > lim)
            return make_error(Errc::invalid_argument, "pad2d: %s: expected |%s| <= 2^40, found %lld", names[k], names[k],
                              static_cast<long long>(amounts[k]));
    const int r = in.rank();
    Shape out = in;
    out[r - 2] = in[r - 2] + p.top + p.bottom;
    out[r - 1] = in[r - 1] + p.left + p.right;
    if (out[r - 2] < 1)
        return make_error(Errc::invalid_argument,
                          "pad2d: top + bottom: expected >= %lld (the output height must stay >= 1), found %lld",
                          static_cast<long long>(1 - in[r - 2]), static_cast<long long>(p.top + p.bottom));
    if (out[r - 1] < 1)
        return make_error(Errc::invalid_argument,
                          "pad2d: left + right: expected >= %lld (the output width must stay >= 1), found %lld",
                          static_cast<long long>(1 - in[r - 1]), static_cast<long long>(p.left + p.right));
    SALTED_TRY(out.validate());
    return out;
}

// Fills the output from the input, one (H, W) plane at a time. Output row y
// reads input row y - top; output column x reads input column x - left.
// `out` must not overlap `in`.
inline Status pad2d(const Pad2dParams& p, ConstTensorView in, TensorView out) {
    SALTED_ASSIGN(const Shape want, pad2d_output_shape(p, in.shape));
    if (out.shape != want)
        return make_error(Errc::shape_mismatch, "pad2d: output shape: expected %s, found %s", want.str().c_str(),
                          out.shape.str().c_str());
    const int r = in.shape.rank();
    const int64_t h = in.shape[r - 2], w = in.shape[r - 1], oh = want[r - 2], ow = want[r - 1];
    const int64_t planes = in.numel() / (h * w);
    // Columns of an output row that come from the input: [x0, x1).
    const int64_t x0 = std::max<int64_t>(0, p.left), x1 = std::min(ow, w + p.left);
    parallel_for(planes, out.numel(), [&](int64_t p0, int64_t p1) {
        for (int64_t pl = p0; pl < p1; ++pl) {
            const float* src = in.data + pl * h * w;
            float* dst = out.data + pl * oh * ow;
            for (int64_t y = 0; y < oh; ++y) {
                float* row = dst + y * ow;
                const int64_t sy = y - p.top;
                if (sy < 0 || sy >= h || x0 >= x1) {
                    std::fill(row, row + ow, p.value);
                    continue;
                }
                std::fill(row, row + x0, p.value);
                std::copy(src + sy * w + (x0 - p.left), src + sy * w + (x1 - p.left), row + x0);
                std::fill(row + x1, row + ow, p.value);
            }
        }
    });
    return Status();
}

namespace ref {
// Scalar twin of ops::pad2d: one bounds test per output element.
inline Status pad2d(const Pad2dParams& p, ConstTensorView in, TensorView out) {
    SALTED_ASSIGN(const Shape want, pad2d_output_shape(p, in.shape));
    if (out.shape != want) return make_error(Errc::shape_mismatch, "pad2d: output shape differs");
    const int r = in.shape.rank();
    const int64_t h = in.shape[r - 2], w = in.shape[r - 1], oh = want[r - 2], ow = want[r - 1];
    for (int64_t i = 0; i < out.numel(); ++i) {
        const int64_t plane = i / (oh * ow), y = (i / ow) % oh - p.top, x = i % ow - p.left;
        out[i] = (y >= 0 && y < h && x >= 0 && x < w) ? in[(plane * h + y) * w + x] : p.value;
    }
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
