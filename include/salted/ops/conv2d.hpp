// 2-D convolution, NCHW float32, with PyTorch's semantics (nn.Conv2d) plus
// four-sided zero padding, and bias + activation fused into the epilogue.
//
// Six algorithms, chosen per layer and input shape (never per thread count,
// so results do not depend on it):
//  - im2col + GEMM, for everything. Per image and group it is one GEMM:
//    out[Cout_g x Ho*Wo] = W[Cout_g x K] * patches[K x Ho*Wo], K = Cin_g *
//    kh * kw. The weights are the A operand, packed once at create(); the
//    patches are the B operand, packed panel by panel by kernels::Im2colB
//    (never the whole matrix). This orientation writes NCHW output directly
//    and keeps batch 1 parallel over output pixels. A 1x1, stride-1,
//    unpadded conv is a plain GEMM on the input [Cin x H*W] (its panels are
//    row copies, no im2col).
//  - Winograd F(4x4, 3x3) (kernels/winograd.hpp), for 3x3 stride-1
//    dilation-1 ungrouped layers where kernels::winograd_worth_it() says it
//    beats the GEMM: 4x fewer multiplies.
//    On maps where F(4x4) has at most 4 tiles (8x8 at batch 1), F(2x2, 3x3)
//    (kernels/winograd_2x2.hpp) instead, if create() was told to expect
//    such maps: its weights are less than half the size to read.
//  - Winograd F(2x2, 5x5) (kernels/winograd_5x5.hpp), for 5x5 stride-1
//    dilation-1 ungrouped layers with Cin >= 16 and Cout >= 32 (LeNet's):
//    2.8x fewer multiplies.
//  - Row Winograd, polyphase F(6, 3) (kernels/winograd_row.hpp), for
//    ungrouped undilated kh x kw layers with kh <= 3 and kw = 3 at row
//    stride 1 or kw = 4..6 at row stride 2 (the sensor ConvNet's (1,5) and
//    (3,5) layers), when the output has >= 8 tiles of 1 x 6: kw / 2.67 fewer
//    multiplies.
//  - Shallow convolution (kernels/shallow_conv.hpp) for ungrouped layers
//    with K = Cin x kh x kw <= 128 and unit stride/dilation along the row
//    (first layers on 1-3 channel images; not 1x1): lanes along the output
//    row, no packing (rows that are not whole vectors: along a copy of the
//    image compacted so that consecutive pixels read consecutive floats).
//  - Direct convolution (kernels/direct_conv.hpp) for the other ungrouped
//    layers with a real kernel (not 1x1), K >= 24 and Cout >= 32 (LeNet,
//    the sensor net, WideResNet's strided convs): the GEMM's register tile
//    with the patches read from the input, no packing. Measured 1.1-2.5x
//    faster than im2col + GEMM there; slower on 1x1, K < 24 or Cout < 32
//    (half-empty tiles), which stay on im2col. A padded layer copies each
//    image into a zero-bordered buffer first.
//
// Threads: at batch 1 each GEMM is parallel over its own panels. At batch > 1
// (when the images share out evenly over the threads, or there are many) the
// images are shared out instead, each worker running its images' GEMMs
// serially in its own workspace slot, so small per-image layers are parallel
// too and nobody pays a fork/join per image. The Winograd path numbers its
// tiles over the whole batch and threads over blocks of them. flops() is
// the direct convolution's count on both paths.
#pragma once

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <utility>

#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"
#include "salted/kernels/direct_conv.hpp"
#include "salted/kernels/shallow_conv.hpp"
#include "salted/kernels/gemm.hpp"
#include "salted/kernels/im2col.hpp"
#include "salted/kernels/winograd.hpp"
#include "salted/kernels/winograd_2x2.hpp"
#include "salted/kernels/winograd_5x5.hpp"
#include "salted/kernels/winograd_row.hpp"
#include "salted/ops/activation.hpp"
#include "salted/ops/op_checks.hpp"

