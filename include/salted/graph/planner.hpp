// Buffer planning for a range of nodes [from, to) at one batch size: which
// values the caller supplies, which the range returns, and where every value
// the range computes lives in one arena.
//
// Liveness: a value computed by node i occupies its buffer from i to its last
// reader inside the range (to the end for a range output). Two values whose
// lifetimes overlap never share bytes, which also keeps every node's output
// apart from its inputs (the ops require it). Placement is greedy: largest
// value first, at the lowest offset that does not collide with a placed value
// alive at the same time. Every buffer starts at a 64-byte boundary.
//
// Workspace: one block, the largest any node in the range asks for, shared
// because nodes run one after another.
//
// Steps: what actually runs, in order. Usually one per node; when the range
// holds both the salt concat and the convs it feeds (Model::salt_fold()), the
// concat's step disappears and each conv's step runs its folded layer on the
// activations and the salt, so the concat's output is never computed or
// stored; a batch_norm between them runs on the activation channels only
// (its output value is planned with that many channels). A range that ends
// between the concat and the last conv (an unsafe cut) runs them as written.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"
#include "salted/graph/model.hpp"

namespace salted {
namespace graph {

// One layer call: which layer, on which values, writing which value.
struct Step {
    int node = -1;               // position in the model
    const Layer* layer = nullptr;
    std::vector<int> inputs;     // value indices
    int output = -1;             // value index
    int named = -1;              // node an error names: the concat for a folded step (its salt check)
};

struct Plan {
    int from = 0, to = 0;
    int64_t batch = 0;
    std::vector<int> inputs;           // values the caller passes, in order
    std::vector<int> outputs;          // values the range returns, in order
    std::vector<Shape> shapes;         // per value, at this batch
    std::vector<int64_t> offsets;      // per value: float offset in the arena, -1 if not computed here
    std::vector<Step> steps;           // what runs, in order
    std::size_t arena_floats = 0;
    std::size_t workspace_floats = 0;
    int max_node_inputs = 0;
    // Bytes the arena and the workspace take: the planned peak memory.
    std::size_t peak_bytes() const { return (arena_floats + workspace_floats) * sizeof(float); }
};

// The values the caller supplies to [from, to): every graph input when the
// range starts at 0 (so a whole-model or head call always takes the model's
// inputs, in file order), otherwise the values crossing `from` that a node
// in the range reads or that the range returns.
inline std::vector<int> range_inputs(const Topology& t, int from, int to) {
    if (from == 0) return t.inputs;
    std::vector<int> out;
    const int n = t.node_count();
    for (int v : t.live_at(from, true)) {
        const ValueInfo& info = t.values[static_cast<std::size_t>(v)];
        bool needed = info.last_use(n) >= to && !info.is_salt;  // passes through to a range output
        for (int c : info.consumers) needed = needed || (c >= from && c < to);
        if (needed) out.push_back(v);
    }
    return out;
}

// The values [from, to) returns: the graph outputs when it ends the model,
// otherwise what crosses `to` (without the salt, which the client holds).
inline std::vector<int> range_outputs(const Topology& t, int to) {
    if (to == t.node_count()) return t.outputs;
    return t.live_at(to, false);
}

inline Result<Plan> plan_range(const Model& m, int from, int to, int64_t batch) {
    const Topology& t = m.topology();
    const int n = t.node_count();
    if (from < 0 || to > n || from > to)
        return make_error(Errc::out_of_range, "plan: range: expected 0 <= from <= to <= %d, found [%d, %d)", n, from,
                          to);
    if (batch < 1 || batch > (int64_t(1) << 24))
        return make_error(Errc::invalid_argument, "plan: batch: expected 1..16777216, found %lld",
                          static_cast<long long>(batch));
    Plan p;
    p.from = from;
    p.to = to;
    p.batch = batch;
    p.inputs = range_inputs(t, from, to);
    p.outputs = range_outputs(t, to);
    p.shapes.resize(t.values.size());
    p.offsets.assign(t.values.size(), -1);
    for (std::size_t v = 0; v < t.values.size(); ++v) {
        p.shapes[v] = m.value_shape(static_cast<int>(v), batch);
        SALTED_TRY(p.shapes[v].validate());
    }

    // The steps, with the salt fold applied when the range allows it.
    const SaltFold* fold = m.salt_fold();
    const auto is_output = [&](int v) { return std::find(p.outputs.begin(), p.outputs.end(), v) != p.outputs.end(); };
    const NodeInfo* concat = fold ? &t.nodes[static_cast<std::size_t>(fold->concat)] : nullptr;
    const int through_out = fold && fold->through >= 0 ? t.nodes[static_cast<std::size_t>(fold->through)].output : -1;
    const bool folded = fold && fold->concat >= from && fold->last() < to && !is_output(concat->output) &&
                        !(through_out >= 0 && is_output(through_out));
    for (int i = from; i < to; ++i) {
        const NodeInfo& node = t.nodes[static_cast<std::size_t>(i)];
        if (folded && i == fold->concat) continue;
        Step st;
        st.node = i;
        st.output = node.output;
        st.layer = &m.layer(i);
        st.inputs = node.inputs;
        st.named = i;
        if (folded && i == fold->through) {  // on the activation channels only
            st.layer = fold->through_layer.get();
            st.inputs = {concat->inputs[0]};
            p.shapes[static_cast<std::size_t>(st.output)][1] = p.shapes[static_cast<std::size_t>(concat->inputs[0])][1];
        } else if (const Layer* folded_conv = folded ? fold->conv_layer(i) : nullptr) {
            st.named = fold->concat;
            st.layer = folded_conv;
            st.inputs = {through_out >= 0 ? through_out : concat->inputs[0], concat->inputs[1]};
        }
        p.steps.push_back(std::move(st));
    }
    // Last step position reading each value (for the buffers' lifetimes).
    std::vector<int> last_read(t.values.size(), -1);
    for (const Step& st : p.steps)
        for (int v : st.inputs) last_read[static_cast<std::size_t>(v)] = st.node;

    struct Block {
        int value;
        int start, end;  // node positions, inclusive
        int64_t floats;
        int64_t offset;
    };
    std::vector<Block> blocks;
    std::vector<Shape> in_shapes;
    for (const Step& st : p.steps) {
        in_shapes.clear();
        for (int v : st.inputs) in_shapes.push_back(p.shapes[static_cast<std::size_t>(v)]);
        p.workspace_floats = std::max(p.workspace_floats, st.layer->workspace_floats(in_shapes));
        p.max_node_inputs = std::max(p.max_node_inputs, static_cast<int>(st.inputs.size()));
        int end = std::max(st.node, last_read[static_cast<std::size_t>(st.output)]);
        if (std::find(p.outputs.begin(), p.outputs.end(), st.output) != p.outputs.end()) end = to;
        const int64_t floats = (p.shapes[static_cast<std::size_t>(st.output)].numel() + 15) / 16 * 16;
        blocks.push_back(Block{st.output, st.node, end, floats, -1});
    }
    std::vector<std::size_t> order(blocks.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return blocks[a].floats > blocks[b].floats; });
    std::vector<const Block*> placed;  // kept sorted by offset
    for (std::size_t k : order) {
        Block& b = blocks[k];
        int64_t offset = 0;
        for (const Block* q : placed) {
            const bool overlap_in_time = b.start <= q->end && q->start <= b.end;
            if (!overlap_in_time) continue;
            if (offset + b.floats <= q->offset) break;  // fits in the gap before q
            offset = std::max(offset, q->offset + q->floats);
        }
        b.offset = offset;
        placed.insert(std::upper_bound(placed.begin(), placed.end(), &b,
                                       [](const Block* x, const Block* y) { return x->offset < y->offset; }),
                      &b);
        p.arena_floats = std::max(p.arena_floats, static_cast<std::size_t>(offset + b.floats));
    }
    for (const Block& b : blocks) p.offsets[static_cast<std::size_t>(b.value)] = b.offset;
    return p;
}

}  // namespace graph
}  // namespace salted
