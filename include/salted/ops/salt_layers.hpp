// The salted layer (PAPER.md): where the client's secret salt s enters the
// network.
//
// CNN salt: PyTorch's ConvTranspose2d(1, k, kernel=(Sh, Sw), stride=4)
// applied to s as an (N, 1, 1, 1) float tensor. The input is 1x1, so the
// stride never matters and map j is exactly s * W[0, j] + b[j]: one float
// multiply, rounded, then one add, rounded. PyTorch computes it in that
// order, and the maps are checked bitwise against it, so this file must not
// let the compiler contract the two into a fused multiply-add (which rounds
// once and differs in the last bit); see salt_map().
//
// The maps are then concatenated on the channel axis to the activations
// (CnnSalt::concat does both in one pass). FC salt: a salt *vector* [N, C]
// (salt/fc_salt_vector.hpp) is concatenated to a dense layer's input [N, F].
//
// Order: PAPER.md says the salt is concatenated *to* the activations, so the
// activations come first and the salt last (channels [0, Ca) are the
// activations, [Ca, Ca + k) the salt). SaltOrder::salt_first is there for
// models trained with torch.cat((salt, x), 1).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/simd.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace ops {

enum class SaltOrder { activations_first, salt_first };

struct CnnSaltParams {
    int64_t maps = 1;                       // k: ConvTranspose2d out_channels
    int64_t height = 1, width = 1;          // (Sh, Sw): its kernel = the spatial size at the salted layer
    int64_t num_classes = 1;                // C: valid salts are 0..C-1
    SaltOrder order = SaltOrder::activations_first;
};

namespace detail {
inline Status check_salts(const char* op, const int64_t* salts, int64_t count, int64_t batch, int64_t num_classes) {
    if (count != batch)
        return make_error(Errc::shape_mismatch, "%s: salts: expected %lld (one per sample), found %lld", op,
                          static_cast<long long>(batch), static_cast<long long>(count));
    if (salts == nullptr) return make_error(Errc::invalid_argument, "%s: salts: expected a buffer, found null", op);
    for (int64_t n = 0; n < count; ++n)
        if (salts[n] < 0 || salts[n] >= num_classes)
            return make_error(Errc::out_of_range, "%s: salts[%lld]: expected 0..%lld, found %lld", op,
                              static_cast<long long>(n), static_cast<long long>(num_classes - 1),
                              static_cast<long long>(salts[n]));
    return Status();
}
}  // namespace detail

class CnnSalt {
public:
    // weight: ConvTranspose2d's [1, k, Sh, Sw]; bias: [k] or empty (bias=False).
    static Result<CnnSalt> create(const CnnSaltParams& p, ConstTensorView weight, ConstTensorView bias) {
        const int64_t big = int64_t(1) << 30;
        if (p.maps < 1 || p.maps > big)
            return make_error(Errc::invalid_argument, "cnn_salt: maps: expected >= 1, found %lld",
                              static_cast<long long>(p.maps));
        if (p.height < 1 || p.height > big || p.width < 1 || p.width > big)
            return make_error(Errc::invalid_argument, "cnn_salt: height x width: expected >= 1x1, found %lldx%lld",
                              static_cast<long long>(p.height), static_cast<long long>(p.width));
        // Salts up to 2^24 convert to float exactly, as they do in PyTorch.
        if (p.num_classes < 1 || p.num_classes > (int64_t(1) << 24))
            return make_error(Errc::invalid_argument, "cnn_salt: num_classes: expected 1..16777216, found %lld",
                              static_cast<long long>(p.num_classes));
        const Shape want_w{1, p.maps, p.height, p.width};
        if (weight.data == nullptr)
            return make_error(Errc::invalid_argument, "cnn_salt: weight: expected %s, found none",
                              want_w.str().c_str());
        if (weight.shape != want_w)
            return make_error(Errc::shape_mismatch, "cnn_salt: weight shape: expected %s ([1, maps, height, width]), "
                              "found %s", want_w.str().c_str(), weight.shape.str().c_str());
        if (bias.data != nullptr && bias.shape != Shape{p.maps})
            return make_error(Errc::shape_mismatch, "cnn_salt: bias shape: expected [%lld], found %s",
                              static_cast<long long>(p.maps), bias.shape.str().c_str());
        SALTED_TRY(want_w.validate());
        CnnSalt op;
        op.params_ = p;
        op.weight_.assign(weight.data, weight.data + weight.numel());
        if (bias.data) op.bias_.assign(bias.data, bias.data + p.maps);
        return op;
    }