namespace salted {
namespace ops {

struct Conv2dParams {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    int64_t kernel_h = 1, kernel_w = 1;
    int64_t stride_h = 1, stride_w = 1;
    // Zero padding per side. PyTorch's padding=(ph, pw) is top = bottom = ph,
    // left = right = pw; F.pad(x, (l, r, t, b)) followed by a padding-0 conv is
    // pad_left = l, pad_right = r, pad_top = t, pad_bottom = b.
    int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    int64_t dilation_h = 1, dilation_w = 1;
    int64_t groups = 1;
    Activation activation;  // applied after the bias
};

namespace detail {

inline Status validate_conv2d(const Conv2dParams& p) {
    const char* op = "conv2d";
    SALTED_TRY(check_param(op, "in_channels", p.in_channels, 1));
    SALTED_TRY(check_param(op, "out_channels", p.out_channels, 1));
    SALTED_TRY(check_param(op, "kernel_h", p.kernel_h, 1));
    SALTED_TRY(check_param(op, "kernel_w", p.kernel_w, 1));
    SALTED_TRY(check_param(op, "stride_h", p.stride_h, 1));
    SALTED_TRY(check_param(op, "stride_w", p.stride_w, 1));
    SALTED_TRY(check_param(op, "dilation_h", p.dilation_h, 1));
    SALTED_TRY(check_param(op, "dilation_w", p.dilation_w, 1));
    SALTED_TRY(check_param(op, "pad_top", p.pad_top, 0));
    SALTED_TRY(check_param(op, "pad_left", p.pad_left, 0));
    SALTED_TRY(check_param(op, "pad_bottom", p.pad_bottom, 0));
    SALTED_TRY(check_param(op, "pad_right", p.pad_right, 0));
    SALTED_TRY(check_groups(op, p.in_channels, p.out_channels, p.groups));
    return p.activation.validate(op);
}

// One output side: floor((in + pads - dil * (k - 1) - 1) / stride) + 1, >= 1.
inline Result<int64_t> conv_out_size(const char* op, const char* field, int64_t in, int64_t pads, int64_t kernel,
                                     int64_t stride, int64_t dilation) {
    const int64_t span = in + pads - dilation * (kernel - 1) - 1;
    if (span < 0)
        return make_error(Errc::shape_mismatch, "%s: %s: expected >= 1, found %" PRId64
                          " (input %" PRId64 " + padding %" PRId64 " is smaller than the dilated kernel %" PRId64 ")",
                          op, field, (span - stride + 1) / stride + 1, in, pads, dilation * (kernel - 1) + 1);
    return span / stride + 1;
}

inline Result<Shape> conv2d_output_shape(const Conv2dParams& p, const Shape& in) {
    SALTED_TRY(check_nchw_input("conv2d", in, p.in_channels));
    SALTED_ASSIGN(int64_t ho, conv_out_size("conv2d", "output height", in[2], p.pad_top + p.pad_bottom, p.kernel_h,
                                            p.stride_h, p.dilation_h));
    SALTED_ASSIGN(int64_t wo, conv_out_size("conv2d", "output width", in[3], p.pad_left + p.pad_right, p.kernel_w,
                                            p.stride_w, p.dilation_w));
    Shape os({in[0], p.out_channels, ho, wo});
    SALTED_TRY(os.validate());
    return os;
}

}  // namespace detail

class Conv2d {
public:
    // `expected_input`, when given ([N, Cin, H, W]; N is ignored), is the
    // input size the layer will run on: create() then also prepares the
    // kernels that only pay at that size (F(2x2, 3x3) weights for maps of up
    // to 8x8, kernels/winograd_2x2.hpp). Without it those are skipped, which
    // costs speed on such maps but never correctness; any size still runs.
    static Result<Conv2d> create(const Conv2dParams& p, ConstTensorView weight, ConstTensorView bias,
                                 const Shape& expected_input = Shape()) {
        SALTED_TRY(detail::validate_conv2d(p));
        const int64_t cin_g = p.in_channels / p.groups, cout_g = p.out_channels / p.groups;
        SALTED_TRY(detail::check_weight_bias("conv2d", weight, Shape({p.out_channels, cin_g, p.kernel_h, p.kernel_w}),
                                             bias, p.out_channels));
        Conv2d c;
        c.p_ = p;
        c.k_ = cin_g * p.kernel_h * p.kernel_w;
        c.group_stride_ = kernels::gemm_packed_a_floats(cout_g, c.k_);
        if (bias.data) {
            SALTED_ASSIGN(c.bias_, Tensor::copy_of(bias));
        }
        if (winograd_shape(p, 3) && kernels::winograd_channels_worth_it(p.in_channels, p.out_channels)) {
            // Winograd is only faster, never needed: if its (4x larger)
            // weights cannot be allocated, the layer runs on im2col.
            auto wino = kernels::WinogradConv3x3::create(p.in_channels, p.out_channels, weight.data, bias.data);
            if (wino.ok()) {
                c.winograd_ = std::move(wino).value();
                c.has_winograd_ = true;
                if (c.small_map_expected(expected_input)) {  // as above: only faster, never needed
                    auto w2 = kernels::WinogradConv2x2::create(p.in_channels, p.out_channels, weight.data, bias.data);
                    if (w2.ok()) {
                        c.winograd2_ = std::move(w2).value();
                        c.has_winograd2_ = true;
                    }
                }
                // The im2col weights are kept only when some input size would use them.
                if (kernels::winograd_worth_it_for_any_size(p.in_channels, p.out_channels)) return c;
            }
        }
        if (winograd_shape(p, 5) && kernels::winograd_5x5_worth_it(p.in_channels, p.out_channels)) {
            // As above: only faster, never needed.
            auto wino = kernels::WinogradConv5x5::create(p.in_channels, p.out_channels, weight.data, bias.data);
            if (wino.ok()) {
                c.winograd5_ = std::move(wino).value();
                c.has_winograd5_ = true;
                return c;  // taken at every size: no other copy of the weights
            }
        }
        if (!c.has_winograd_ &&
            kernels::RowTiles::supports(p.kernel_h, p.kernel_w, p.stride_w, p.dilation_h, p.dilation_w, p.groups) &&
            kernels::winograd_row_channels_worth_it(p.in_channels, p.out_channels)) {
            // As above: only faster, never needed.
            auto wino = kernels::WinogradConvRow::create(p.in_channels, p.out_channels, p.kernel_h, p.kernel_w, p.stride_w,
                                                         weight.data, bias.data);
            if (wino.ok()) {
                c.row_winograd_ = std::move(wino).value();
                c.has_row_winograd_ = true;
            }
        }
        if (kernels::shallow_conv_shape(c.k_, p.stride_w, p.dilation_w, p.groups) && !one_by_one(p)) {
            SALTED_ASSIGN(c.direct_packed_, Tensor::copy_of(weight));  // [Cout, K] as it is
            c.has_direct_ = c.shallow_ = true;
            return c;
        }
        if (direct_shape(p, c.k_)) {
            SALTED_ASSIGN(c.direct_packed_,
                          Tensor::empty(Shape({kernels::direct_conv_packed_floats(p.out_channels, c.k_)})));
            kernels::direct_conv_pack_weights(p.out_channels, c.k_, weight.data, c.direct_packed_.data());
            c.has_direct_ = true;
            return c;
        }
        SALTED_ASSIGN(c.packed_, Tensor::empty(Shape({p.groups, c.group_stride_})));
        for (int64_t g = 0; g < p.groups; ++g)
            kernels::gemm_pack_a(cout_g, c.k_, weight.data + g * cout_g * c.k_, c.k_, 1,
                                 c.packed_.data() + g * c.group_stride_);
        return c;
    }

