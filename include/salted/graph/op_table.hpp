// The one table that maps a node's op name to its layer builder and input
// count. Adding an op = one header with its builder + one row here; an op
// name not in the table is an error naming the op and the node.
#pragma once

#include <cstddef>
#include <cstring>

#include "salted/graph/layer.hpp"
#include "salted/graph/layers_compute.hpp"
#include "salted/graph/layers_salt.hpp"
#include "salted/graph/layers_simple.hpp"

namespace salted {
namespace graph {

struct OpEntry {
    const char* name;
    std::size_t min_inputs, max_inputs;
    Result<LayerPtr> (*build)(const io::Node&, const BuildContext&);
};

inline const OpEntry* op_table(std::size_t* count) {
    static const OpEntry table[] = {
        {"conv2d", 1, 1, build_conv2d},
        {"conv_transpose2d", 1, 1, build_conv_transpose2d},
        {"dense", 1, 1, build_dense},
        {"batch_norm", 1, 1, build_batch_norm},
        {"max_pool2d", 1, 1, [](const io::Node& n, const BuildContext&) { return build_pool(n, PoolLayer::Kind::max); }},
        {"avg_pool2d", 1, 1, [](const io::Node& n, const BuildContext&) { return build_pool(n, PoolLayer::Kind::avg); }},
        {"global_avg_pool", 1, 1, [](const io::Node& n, const BuildContext&) { return build_global_avg_pool(n); }},
        {"relu", 1, 1, [](const io::Node& n, const BuildContext&) { return build_relu(n); }},
        {"leaky_relu", 1, 1, [](const io::Node& n, const BuildContext&) { return build_leaky_relu(n); }},
        {"add", 2, 2, [](const io::Node& n, const BuildContext&) { return build_add(n); }},
        {"concat", 1, 64, [](const io::Node& n, const BuildContext&) { return build_concat(n); }},
        {"pad", 1, 1, [](const io::Node& n, const BuildContext&) { return build_pad(n); }},
        {"flatten", 1, 1, [](const io::Node& n, const BuildContext&) { return build_flatten(n); }},
        {"softmax", 1, 1, [](const io::Node& n, const BuildContext&) { return build_softmax(n); }},
        {"cnn_salt_concat", 2, 2, build_cnn_salt_concat},
        {"fc_salt_concat", 2, 2, [](const io::Node& n, const BuildContext&) { return build_fc_salt_concat(n); }},
    };
    *count = sizeof(table) / sizeof(table[0]);
    return table;
}

inline const OpEntry* find_op(const std::string& name) {
    std::size_t count = 0;
    const OpEntry* table = op_table(&count);
    for (std::size_t i = 0; i < count; ++i)
        if (name == table[i].name) return &table[i];
    return nullptr;
}

// Builds the layer of one node: known op, right number of inputs and
// outputs, attributes and weights that fit.
inline Result<LayerPtr> build_layer(const io::Node& n, const BuildContext& ctx) {
    const OpEntry* e = find_op(n.op);
    if (!e)
        return make_error(Errc::unsupported, "model: node '%.80s': unknown op '%.64s'", n.name.c_str(), n.op.c_str());
    if (n.inputs.size() < e->min_inputs || n.inputs.size() > e->max_inputs) {
        if (e->min_inputs == e->max_inputs)
            return make_error(Errc::invalid_argument, "model: node '%.80s' (%s): inputs: expected %zu, found %zu",
                              n.name.c_str(), e->name, e->min_inputs, n.inputs.size());
        return make_error(Errc::invalid_argument, "model: node '%.80s' (%s): inputs: expected %zu..%zu, found %zu",
                          n.name.c_str(), e->name, e->min_inputs, e->max_inputs, n.inputs.size());
    }
    if (n.outputs.size() != 1)
        return make_error(Errc::invalid_argument, "model: node '%.80s' (%s): outputs: expected 1, found %zu",
                          n.name.c_str(), e->name, n.outputs.size());
    return e->build(n, ctx);
}

}  // namespace graph
}  // namespace salted
