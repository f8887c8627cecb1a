// The graph as indices: which node produces and which nodes consume each
// value, with the per-item shapes that shape inference found. The model,
// the cut-point finder and the buffer planner all work on this plain form.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "salted/core/shape.hpp"

namespace salted {
namespace graph {

// A tensor flowing through the graph: a graph input or a node's output.
struct ValueInfo {
    std::string name;
    int producer = -1;          // node index; -1 for a graph input
    int graph_input = -1;       // index among the graph inputs, or -1
    int graph_output = -1;      // index among the graph outputs, or -1
    bool is_salt = false;       // the salt input (never crosses a cut)
    std::vector<int> consumers; // node indices, ascending (a node reading it twice appears once)
    Shape shape;                // at batch 1 (dims[0] == 1)

    // Position of the last reader; graph outputs are read by the caller,
    // after the last node (position node_count).
    int last_use(int node_count) const {
        int last = graph_output >= 0 ? node_count : -1;
        for (int c : consumers) last = c > last ? c : last;
        return last;
    }
};

struct NodeInfo {
    std::string name;
    std::string op;
    std::vector<int> inputs;   // value indices, in the node's order
    int output = -1;           // value index
    int64_t params = 0;        // weight elements
    int64_t flops = 0;         // at batch 1
};

struct Topology {
    std::vector<ValueInfo> values;
    std::vector<NodeInfo> nodes;
    std::vector<int> inputs;   // graph inputs, value indices in file order
    std::vector<int> outputs;  // graph outputs, value indices in file order
    int salt_value = -1;       // the salt input, or -1 for a standard model
    int salt_node = -1;        // the node that mixes the salt in, or -1

    int node_count() const { return static_cast<int>(nodes.size()); }

    // Values that cross position p (0..node_count): produced before p (graph
    // inputs count as produced before 0) and read at or after p.
    std::vector<int> live_at(int p, bool include_salt) const {
        std::vector<int> out;
        const int n = node_count();
        for (int v = 0; v < static_cast<int>(values.size()); ++v) {
            const ValueInfo& info = values[static_cast<std::size_t>(v)];
            if (info.is_salt && !include_salt) continue;
            if (info.producer >= p) continue;
            if (info.last_use(n) >= p) out.push_back(v);
        }
        return out;
    }
};

}  // namespace graph
}  // namespace salted