    const Conv2dParams& params() const { return p_; }

    Result<Shape> output_shape(const Shape& input) const { return detail::conv2d_output_shape(p_, input); }

    // Whether run() takes the Winograd path for this input shape.
    bool uses_winograd(const Shape& input) const {
        auto os = output_shape(input);
        return os.ok() && use_winograd(*os);
    }

    // Whether run() takes the F(2x2, 3x3) path (kernels/winograd_2x2.hpp);
    // uses_winograd() then holds too.
    bool uses_winograd_2x2(const Shape& input) const {
        auto os = output_shape(input);
        return os.ok() && use_winograd2(input, *os);
    }

    // Whether run() takes the F(2x2, 5x5) path (kernels/winograd_5x5.hpp).
    bool uses_winograd_5x5(const Shape& input) const {
        auto os = output_shape(input);
        return os.ok() && use_winograd5();
    }

    // Whether run() takes the row-Winograd path (kernels/winograd_row.hpp).
    bool uses_row_winograd(const Shape& input) const {
        auto os = output_shape(input);
        return os.ok() && use_row_winograd(*os);
    }

    // Whether run() takes the direct-convolution path for this input shape.
    bool uses_direct(const Shape& input) const {
        auto os = output_shape(input);
        return os.ok() && !use_any_winograd(*os) && use_direct(input) && !shallow_;
    }

    // Whether run() takes the shallow-convolution path (kernels/shallow_conv.hpp).
    bool uses_shallow(const Shape& input) const {
        auto os = output_shape(input);
        return os.ok() && !use_any_winograd(*os) && use_direct(input) && shallow_;
    }