    const CnnSaltParams& params() const { return params_; }

    // [N, k, Sh, Sw]: the maps alone.
    Result<Shape> maps_shape(int64_t batch) const {
        const Shape s{batch, params_.maps, params_.height, params_.width};
        SALTED_TRY(s.validate());
        return s;
    }

    // [N, Ca + k, Sh, Sw] for activations [N, Ca, Sh, Sw].
    Result<Shape> concat_output_shape(const Shape& activations) const {
        if (activations.rank() != 4)
            return make_error(Errc::shape_mismatch, "cnn_salt: activations rank: expected 4 (NCHW), found %d (shape %s)",
                              activations.rank(), activations.str().c_str());
        SALTED_TRY(activations.validate());
        if (activations[2] != params_.height || activations[3] != params_.width)
            return make_error(Errc::shape_mismatch,
                              "cnn_salt: activations height x width: expected %lldx%lld (the salt maps' size), "
                              "found %lldx%lld",
                              static_cast<long long>(params_.height), static_cast<long long>(params_.width),
                              static_cast<long long>(activations[2]), static_cast<long long>(activations[3]));
        Shape out = activations;
        out[1] += params_.maps;
        SALTED_TRY(out.validate());
        return out;
    }

    int64_t flops(int64_t batch) const { return 2 * batch * params_.maps * params_.height * params_.width; }

    // out [N, k, Sh, Sw] = the salt maps of salts[0..N).
    Status maps(const int64_t* salts, int64_t count, TensorView out) const {
        if (out.shape.rank() != 4)
            return make_error(Errc::shape_mismatch, "cnn_salt: output rank: expected 4 ([N, maps, height, width]), "
                              "found %d", out.shape.rank());
        SALTED_ASSIGN(const Shape want, maps_shape(out.shape[0]));
        if (out.shape != want)
            return make_error(Errc::shape_mismatch, "cnn_salt: output shape: expected %s, found %s",
                              want.str().c_str(), out.shape.str().c_str());
        SALTED_TRY(detail::check_salts("cnn_salt", salts, count, want[0], params_.num_classes));
        const int64_t per_sample = params_.maps * params_.height * params_.width;
        for (int64_t n = 0; n < count; ++n) write_maps(salts[n], out.data + n * per_sample);
        return Status();
    }
    Status maps(const std::vector<int64_t>& salts, TensorView out) const {
        return maps(salts.data(), static_cast<int64_t>(salts.size()), out);
    }

    // The fused salted layer: out [N, Ca + k, H, W] = cat(activations, maps)
    // along channels (order per params().order). `out` must not overlap
    // `activations`.
    Status concat(ConstTensorView activations, const int64_t* salts, int64_t count, TensorView out) const {
        SALTED_ASSIGN(const Shape want, concat_output_shape(activations.shape));
        if (out.shape != want)
            return make_error(Errc::shape_mismatch, "cnn_salt: output shape: expected %s, found %s",
                              want.str().c_str(), out.shape.str().c_str());
        SALTED_TRY(detail::check_salts("cnn_salt", salts, count, want[0], params_.num_classes));
        const int64_t act_block = activations.numel() / want[0];
        const int64_t salt_block = params_.maps * params_.height * params_.width;
        const bool salt_first = params_.order == SaltOrder::salt_first;
        for (int64_t n = 0; n < count; ++n) {
            float* dst = out.data + n * (act_block + salt_block);
            std::memcpy(dst + (salt_first ? salt_block : 0), activations.data + n * act_block,
                        static_cast<std::size_t>(act_block) * sizeof(float));
            write_maps(salts[n], dst + (salt_first ? 0 : act_block));
        }
        return Status();
    }
    Status concat(ConstTensorView activations, const std::vector<int64_t>& salts, TensorView out) const {
        return concat(activations, salts.data(), static_cast<int64_t>(salts.size()), out);
    }

