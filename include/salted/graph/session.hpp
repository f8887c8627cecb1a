// Session: runs a range of a Model's nodes, [from, to), with planned buffers.
// Whole model = [0, node_count); a head = [0, cut.position); a tail =
// [cut.position, node_count).
//
// The first run at a batch size plans the buffers (graph/planner.hpp) and
// grows the arena if needed; later runs at any batch size seen before
// allocate nothing. Outputs are views into the arena, valid until the next
// run. Large batches run in micro-batches (set_micro_batch), and each batch
// size's runs use the thread pool only while timing shows it is faster
// (set_adaptive_threads, graph/thread_choice.hpp). A Session is
// single-threaded; the Model it reads is shared and must outlive it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"
#include "salted/graph/model.hpp"
#include "salted/graph/planner.hpp"
#include "salted/graph/thread_choice.hpp"

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
        if (from < to && (from < model.kept_from() || to > model.kept_to())) {
            const int released = from < model.kept_from() ? from : model.kept_to();
            return make_error(Errc::invalid_argument,
                              "session: range [%d, %d): node %d ('%.80s') was released by Model::keep_only (kept: "
                              "[%d, %d))", from, to, released, model.node(released).name.c_str(), model.kept_from(),
                              model.kept_to());
        }
        Session s;
        s.model_ = &model;
        s.layers_version_ = model.layers_version();
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
        if (!adaptive_threads_ || configured_threads() < 2 || !model_ || count == 0 || inputs[0].shape.rank() < 1)
            return run_once(inputs, count);
        auto it = thread_choices_.find(inputs[0].shape[0]);
        if (it == thread_choices_.end()) it = thread_choices_.emplace(inputs[0].shape[0], ThreadChoice()).first;
        ThreadChoice& choice = it->second;
        const ScopedThreadLimit limit(choice.next_serial() ? 1 : 0);
        const auto started = Clock::now();
        auto out = run_once(inputs, count);
        if (out.ok()) choice.record(std::chrono::duration<double>(Clock::now() - started).count());
        return out;
    }

    // Threads: by default (adaptive) each batch size's runs are timed with
    // the pool and on the calling thread alone, and the faster is kept
    // (graph/thread_choice.hpp). Off: every run uses configured_threads().
    void set_adaptive_threads(bool on) { adaptive_threads_ = on; }
    // Whether runs at `batch` currently stay on the calling thread.
    bool runs_serially(int64_t batch) const {
        auto it = thread_choices_.find(batch);
        return configured_threads() < 2 || (adaptive_threads_ && it != thread_choices_.end() && it->second.next_serial());
    }

