// Load-time verification: replay the PyTorch test vector stored in the model
// file and compare with the stored outputs, tolerance 1e-4 * max(1,
// max|reference|) (docs/FORMAT.md). A model that passes computes what PyTorch
// computed, on this machine, with this build's kernels.
//
// The replay uses run_unplanned(): one fresh buffer per value, nodes in
// order, no arena. It exercises every layer while depending on nothing but
// the Model, so Model::load can call it; the planned Session is held to the
// same outputs by the tests.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"
#include "salted/graph/model.hpp"

namespace salted {
namespace graph {

// Runs the whole model on `inputs` (one per graph input, in file order, all
// with the same batch) and returns the graph outputs in file order.
inline Result<std::vector<Tensor>> run_unplanned(const Model& m, const std::vector<ConstTensorView>& inputs) {
    const Topology& t = m.topology();
    if (inputs.size() != t.inputs.size())
        return make_error(Errc::invalid_argument, "run: inputs: expected %zu, found %zu", t.inputs.size(),
                          inputs.size());
    if (inputs.empty() || inputs[0].shape.rank() < 1)
        return make_error(Errc::shape_mismatch, "run: input 0: expected a tensor with a batch dimension");
    const int64_t batch = inputs[0].shape[0];
    std::vector<ConstTensorView> views(t.values.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const int v = t.inputs[i];
        if (batch < 1 || inputs[i].shape != m.value_shape(v, batch) || !inputs[i].data)
            return make_error(Errc::shape_mismatch, "run: input '%.80s': expected shape %s, found %s",
                              m.value(v).name.c_str(), m.value_shape(v, batch < 1 ? 1 : batch).str().c_str(),
                              inputs[i].shape.str().c_str());
        views[static_cast<std::size_t>(v)] = inputs[i];
    }
    std::vector<Tensor> owned(t.values.size());
    std::vector<ConstTensorView> node_in;
    std::vector<Shape> shapes;
    for (int i = 0; i < m.node_count(); ++i) {
        const NodeInfo& node = m.node(i);
        node_in.clear();
        shapes.clear();
        for (int v : node.inputs) {
            node_in.push_back(views[static_cast<std::size_t>(v)]);
            shapes.push_back(node_in.back().shape);
        }
        std::vector<float> workspace(m.layer(i).workspace_floats(shapes) + 16);
        SALTED_ASSIGN(Tensor out, Tensor::empty(m.value_shape(node.output, batch)));
        Status st = m.layer(i).run(node_in.data(), node_in.size(), out.view(), workspace.data());
        if (!st.ok())
            return make_error(st.code(), "run: node '%.80s' (%s): %s", node.name.c_str(), node.op.c_str(),
                              st.message().c_str());
        views[static_cast<std::size_t>(node.output)] = out.view();
        owned[static_cast<std::size_t>(node.output)] = std::move(out);
    }
    std::vector<Tensor> outs;
    for (int v : t.outputs) {
        SALTED_ASSIGN(Tensor o, Tensor::copy_of(views[static_cast<std::size_t>(v)]));
        outs.push_back(std::move(o));
    }
    return outs;
}

// The largest |got - want| and the tolerance for `want`; NaN anywhere makes
// the difference NaN (never within tolerance).
struct Agreement {
    double max_diff = 0.0;
    double tolerance = 0.0;
    bool ok() const { return max_diff <= tolerance; }
};

inline Agreement compare_outputs(ConstTensorView got, ConstTensorView want) {
    Agreement a;
    double max_ref = 0.0;
    for (int64_t i = 0; i < want.numel(); ++i) {
        const double r = want.data[i];
        if (std::fabs(r) > max_ref || r != r) max_ref = std::fabs(r);
        const double d = std::fabs(static_cast<double>(got.data[i]) - r);
        if (d > a.max_diff || d != d) a.max_diff = d;
    }
    a.tolerance = 1e-4 * (max_ref > 1.0 ? max_ref : 1.0);
    return a;
}

inline Status verify_test_vector(const Model& m) {
    const io::ModelFile& f = m.file();
    if (!f.has_test_vector()) return Status();
    std::vector<ConstTensorView> inputs;
    for (const io::TensorEntry& t : f.test_vector().inputs) inputs.push_back(t.view());
    auto outs = run_unplanned(m, inputs);
    if (!outs.ok())
        return make_error(Errc::verify_failed, "model: test_vector: the model does not run on it: %s",
                          outs.message().c_str());
    for (std::size_t i = 0; i < outs->size(); ++i) {
        const io::TensorEntry& want = f.test_vector().outputs[i];
        if ((*outs)[i].shape() != want.shape)
            return make_error(Errc::verify_failed, "model: test_vector.outputs.'%.80s': expected shape %s, computed %s",
                              want.name.c_str(), want.shape.str().c_str(), (*outs)[i].shape().str().c_str());
        const Agreement a = compare_outputs((*outs)[i].view(), want.view());
        if (!a.ok())
            return make_error(Errc::verify_failed,
                              "model: test_vector.outputs.'%.80s': max|diff| %.3g exceeds the tolerance %.3g "
                              "(reference from %.80s)",
                              want.name.c_str(), a.max_diff, a.tolerance, f.test_vector().producer.c_str());
    }
    return Status();
}

}  // namespace graph
}  // namespace salted