    // Scratch for run(), sized for at most kernels::gemm_max_slots workers
    // whatever the thread count, so a plan made once stays valid: im2col
    // needs one K x NR patch panel per worker (GEMM workers at batch 1,
    // image workers at batch > 1); Winograd a slot per tile-block worker.
    std::size_t workspace_floats(const Shape& input) const {
        auto os = output_shape(input);
        if (!os.ok()) return 0;
        if (use_winograd2(input, *os))
            return static_cast<std::size_t>(winograd2_.workspace_floats(winograd_geometry(input, *os)));
        if (use_winograd(*os))
            return static_cast<std::size_t>(winograd_.workspace_floats(winograd_geometry(input, *os)));
        if (use_winograd5())
            return static_cast<std::size_t>(winograd5_.workspace_floats(winograd_geometry(input, *os)));
        if (use_row_winograd(*os))
            return static_cast<std::size_t>(row_winograd_.workspace_floats(winograd_geometry(input, *os)));
        if (use_direct(input)) {
            const kernels::DirectConvGeometry g = direct_geometry(input, *os);
            const int64_t slots = copies_image() ? std::min(input[0], kernels::gemm_max_slots) : 0;
            return static_cast<std::size_t>(direct_table_floats() + slots * direct_slot_floats(g));
        }
        const int64_t pixels = (*os)[2] * (*os)[3];
        const int64_t by_image = std::min(input[0], kernels::gemm_max_slots) * kernels::gemm_nr * k_;
        return static_cast<std::size_t>(std::max(kernels::gemm_b_workspace_floats(k_, pixels), by_image));
    }

    int64_t flops(const Shape& input) const {
        auto os = output_shape(input);
        if (!os.ok()) return 0;
        return 2 * os->numel() * k_;
    }

    // Bytes of weights held in prepared forms (every algorithm's).
    int64_t kernel_bytes() const {
        const int64_t floats = packed_.numel() + bias_.numel() + direct_packed_.numel();
        return floats * static_cast<int64_t>(sizeof(float)) + (has_winograd_ ? winograd_.kernel_bytes() : 0) +
               (has_winograd2_ ? winograd2_.kernel_bytes() : 0) +
               (has_winograd5_ ? winograd5_.kernel_bytes() : 0) +
               (has_row_winograd_ ? row_winograd_.kernel_bytes() : 0);
    }

    // Computes out = act(conv(in) + bias). `workspace` must hold
    // workspace_floats(in.shape) floats; run() allocates nothing.
    Status run(ConstTensorView in, TensorView out, float* workspace) const {
        SALTED_ASSIGN(Shape os, output_shape(in.shape));
        SALTED_TRY(detail::check_run("conv2d", in, out, os));
        if (!workspace)
            return make_error(Errc::invalid_argument, "conv2d: workspace: expected %zu floats, found null",
                              workspace_floats(in.shape));
        if (use_winograd2(in.shape, os)) {
            winograd2_.run(winograd_geometry(in.shape, os), in.data, out.data, p_.activation, workspace);
            return Status();
        }
        if (use_winograd(os)) {
            winograd_.run(winograd_geometry(in.shape, os), in.data, out.data, p_.activation, workspace);
            return Status();
        }
        if (use_winograd5()) {
            winograd5_.run(winograd_geometry(in.shape, os), in.data, out.data, p_.activation, workspace);
            return Status();
        }
        if (use_row_winograd(os)) {
            row_winograd_.run(winograd_geometry(in.shape, os), in.data, out.data, p_.activation, workspace);
            return Status();
        }
        const int64_t batch = in.shape[0];
        const int64_t total = flops(in.shape);
        const int64_t threads = threads_for_work(total);
        if (use_direct(in.shape)) {
            run_direct(in, out, os, threads, workspace);
            return Status();
        }
        // Otherwise (images_to_threads false) each GEMM splits its own panels.
        if (images_to_threads(batch, threads)) {
            // Up to gemm_max_slots workers, more than threads, so that the
            // pool can hand a stalled thread's images to one that runs.
            const int64_t workers = std::min(batch, kernels::gemm_max_slots);
            const int64_t slot = kernels::gemm_nr * k_;
            parallel_for(workers, total, [&](int64_t b, int64_t e) {
                for (int64_t n = b * batch / workers; n < e * batch / workers; ++n)
                    run_image(in, out, os, n, workspace + b * slot, true);
            });
        } else {
            for (int64_t n = 0; n < batch; ++n) run_image(in, out, os, n, workspace, false);
        }
        return Status();
    }

private:
    // A k x k, stride-1, undilated, ungrouped layer: the square Winograd tilings' shape.
    static bool winograd_shape(const Conv2dParams& p, int64_t k) {
        return p.kernel_h == k && p.kernel_w == k && p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 &&
               p.dilation_w == 1 && p.groups == 1;
    }