private:
    Result<ConstTensorView> run_once(const ConstTensorView* inputs, std::size_t count) {
        if (!model_) return make_error(Errc::invalid_argument, "session: not created");
        if (model_->layers_version() != layers_version_)  // its plans point at released layers
            return make_error(Errc::invalid_argument, "session: Model::keep_only released layers after this session "
                              "was created (kept now: nodes [%d, %d)); create the session again",
                              model_->kept_from(), model_->kept_to());
        if (count != inputs_.size()) return input_count_error(count);
        if (count > 0 && (inputs[0].shape.rank() < 1 || inputs[0].shape[0] < 1))
            return make_error(Errc::shape_mismatch, "session: input '%.80s': expected a batch-first tensor, found %s",
                              model_->value(inputs_[0]).name.c_str(), inputs[0].shape.str().c_str());
        const int64_t batch = count > 0 ? inputs[0].shape[0] : 1;
        for (std::size_t i = 0; i < count; ++i) {
            const int v = inputs_[i];
            const Shape want = model_->value_shape(v, batch);
            if (inputs[i].shape != want)
                return make_error(Errc::shape_mismatch, "session: input '%.80s': expected shape %s, found %s",
                                  model_->value(v).name.c_str(), want.str().c_str(), inputs[i].shape.str().c_str());
            if (!inputs[i].data)
                return make_error(Errc::invalid_argument, "session: input '%.80s': expected data, found null",
                                  model_->value(v).name.c_str());
        }
        const int64_t slice = slice_size(batch);
        if (slice >= batch) {
            SALTED_TRY(prepare(batch));
            for (std::size_t i = 0; i < count; ++i) views_[static_cast<std::size_t>(inputs_[i])] = inputs[i];
            SALTED_TRY(run_steps());
            for (std::size_t k = 0; k < outputs_.size(); ++k)
                results_[k] = views_[static_cast<std::size_t>(outputs_[k])];
            return results_.empty() ? ConstTensorView() : results_[0];
        }
        // Micro-batches: the whole range on `slice` items at a time, so the
        // activations between layers stay in cache instead of streaming the
        // whole batch through memory at every layer. Items are independent
        // (no op mixes the batch dimension), so the result is the same, bit
        // for bit, as one run on the whole batch with the same kernels.
        SALTED_TRY(prepare_outputs(batch));
        for (int64_t first = 0; first < batch; first += slice) {
            const int64_t len = std::min(slice, batch - first);
            SALTED_TRY(prepare(len));
            for (std::size_t i = 0; i < count; ++i)
                views_[static_cast<std::size_t>(inputs_[i])] = items(inputs[i], first, len);
            Status st = run_steps();
            if (!st.ok())
                return make_error(st.code(), "%s (in items %lld..%lld of the batch)", st.message().c_str(),
                                  static_cast<long long>(first), static_cast<long long>(first + len - 1));
            for (std::size_t k = 0; k < outputs_.size(); ++k) {
                const ConstTensorView part = views_[static_cast<std::size_t>(outputs_[k])];
                std::copy(part.data, part.data + part.numel(), outputs_buf_[k].data() + first * (part.numel() / len));
            }
        }
        for (std::size_t k = 0; k < outputs_.size(); ++k) {
            const Shape shape = model_->value_shape(outputs_[k], batch);
            results_[k] = ConstTensorView(outputs_buf_[k].data(), shape);
        }
        return results_.empty() ? ConstTensorView() : results_[0];
    }

