// Layer: the one interface through which the graph runtime drives every op.
//
// The ops (include/salted/ops/) are concrete types with their own parameter
// structs; a graph needs to hold a list of them and call them alike. A Layer
// adapts one op instance built from one model-file node: shape inference,
// workspace size, FLOPs and run, all on shapes that carry the batch first.
// Layers are immutable after construction, so one Model can serve many
// Sessions on many threads.
//
// This header also holds the attribute readers the layer builders share:
// every integer attribute is bounded on read, so a hostile file cannot push
// an overflow into the shape arithmetic of an op.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"
#include "salted/core/tensor.hpp"
#include "salted/io/model_file.hpp"
#include "salted/ops/activation.hpp"

namespace salted {
namespace graph {

class Layer {
public:
    virtual ~Layer() = default;
    // Output shape for these input shapes (batch first); the error names the
    // op and the dimension that does not fit.
    virtual Result<Shape> output_shape(const std::vector<Shape>& inputs) const = 0;
    // Scratch floats run() needs for these input shapes.
    virtual std::size_t workspace_floats(const std::vector<Shape>& /*inputs*/) const { return 0; }
    // Multiply-adds x2 (or one per element for data movement-free ops).
    virtual int64_t flops(const std::vector<Shape>& /*inputs*/) const { return 0; }
    // Computes `out` from `count` inputs. `out` never overlaps an input.
    virtual Status run(const ConstTensorView* inputs, std::size_t count, TensorView out, float* workspace) const = 0;
    // Bytes the layer holds for its kernels: weights packed, transformed or
    // folded at load (the model file's own weights are counted apart).
    virtual int64_t kernel_bytes() const { return 0; }
};

using LayerPtr = std::unique_ptr<Layer>;

// What a builder may need beyond its own node.
struct BuildContext {
    const io::ModelFile* file = nullptr;
    // The node's input shapes for a batch of one (the model's inputs are
    // fixed but for the batch), so that a layer can prepare its kernels for
    // the sizes it will see; null when not known.
    const std::vector<Shape>* input_shapes = nullptr;
    // LoadOptions::batch_invariant: no kernel whose choice depends on the batch size.
    bool batch_invariant = false;
};

namespace detail {

// Integer attributes stay below 2^31 in absolute value: no real layer comes
// close, and sums and products of a few of them cannot overflow int64.
constexpr int64_t attr_limit = int64_t(1) << 31;

inline Error attr_error(const io::Node& n, const std::string& key, const char* expected, long long found) {
    return make_error(Errc::invalid_argument, "model: node '%.80s' (%s): attribute '%s': expected %s, found %lld",
                      n.name.c_str(), n.op.c_str(), key.c_str(), expected, found);
}

inline Result<int64_t> attr_int_in(const io::Node& n, const std::string& key, int64_t lo, int64_t hi) {
    SALTED_ASSIGN(int64_t v, n.attr_int(key));
    if (v < lo || v > hi) {
        const std::string want = std::to_string(lo) + ".." + std::to_string(hi);
        return attr_error(n, key, want.c_str(), static_cast<long long>(v));
    }
    return v;
}
inline Result<int64_t> attr_int_in(const io::Node& n, const std::string& key, int64_t lo, int64_t hi,
                                   int64_t fallback) {
    if (!n.has_attr(key)) return fallback;
    return attr_int_in(n, key, lo, hi);
}

// An array of exactly `len` integers, each in [lo, hi].
inline Result<std::vector<int64_t>> attr_ints_in(const io::Node& n, const std::string& key, std::size_t len,
                                                 int64_t lo, int64_t hi) {
    SALTED_ASSIGN(std::vector<int64_t> v, n.attr_ints(key, len));
    for (std::size_t i = 0; i < v.size(); ++i)
        if (v[i] < lo || v[i] > hi) {
            const std::string field = key + "[" + std::to_string(i) + "]";
            const std::string want = std::to_string(lo) + ".." + std::to_string(hi);
            return attr_error(n, field, want.c_str(), static_cast<long long>(v[i]));
        }
    return v;
}
inline Result<std::vector<int64_t>> attr_ints_in(const io::Node& n, const std::string& key, std::size_t len,
                                                 int64_t lo, int64_t hi, std::vector<int64_t> fallback) {
    if (!n.has_attr(key)) return fallback;
    return attr_ints_in(n, key, len, lo, hi);
}

inline Result<ops::Activation> attr_activation(const io::Node& n) {
    SALTED_ASSIGN(io::ActivationAttr a, n.attr_activation());
    switch (a.kind) {
        case io::ActivationAttr::Kind::none: return ops::Activation::none();
        case io::ActivationAttr::Kind::relu: return ops::Activation::relu();
        case io::ActivationAttr::Kind::leaky_relu:
            if (!(a.slope == a.slope) || a.slope > 1e30 || a.slope < -1e30)
                return make_error(Errc::invalid_argument,
                                  "model: node '%.80s' (%s): attribute 'activation.slope': expected a finite number",
                                  n.name.c_str(), n.op.c_str());
            return ops::Activation::leaky_relu(static_cast<float>(a.slope));
    }
    return ops::Activation::none();
}

// A weight the node must have, or an empty view for an optional one.
inline Result<ConstTensorView> required_weight(const BuildContext& ctx, const io::Node& n, const char* role) {
    return ctx.file->weight(n, role);
}
inline Result<ConstTensorView> optional_weight(const BuildContext& ctx, const io::Node& n, const char* role) {
    if (!n.has_weight(role)) return ConstTensorView();
    return ctx.file->weight(n, role);
}

// Prefixes an op's own error ("conv2d: groups: ...") with the node it came from.
inline Error in_node(const io::Node& n, const Error& e) {
    return Error{e.code, "model: node '" + (n.name.size() > 80 ? n.name.substr(0, 80) + "..." : n.name) + "' (" +
                             n.op + "): " + e.message};
}

}  // namespace detail

}  // namespace graph
}  // namespace salted