    // Bytes of the salt maps' weights and bias.
    int64_t kernel_bytes() const { return static_cast<int64_t>((weight_.size() + bias_.size()) * sizeof(float)); }

private:
    // All k maps of one salt into dst[k * Sh * Sw]. Two passes on purpose:
    // products first, then the bias, with a compiler barrier between, so
    // every element is round(round(s * w) + b) exactly as in PyTorch, even
    // when the compiler would contract `s * w + b` into an FMA (GCC's
    // default -ffp-contract=fast does, with -march=native).
    void write_maps(int64_t salt, float* dst) const {
        const float s = static_cast<float>(salt);
        const int64_t n = static_cast<int64_t>(weight_.size()), w = static_cast<int64_t>(simd::width);
        const simd::FloatBatch vs = simd::broadcast(s);
        int64_t i = 0;
        for (; i + w <= n; i += w) simd::store(dst + i, simd::load(weight_.data() + i) * vs);
        for (; i < n; ++i) dst[i] = weight_[i] * s;
        if (bias_.empty()) return;
        std::atomic_signal_fence(std::memory_order_seq_cst);  // products are in memory, rounded
        const int64_t area = params_.height * params_.width;
        for (int64_t j = 0; j < params_.maps; ++j) {
            float* m = dst + j * area;
            const simd::FloatBatch vb = simd::broadcast(bias_[j]);
            int64_t e = 0;
            for (; e + w <= area; e += w) simd::store(m + e, simd::load(m + e) + vb);
            for (; e < area; ++e) m[e] += bias_[j];
        }
    }

    CnnSaltParams params_;
    std::vector<float> weight_, bias_;
};

// FC salt: [N, F] activations and [N, C] salt vectors -> [N, F + C]
// (activations first by default, see SaltOrder).
inline Result<Shape> fc_salt_concat_output_shape(const Shape& activations, const Shape& salt_vectors) {
    if (activations.rank() != 2)
        return make_error(Errc::shape_mismatch, "fc_salt_concat: activations rank: expected 2 ([N, F]), found %d",
                          activations.rank());
    if (salt_vectors.rank() != 2)
        return make_error(Errc::shape_mismatch, "fc_salt_concat: salt_vectors rank: expected 2 ([N, C]), found %d",
                          salt_vectors.rank());
    SALTED_TRY(activations.validate());
    SALTED_TRY(salt_vectors.validate());
    if (salt_vectors[0] != activations[0])
        return make_error(Errc::shape_mismatch, "fc_salt_concat: salt_vectors batch: expected %lld, found %lld",
                          static_cast<long long>(activations[0]), static_cast<long long>(salt_vectors[0]));
    return Shape{activations[0], activations[1] + salt_vectors[1]};
}

inline Status fc_salt_concat(ConstTensorView activations, ConstTensorView salt_vectors, TensorView out,
                             SaltOrder order = SaltOrder::activations_first) {
    SALTED_ASSIGN(const Shape want, fc_salt_concat_output_shape(activations.shape, salt_vectors.shape));
    if (out.shape != want)
        return make_error(Errc::shape_mismatch, "fc_salt_concat: output shape: expected %s, found %s",
                          want.str().c_str(), out.shape.str().c_str());
    const int64_t f = activations.shape[1], c = salt_vectors.shape[1];
    const bool salt_first = order == SaltOrder::salt_first;
    for (int64_t n = 0; n < want[0]; ++n) {
        float* dst = out.data + n * (f + c);
        std::memcpy(dst + (salt_first ? c : 0), activations.data + n * f, static_cast<std::size_t>(f) * sizeof(float));
        std::memcpy(dst + (salt_first ? 0 : f), salt_vectors.data + n * c, static_cast<std::size_t>(c) * sizeof(float));
    }
    return Status();
}

