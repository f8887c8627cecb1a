// Session: runs a range of a Model's nodes, [from, to), with planned buffers.
// Whole model = [0, node_count); a head = [0, cut.position); a tail =
// [cut.position, node_count).
//
// The first run at a batch size plans the buffers (graph/planner.hpp) and
// grows the arena if needed; later runs at any batch size seen before
// allocate nothing. Outputs are views into the arena, valid until the next
// run. A Session is single-threaded; the Model it reads is shared and must
// outlive it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"
#include "salted/graph/model.hpp"
#include "salted/graph/planner.hpp"

namespace salted {
namespace graph {

class Session {
public:
    Session() = default;

    static Result<Session> create(const Model& model, int from, int to) {
        const int n = model.node_count();
        if (from < 0 || to > n || from > to)
            return make_error(Errc::out_of_range, "session: range: expected 0 <= from <= to <= %d, found [%d, %d)", n,
                              from, to);
        Session s;
        s.model_ = &model;
        s.from_ = from;
        s.to_ = to;
        s.inputs_ = range_inputs(model.topology(), from, to);
        s.outputs_ = range_outputs(model.topology(), to);
        return s;
    }
    static Result<Session> whole(const Model& model) { return create(model, 0, model.node_count()); }

    int from() const { return from_; }
    int to() const { return to_; }
    // Values the caller passes to run(), in order (Model::value(v).name).
    const std::vector<int>& input_values() const { return inputs_; }
    // Values run() returns, in order.
    const std::vector<int>& output_values() const { return outputs_; }

    // Runs the range. `inputs` follow input_values(); all share the batch
    // size (dimension 0). Returns the first output; all are in outputs().
    Result<ConstTensorView> run(const std::vector<ConstTensorView>& inputs) {
        return run(inputs.data(), inputs.size());
    }
    Result<ConstTensorView> run(const ConstTensorView* inputs, std::size_t count) {
        if (!model_) return make_error(Errc::invalid_argument, "session: not created");
        if (count != inputs_.size()) return input_count_error(count);
        if (count > 0 && (inputs[0].shape.rank() < 1 || inputs[0].shape[0] < 1))
            return make_error(Errc::shape_mismatch, "session: input '%.80s': expected a batch-first tensor, found %s",
                              model_->value(inputs_[0]).name.c_str(), inputs[0].shape.str().c_str());
        const int64_t batch = count > 0 ? inputs[0].shape[0] : 1;
        SALTED_TRY(prepare(batch));
        const Plan& plan = *plan_;
        for (std::size_t i = 0; i < count; ++i) {
            const int v = inputs_[i];
            const Shape& want = plan.shapes[static_cast<std::size_t>(v)];
            if (inputs[i].shape != want)
                return make_error(Errc::shape_mismatch, "session: input '%.80s': expected shape %s, found %s",
                                  model_->value(v).name.c_str(), want.str().c_str(), inputs[i].shape.str().c_str());
            if (!inputs[i].data)
                return make_error(Errc::invalid_argument, "session: input '%.80s': expected data, found null",
                                  model_->value(v).name.c_str());
            views_[static_cast<std::size_t>(v)] = inputs[i];
        }
        for (const Step& step : plan.steps) {
            for (std::size_t k = 0; k < step.inputs.size(); ++k)
                node_inputs_[k] = views_[static_cast<std::size_t>(step.inputs[k])];
            const TensorView out(arena_.get() + plan.offsets[static_cast<std::size_t>(step.output)],
                                 plan.shapes[static_cast<std::size_t>(step.output)]);
            const auto started = profile_ ? Clock::now() : Clock::time_point();
            Status st = step.layer->run(node_inputs_.data(), step.inputs.size(), out, workspace_.get());
            if (profile_)
                (*profile_)[static_cast<std::size_t>(step.node)] +=
                    std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count();
            if (!st.ok()) {
                const NodeInfo& node = model_->node(step.named);
                return make_error(st.code(), "session: node '%.80s' (%s): %s", node.name.c_str(), node.op.c_str(),
                                  st.message().c_str());
            }
            views_[static_cast<std::size_t>(step.output)] = out;
        }
        for (std::size_t k = 0; k < outputs_.size(); ++k) results_[k] = views_[static_cast<std::size_t>(outputs_[k])];
        return results_.empty() ? ConstTensorView() : results_[0];
    }

    // The outputs of the last run (views into the arena).
    const std::vector<ConstTensorView>& outputs() const { return results_; }
    // The plan of the last run (peak memory, offsets), or null before one.
    const Plan* plan() const { return plan_; }

    // Per-node profile: later runs add each node's wall time (nanoseconds)
    // to (*ns)[node position]. The vector is sized here, once, so profiled
    // runs still allocate nothing; null turns profiling off.
    void profile_into(std::vector<int64_t>* ns) {
        profile_ = ns;
        if (ns && model_) ns->assign(static_cast<std::size_t>(model_->node_count()), 0);
    }

private:
    using Clock = std::chrono::steady_clock;
    struct Free {
        void operator()(float* p) const { aligned_free(p); }
    };

    Error input_count_error(std::size_t count) const {
        std::string names;
        for (int v : inputs_) names += (names.empty() ? "" : ", ") + model_->value(v).name;
        return make_error(Errc::invalid_argument, "session: inputs: expected %zu (%.200s), found %zu", inputs_.size(),
                          names.c_str(), count);
    }

    // Plans for this batch size once; grows the buffers only when a new plan
    // needs more than any before.
    Status prepare(int64_t batch) {
        if (plan_ && plan_->batch == batch) return Status();
        auto it = plans_.find(batch);
        if (it == plans_.end()) {
            SALTED_ASSIGN(Plan p, plan_range(*model_, from_, to_, batch));
            it = plans_.emplace(batch, std::move(p)).first;
        }
        const Plan& p = it->second;
        SALTED_TRY(grow(arena_, arena_floats_, p.arena_floats));
        SALTED_TRY(grow(workspace_, workspace_floats_, p.workspace_floats));
        views_.resize(model_->topology().values.size());
        node_inputs_.resize(static_cast<std::size_t>(std::max(p.max_node_inputs, 1)));
        results_.resize(outputs_.size());
        plan_ = &p;
        return Status();
    }

    static Status grow(std::unique_ptr<float, Free>& buf, std::size_t& have, std::size_t need) {
        need = std::max<std::size_t>(need, 16);  // never null: ops check their workspace pointer
        if (buf && have >= need) return Status();
        float* p = aligned_alloc_floats(need);
        if (!p) return make_error(Errc::out_of_memory, "session: could not allocate %zu floats", need);
        buf.reset(p);
        have = need;
        return Status();
    }

    const Model* model_ = nullptr;
    int from_ = 0, to_ = 0;
    std::vector<int> inputs_, outputs_;
    std::map<int64_t, Plan> plans_;  // by batch size; node-based, so pointers stay valid
    const Plan* plan_ = nullptr;
    std::unique_ptr<float, Free> arena_, workspace_;
    std::size_t arena_floats_ = 0, workspace_floats_ = 0;
    std::vector<ConstTensorView> views_, node_inputs_, results_;
    std::vector<int64_t>* profile_ = nullptr;
};

}  // namespace graph
}  // namespace salted