    // Direct convolution: ungrouped, a real kernel, enough depth and output
    // channels to fill the register tile (measured; see the header comment).
    static bool one_by_one(const Conv2dParams& p) { return p.kernel_h == 1 && p.kernel_w == 1; }
    static bool direct_shape(const Conv2dParams& p, int64_t k) {
        return p.groups == 1 && !one_by_one(p) && k >= 24 && p.out_channels >= 32;
    }
    // Whole images go to threads when they share out evenly (or nearly: many
    // images); otherwise (batch 1, 3 images on 2 threads) each image's work
    // is split instead.
    static bool images_to_threads(int64_t batch, int64_t threads) {
        return batch > 1 && threads > 1 && (batch % threads == 0 || batch >= 4 * threads);
    }
    bool padded() const { return p_.pad_top || p_.pad_left || p_.pad_bottom || p_.pad_right; }
    // The direct paths read a zero-bordered copy of each image when padded;
    // the shallow one always (it reads past the last row: slack).
    bool copies_image() const { return padded() || shallow_; }
    // The offset table is int32: the padded image must stay below 2^31 floats.
    bool use_direct(const Shape& in) const {
        return has_direct_ && p_.in_channels * (in[2] + p_.pad_top + p_.pad_bottom) *
                                      (in[3] + p_.pad_left + p_.pad_right) < (int64_t(1) << 31);
    }
    int64_t direct_table_floats() const { return (k_ + 15) / 16 * 16; }  // int32 offsets, one float each
    int64_t direct_slot_floats(const kernels::DirectConvGeometry& g) const {
        const int64_t padded = g.channels * g.in_h * g.in_w + kernels::shallow_conv_slack;
        const int64_t floats = compacts(g) ? kernels::shallow_compact_floats(g) : padded;
        return (floats + 15) / 16 * 16;
    }
    // Whether the shallow path runs on a compacted copy of each image (kernels/shallow_conv.hpp).
    bool compacts(const kernels::DirectConvGeometry& g) const { return shallow_ && kernels::shallow_conv_compacts(g); }
    kernels::DirectConvGeometry direct_geometry(const Shape& in, const Shape& os) const {
        kernels::DirectConvGeometry g;
        g.channels = p_.in_channels;
        g.in_h = in[2] + p_.pad_top + p_.pad_bottom;
        g.in_w = in[3] + p_.pad_left + p_.pad_right;
        g.kernel_h = p_.kernel_h;
        g.kernel_w = p_.kernel_w;
        g.stride_h = p_.stride_h;
        g.stride_w = p_.stride_w;
        g.dilation_h = p_.dilation_h;
        g.dilation_w = p_.dilation_w;
        g.out_h = os[2];
        g.out_w = os[3];
        g.out_channels = p_.out_channels;
        return g;
    }