namespace ref {

// Scalar twin of CnnSalt::maps: the transposed convolution of a 1x1 input,
// written out. `volatile` rounds the product to float before the add.
inline Status cnn_salt_maps(const CnnSaltParams& p, ConstTensorView weight, ConstTensorView bias,
                            const std::vector<int64_t>& salts, TensorView out) {
    const int64_t n = static_cast<int64_t>(salts.size()), area = p.height * p.width;
    if (out.shape != Shape{n, p.maps, p.height, p.width} || weight.numel() != p.maps * area)
        return make_error(Errc::shape_mismatch, "cnn_salt: shapes do not fit");
    SALTED_TRY(detail::check_salts("cnn_salt", salts.data(), n, n, p.num_classes));
    for (int64_t b = 0; b < n; ++b)
        for (int64_t j = 0; j < p.maps; ++j)
            for (int64_t e = 0; e < area; ++e) {
                volatile float product = static_cast<float>(salts[b]) * weight[j * area + e];
                out[(b * p.maps + j) * area + e] = bias.data ? product + bias[j] : product;
            }
    return Status();
}

// Scalar twin of CnnSalt::concat, element by element.
inline Status cnn_salt_concat(const CnnSaltParams& p, ConstTensorView weight, ConstTensorView bias,
                              ConstTensorView activations, const std::vector<int64_t>& salts, TensorView out) {
    const int64_t n = static_cast<int64_t>(salts.size()), ca = activations.shape[1], area = p.height * p.width;
    if (activations.shape.rank() != 4 || out.shape != Shape{n, ca + p.maps, p.height, p.width})
        return make_error(Errc::shape_mismatch, "cnn_salt: shapes do not fit");
    SALTED_TRY(detail::check_salts("cnn_salt", salts.data(), n, n, p.num_classes));
    const int64_t first_salt_channel = p.order == SaltOrder::salt_first ? 0 : ca;
    const int64_t first_act_channel = p.order == SaltOrder::salt_first ? p.maps : 0;
    for (int64_t b = 0; b < n; ++b)
        for (int64_t c = 0; c < ca + p.maps; ++c)
            for (int64_t e = 0; e < area; ++e) {
                float v;
                if (c >= first_salt_channel && c < first_salt_channel + p.maps) {
                    const int64_t j = c - first_salt_channel;
                    volatile float product = static_cast<float>(salts[b]) * weight[j * area + e];
                    v = bias.data ? product + bias[j] : product;
                } else {
                    v = activations[(b * ca + (c - first_act_channel)) * area + e];
                }
                out[(b * (ca + p.maps) + c) * area + e] = v;
            }
    return Status();
}

// Scalar twin of fc_salt_concat.
inline Status fc_salt_concat(ConstTensorView activations, ConstTensorView salt_vectors, TensorView out,
                             SaltOrder order = SaltOrder::activations_first) {
    SALTED_ASSIGN(const Shape want, fc_salt_concat_output_shape(activations.shape, salt_vectors.shape));
    if (out.shape != want) return make_error(Errc::shape_mismatch, "fc_salt_concat: output shape differs");
    const int64_t f = activations.shape[1], c = salt_vectors.shape[1];
    for (int64_t b = 0; b < want[0]; ++b)
        for (int64_t i = 0; i < f + c; ++i) {
            const bool is_salt = order == SaltOrder::salt_first ? i < c : i >= f;
            const int64_t k = order == SaltOrder::salt_first ? (is_salt ? i : i - c) : (is_salt ? i - f : i);
            out[b * (f + c) + i] = is_salt ? salt_vectors[b * c + k] : activations[b * f + k];
        }
    return Status();
}

}  // namespace ref

}  // namespace ops
}  // namespace salted