public:
    // Items per micro-batch for later runs: 0 (the default) lets the session
    // choose (auto_micro_batch()); n >= 1 runs at most n items at a time
    // (n >= the batch turns slicing off).
    void set_micro_batch(int64_t n) { micro_batch_ = std::max<int64_t>(0, n); }
    // The micro-batch size a run of `batch` items uses (batch: no slicing).
    // The automatic choice plans the range at batch 1 once.
    int64_t slice_size(int64_t batch) {
        if (batch <= 1) return 1;
        const int64_t n = micro_batch_ > 0 ? micro_batch_ : auto_micro_batch();
        return std::max<int64_t>(1, std::min(n, batch));
    }

    // Automatic micro-batch, per thread (times configured_threads(), so that
    // Conv2d can still hand whole items to threads), the larger of
    //  - enough items that the convolutions of every output size holding
    //    >= 10 % of the work see >= 512 output pixels per call: below that
    //    their GEMM rows (or Winograd tiles) are too few to fill the register
    //    tiles (WideResNet's 8x8 stage wants 8 items);
    //  - as many items as fit in 1 MiB of activations, about one core's L2
    //    (LeNet 3x32x32: 6; sensor ConvNet: 2). Scratch is not counted: it
    //    is sized for the most workers whatever the items (a Winograd
    //    layer's 1.2 MB took LeNet down to 1 item per thread, which ran 2
    //    threads at 1.25x of one instead of 1.77x).
    // Measured on the reference models at batch 64, 1 thread
    // (docs/BENCHMARKS.md): within 1-3 % of the best fixed slice on each,
    // and up to 1.25x faster than the whole batch layer by layer (the
    // sensor net, re-measured with 2 items: 90.7-90.9 ms against 90.4-91.2
    // with 1 and 92.4-101.6 with 4).
    static constexpr int64_t micro_batch_min_pixels = 512;
    static constexpr std::size_t micro_batch_cache_bytes = std::size_t(1) << 20;
    int64_t auto_micro_batch() {
        if (auto_per_thread_ == 0) {
            auto it = plans_.find(1);
            if (it == plans_.end()) {
                auto p = plan_range(*model_, from_, to_, 1);
                if (!p.ok()) return int64_t(1) << 40;  // run() reports the error when it plans
                it = plans_.emplace(1, std::move(p).value()).first;
            }
            const Plan& one = it->second;
            // Output pixels per item of every conv, with the work done at that size.
            std::vector<std::pair<int64_t, int64_t>> by_pixels;
            int64_t range_flops = 0;
            for (const Step& step : one.steps) {
                const NodeInfo& node = model_->node(step.node);
                range_flops += node.flops;
                const Shape& o = one.shapes[static_cast<std::size_t>(step.output)];
                if (node.op != "conv2d" || o.rank() != 4) continue;
                const int64_t px = std::max<int64_t>(1, o[2] * o[3]);
                auto at = std::find_if(by_pixels.begin(), by_pixels.end(),
                                       [px](const std::pair<int64_t, int64_t>& e) { return e.first == px; });
                if (at == by_pixels.end()) by_pixels.emplace_back(px, node.flops);
                else at->second += node.flops;
            }
            int64_t for_kernels = 1;
            for (const auto& e : by_pixels)
                if (e.second * 10 >= range_flops)
                    for_kernels = std::max(for_kernels, (micro_batch_min_pixels + e.first - 1) / e.first);
            const int64_t for_cache = static_cast<int64_t>(
                micro_batch_cache_bytes / std::max<std::size_t>(one.arena_floats * sizeof(float), 1));
            auto_per_thread_ = std::max<int64_t>({for_kernels, for_cache, 1});
        }
        return auto_per_thread_ * configured_threads();
    }

    // The outputs of the last run (views into the arena).
    const std::vector<ConstTensorView>& outputs() const { return results_; }
    // The plan of the last run (peak memory, offsets), or null before one.
    // After a run in micro-batches: the plan of the last micro-batch.
    const Plan* plan() const { return plan_; }
    // Bytes this session holds for activations, scratch and (after runs in
    // micro-batches) the full-batch outputs: its peak memory so far.
    std::size_t memory_bytes() const {
        std::size_t floats = arena_floats_ + workspace_floats_;
        for (const Tensor& t : outputs_buf_) floats += static_cast<std::size_t>(t.shape().numel());
        return floats * sizeof(float);
    }

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

    ConstTensorView items(ConstTensorView t, int64_t first, int64_t len) const {
        Shape shape = t.shape;
        const int64_t item = t.shape.numel() / t.shape[0];
        shape[0] = len;
        return ConstTensorView(t.data + first * item, shape);
    }

    Status run_steps() {
        const Plan& plan = *plan_;
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
        return Status();
    }

    // The sliced run's outputs at the full batch: buffers for the largest
    // batch so far, of which a run uses the first `batch` items (batch-first,
    // so they are contiguous). Grown only, like the arena, so alternating
    // batch sizes seen before allocate nothing.
    Status prepare_outputs(int64_t batch) {
        if (outputs_capacity_ >= batch) return Status();
        outputs_buf_.clear();
        for (int v : outputs_) {
            SALTED_ASSIGN(Tensor t, Tensor::empty(model_->value_shape(v, batch)));
            outputs_buf_.push_back(std::move(t));
        }
        results_.resize(outputs_.size());
        outputs_capacity_ = batch;
        return Status();
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
    int layers_version_ = 0;  // the model's when this session was created
    int from_ = 0, to_ = 0;
    std::vector<int> inputs_, outputs_;
    std::map<int64_t, Plan> plans_;  // by batch size; node-based, so pointers stay valid
    const Plan* plan_ = nullptr;
    std::unique_ptr<float, Free> arena_, workspace_;
    std::size_t arena_floats_ = 0, workspace_floats_ = 0;
    std::vector<ConstTensorView> views_, node_inputs_, results_;
    std::vector<int64_t>* profile_ = nullptr;
    int64_t micro_batch_ = 0, auto_per_thread_ = 0;
    bool adaptive_threads_ = true;
    std::map<int64_t, ThreadChoice> thread_choices_;  // by batch size
    std::vector<Tensor> outputs_buf_;  // micro-batched runs' outputs, for outputs_capacity_ items
    int64_t outputs_capacity_ = 0;
};

}  // namespace graph
}  // namespace salted