    // Workspace: the offset table, then (padded layers, and every shallow one) one zero-bordered
    // image per worker. Images go to threads at batch > 1, as on im2col; a
    // direct_conv inside a worker then runs serially (the pool is busy).
    void run_direct(ConstTensorView in, TensorView out, const Shape& os, int64_t threads, float* workspace) const {
        const kernels::DirectConvGeometry g = direct_geometry(in.shape, os);
        int32_t* koff = reinterpret_cast<int32_t*>(workspace);
        kernels::direct_conv_offsets(g, koff);
        float* slots = workspace + direct_table_floats();
        const int64_t batch = in.shape[0], h = in.shape[2], w = in.shape[3];
        const int64_t in_image = p_.in_channels * h * w, out_image = p_.out_channels * os[2] * os[3];
        auto image = [&](int64_t n, float* slot) {
            const float* x = in.data + n * in_image;
            if (compacts(g)) {
                kernels::shallow_compact_image(g, x, h, w, p_.pad_top, p_.pad_left, slot);
                kernels::shallow_conv_compacted(g, slot, direct_packed_.data(), bias_.data(), p_.activation,
                                                out.data + n * out_image);
                return;
            }
            if (copies_image()) {
                std::fill(slot, slot + direct_slot_floats(g), 0.0f);
                for (int64_t c = 0; c < g.channels; ++c)
                    for (int64_t y = 0; y < h; ++y)
                        std::copy(x + (c * h + y) * w, x + (c * h + y + 1) * w,
                                  slot + (c * g.in_h + y + p_.pad_top) * g.in_w + p_.pad_left);
                x = slot;
            }
            if (shallow_)
                kernels::shallow_conv(g, x, direct_packed_.data(), koff, bias_.data(), p_.activation,
                                      out.data + n * out_image);
            else
                kernels::direct_conv(g, x, direct_packed_.data(), koff, bias_.data(), p_.activation,
                                     out.data + n * out_image);
        };
        if (images_to_threads(batch, threads)) {
            const int64_t workers = std::min(batch, kernels::gemm_max_slots);
            parallel_for(workers, flops(in.shape), [&](int64_t b, int64_t e) {
                for (int64_t n = b * batch / workers; n < e * batch / workers; ++n)
                    image(n, slots + b * direct_slot_floats(g));
            });
        } else {
            for (int64_t n = 0; n < batch; ++n) image(n, slots);
        }
    }

    bool use_winograd(const Shape& out_shape) const {
        return has_winograd_ &&
               kernels::winograd_worth_it(p_.in_channels, p_.out_channels, out_shape[2], out_shape[3]);
    }

    // Prepared only where it wins at every size (kernels::winograd_5x5_worth_it).
    bool use_winograd5() const { return has_winograd5_; }
    bool use_any_winograd(const Shape& out_shape) const {
        return use_winograd(out_shape) || use_winograd5() || use_row_winograd(out_shape);
    }
    bool use_winograd2(const Shape& in, const Shape& out_shape) const {
        return has_winograd2_ && f23_wins(in, out_shape);
    }
    bool f23_wins(const Shape& in, const Shape& out_shape) const {
        return use_winograd(out_shape) &&
               kernels::winograd_2x2_beats_4x4(kernels::Tiles3x3::tile_count(winograd_geometry(in, out_shape)));
    }
    // Whether F(2x2) would run on a batch of one of this input (create()
    // asks before it has the F(2x2) weights).
    bool small_map_expected(const Shape& in) const {
        if (in.rank() != 4 || in[1] != p_.in_channels) return false;
        const Shape one({1, in[1], in[2], in[3]});
        auto os = output_shape(one);
        return os.ok() && f23_wins(one, *os);
    }

    bool use_row_winograd(const Shape& out_shape) const {
        return has_row_winograd_ && kernels::winograd_row_worth_it(p_.in_channels, p_.out_channels, out_shape[2],
                                                                   out_shape[3]);
    }
    kernels::WinogradGeometry winograd_geometry(const Shape& in, const Shape& os) const {
        kernels::WinogradGeometry g;
        g.batch = in[0];
        g.in_h = in[2];
        g.in_w = in[3];
        g.pad_top = p_.pad_top;
        g.pad_left = p_.pad_left;
        g.stride_h = p_.stride_h;
        g.out_h = os[2];
        g.out_w = os[3];
        return g;
    }

    // Image n through im2col + GEMM, group by group. `serial`: the caller
    // already runs one image per thread, and `work` is this worker's K x NR
    // slot; otherwise each GEMM threads itself over all of `work`.
    void run_image(ConstTensorView in, TensorView out, const Shape& os, int64_t n, float* work, bool serial) const {
        const int64_t h = in.shape[2], w = in.shape[3];
        const int64_t ho = os[2], wo = os[3], pixels = ho * wo;
        const int64_t cin_g = p_.in_channels / p_.groups, cout_g = p_.out_channels / p_.groups;
        const bool plain_gemm = p_.kernel_h == 1 && p_.kernel_w == 1 && p_.stride_h == 1 && p_.stride_w == 1 &&
                                p_.pad_top == 0 && p_.pad_left == 0 && p_.pad_bottom == 0 && p_.pad_right == 0;
        for (int64_t g = 0; g < p_.groups; ++g) {
            const float* x = in.data + (n * p_.in_channels + g * cin_g) * h * w;
            float* y = out.data + (n * p_.out_channels + g * cout_g) * pixels;
            const float* a = packed_.data() + g * group_stride_;
            const auto ep =
                kernels::GemmEpilogue::row_bias(bias_.data() ? bias_.data() + g * cout_g : nullptr, p_.activation);
            auto gemm = [&](const auto& src) {
                if (serial)
                    kernels::gemm_blocked_serial(cout_g, pixels, k_, a, src, work, y, pixels, ep, false);
                else
                    kernels::gemm_blocked(cout_g, pixels, k_, a, src, work, y, pixels, ep, false);
            };
            if (plain_gemm) {
                kernels::MatrixB src;
                src.b = x;
                src.k = k_;
                src.rs = h * w;
                src.cs = 1;
                gemm(src);
            } else {
                kernels::Im2colB src;
                src.input = x;
                src.g = geometry(cin_g, h, w, ho, wo);
                gemm(src);
            }
        }
    }

