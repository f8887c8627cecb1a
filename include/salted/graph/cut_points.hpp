// Cut points: where a model can be split into a head (device) and a tail
// (cloud) that exchange exactly one tensor. docs/SPLIT.md explains the rules;
// in short, position p (0..n, in the topological order) is a cut when exactly
// one value produced before p (a graph input counts as produced before 0) is
// read at or after p. The salt input is not counted: the client holds it.
//
// For a salted model a cut is *safe* only when the salt is already mixed
// into the activations. Before the salt node the tail itself would need the
// salt. Right after it the cut tensor is the raw concat, and the cloud reads
// the salt maps or vector. Per-channel layers do not help: after a batch
// norm, ReLU, pooling or padding the salt channels are still separate
// channels, each an affine (or monotone) function of s, so the cloud still
// reads s. The salt counts as mixed only once every path from the concat to
// the cut tensor passes a layer that combines channels (conv2d,
// conv_transpose2d, dense). In the paper's networks that is the concat's
// first consumer (LeNet, the sensor net, the FC salts); in the salted
// WideResNet it is the end of the next residual block, since the block
// starts with BN + ReLU on the concat. Unsafe cuts are listed, marked, and
// refused unless the caller forces them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "salted/graph/topology.hpp"

namespace salted {
namespace graph {

struct CutPoint {
    int id = 0;              // 0.. in order of position; the frame's cut_id
    int position = 0;        // nodes [0, position) are the head
    std::string name;        // "input:x", or "after:<producing node>"
    int value = -1;          // the tensor that crosses
    Shape shape;             // per batch item (dims[0] == 1)
    int64_t bytes = 0;       // per batch item, float32
    double head_mflops = 0;  // per batch item
    double tail_mflops = 0;
    bool salt_mixed = true;       // the salt is inside the cut tensor (always true for a standard model)
    bool tail_needs_salt = false; // the salt enters after the cut: the tail would need it (unsafe)
    bool safe() const { return salt_mixed; }
};

// Layers whose every output element combines many input channels.
inline bool mixes_channels(const std::string& op) {
    return op == "conv2d" || op == "conv_transpose2d" || op == "dense";
}

inline std::vector<CutPoint> find_cut_points(const Topology& t) {
    const int n = t.node_count();
    double total = 0;
    for (const NodeInfo& node : t.nodes) total += static_cast<double>(node.flops);
    // carries_salt[v]: v still holds the salt channels unmixed.
    std::vector<bool> carries_salt(t.values.size(), false);
    if (t.salt_node >= 0) {
        carries_salt[static_cast<std::size_t>(t.nodes[static_cast<std::size_t>(t.salt_node)].output)] = true;
        for (int i = t.salt_node + 1; i < n; ++i) {
            const NodeInfo& node = t.nodes[static_cast<std::size_t>(i)];
            if (mixes_channels(node.op)) continue;
            bool any = false;
            for (int v : node.inputs) any = any || carries_salt[static_cast<std::size_t>(v)];
            carries_salt[static_cast<std::size_t>(node.output)] = any;
        }
    }
    std::vector<CutPoint> cuts;
    double head = 0;
    for (int p = 0; p <= n; ++p) {
        if (p > 0) head += static_cast<double>(t.nodes[static_cast<std::size_t>(p - 1)].flops);
        const std::vector<int> live = t.live_at(p, false);
        if (live.size() != 1) continue;
        const ValueInfo& v = t.values[static_cast<std::size_t>(live[0])];
        CutPoint c;
        c.id = static_cast<int>(cuts.size());
        c.position = p;
        c.value = live[0];
        c.name = v.producer < 0 ? "input:" + v.name : "after:" + t.nodes[static_cast<std::size_t>(v.producer)].name;
        // A dead node between two cuts leaves the same tensor crossing at
        // both; the position keeps the names unique.
        for (const CutPoint& other : cuts)
            if (other.name == c.name) c.name += "@" + std::to_string(p);
        c.shape = v.shape;
        c.bytes = v.shape.numel() * static_cast<int64_t>(sizeof(float));
        c.head_mflops = head / 1e6;
        c.tail_mflops = (total - head) / 1e6;
        if (t.salt_node >= 0) {
            c.salt_mixed = p > t.salt_node && !carries_salt[static_cast<std::size_t>(c.value)];
            c.tail_needs_salt = p <= t.salt_node;
        }
        cuts.push_back(c);
    }
    return cuts;
}

}  // namespace graph
}  // namespace salted