    kernels::ConvGeometry geometry(int64_t cin_g, int64_t h, int64_t w, int64_t ho, int64_t wo) const {
        kernels::ConvGeometry g;
        g.channels = cin_g;
        g.in_h = h;
        g.in_w = w;
        g.kernel_h = p_.kernel_h;
        g.kernel_w = p_.kernel_w;
        g.stride_h = p_.stride_h;
        g.stride_w = p_.stride_w;
        g.dilation_h = p_.dilation_h;
        g.dilation_w = p_.dilation_w;
        g.pad_top = p_.pad_top;
        g.pad_left = p_.pad_left;
        g.out_h = ho;
        g.out_w = wo;
        return g;
    }

    Conv2dParams p_;
    int64_t k_ = 0;             // GEMM depth: Cin_g * kh * kw
    int64_t group_stride_ = 0;  // floats of packed weights per group
    Tensor packed_;             // per group: weights as packed A panels (empty when Winograd always runs)
    Tensor bias_;               // empty storage when there is no bias
    bool has_winograd_ = false;
    kernels::WinogradConv3x3 winograd_;  // 3x3 stride-1 layers where it can win
    bool has_winograd2_ = false;
    kernels::WinogradConv2x2 winograd2_;  // the same layers, for maps that give F(4x4) few tiles
    bool has_winograd5_ = false;
    kernels::WinogradConv5x5 winograd5_;  // 5x5 stride-1 layers where it can win
    bool has_row_winograd_ = false;
    kernels::WinogradConvRow row_winograd_;  // 1 x k row layers where it can win
    bool has_direct_ = false;
    bool shallow_ = false;  // the direct path is the shallow convolution
    Tensor direct_packed_;  // direct convolution: weights as K x NR panels over Cout; shallow: [Cout, K]
};

namespace ref {
// Scalar twin of Conv2d::run: the direct loop nest, summed in double.
inline Status conv2d(const Conv2dParams& p, ConstTensorView in, ConstTensorView weight, ConstTensorView bias,
                     TensorView out) {
    SALTED_TRY(detail::validate_conv2d(p));
    const int64_t cin_g = p.in_channels / p.groups, cout_g = p.out_channels / p.groups;
    SALTED_TRY(detail::check_weight_bias("conv2d", weight, Shape({p.out_channels, cin_g, p.kernel_h, p.kernel_w}), bias,
                                         p.out_channels));
    SALTED_ASSIGN(Shape os, detail::conv2d_output_shape(p, in.shape));
    SALTED_TRY(detail::check_run("conv2d", in, out, os));
    const int64_t H = in.shape[2], W = in.shape[3], Ho = os[2], Wo = os[3];
    for (int64_t n = 0; n < os[0]; ++n)
        for (int64_t co = 0; co < p.out_channels; ++co) {
            const int64_t g = co / cout_g;
            for (int64_t oy = 0; oy < Ho; ++oy)
                for (int64_t ox = 0; ox < Wo; ++ox) {
                    double s = bias.data ? bias.data[co] : 0.0;
                    for (int64_t ci = 0; ci < cin_g; ++ci)
                        for (int64_t ky = 0; ky < p.kernel_h; ++ky)
                            for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
                                const int64_t iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
                                const int64_t ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += double(in.data[((n * p.in_channels + g * cin_g + ci) * H + iy) * W + ix]) *
                                     double(weight.data[((co * cin_g + ci) * p.kernel_h + ky) * p.kernel_w + kx]);
                            }
                    out.data[((n * p.out_channels + co) * Ho + oy) * Wo + ox] =
                        p.activation.apply(static_cast<float>(s));
                }
        }
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
