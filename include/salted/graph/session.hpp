// Session: runs a range of a Model's nodes, [from, to), with planned buffers.
// Whole model = [0, node_count); a head = [0, cut.position); a tail =
// [cut.position, node_count).
//
// The first run at a batch size plans the buffers (graph/planner.hpp) and
// grows the arena if needed; later runs at any batch size seen before
// allocate nothing. Outputs are views into the arena, valid until the next
// run. Large batches run in micro-batches (set_micro_batch), which threads
// run side by side, one per thread, each through every layer; a batch too
// small to cut runs layer by layer with each layer split across threads.
// Each batch size's runs use the thread pool only while timing shows it is
// faster (set_adaptive_threads, graph/thread_choice.hpp). A Session is
// used by one thread at a time; the Model it reads is shared and must
// outlive it.
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
        results_.resize(outputs_.size());  // sized once
        const int64_t slice = slice_size(batch);
        if (slice >= batch) {
            Lane& lane = lanes_[0];
            SALTED_ASSIGN(const Plan* plan, plan_for(batch));
            SALTED_TRY(reserve(lane, *plan));
            lane.plan = plan;
            for (std::size_t i = 0; i < count; ++i) lane.views[static_cast<std::size_t>(inputs_[i])] = inputs[i];
            last_lanes_ = 1;
            SALTED_TRY(run_steps(lane, profile_ ? profile_->data() : nullptr));
            for (std::size_t k = 0; k < outputs_.size(); ++k)
                results_[k] = lane.views[static_cast<std::size_t>(outputs_[k])];
            return results_.empty() ? ConstTensorView() : results_[0];
        }
        return run_sliced(inputs, count, batch, slice);
    }

    // Micro-batches: the whole range on a few items at a time, so the
    // activations between layers stay in cache instead of streaming the
    // whole batch through memory at every layer. The batch is cut into
    // ceil(batch / slice) micro-batches of near-equal size (they differ by
    // at most one item) whatever the thread count, so results do not depend
    // on it. With threads, the micro-batches run on lanes, one per thread,
    // each with its own arena and scratch: a thread runs whole micro-batches
    // through every layer with no barrier between layers, and the items it
    // produces stay in its own core's cache (the two vCPUs here share none;
    // layer-by-layer splitting moved every activation between cores). Items
    // are independent (no op mixes the batch dimension), so the result is
    // the same, bit for bit, as one run on the whole batch with the same
    // kernels.
    Result<ConstTensorView> run_sliced(const ConstTensorView* inputs, std::size_t count, int64_t batch,
                                       int64_t slice) {
        const int64_t slices = (batch + slice - 1) / slice;
        const auto first_item = [&](int64_t i) { return batch * i / slices; };
        // At most two sizes: batch / slices and one more. Plan both and size
        // every lane for them before any thread starts.
        const int64_t small = batch / slices, large = (batch + slices - 1) / slices;
        SALTED_ASSIGN(const Plan* small_plan, plan_for(small));
        SALTED_ASSIGN(const Plan* large_plan, plan_for(large));
        const int lanes = static_cast<int>(std::min<int64_t>(max_threads(), slices));
        SALTED_TRY(prepare_outputs(batch));
        if (lanes_.size() < static_cast<std::size_t>(lanes)) lanes_.resize(static_cast<std::size_t>(lanes));  // kept
        for (int l = 0; l < lanes; ++l) {
            Lane& lane = lanes_[static_cast<std::size_t>(l)];
            SALTED_TRY(reserve(lane, *small_plan));
            SALTED_TRY(reserve(lane, *large_plan));
            lane.failed_slice = -1;
            if (profile_) lane.profile.assign(profile_->size(), 0);
        }
        last_lanes_ = parallel_tasks(slices, lanes, [&](int64_t i, int l) {
            Lane& lane = lanes_[static_cast<std::size_t>(l)];
            const int64_t first = first_item(i), len = first_item(i + 1) - first;
            lane.plan = len == small ? small_plan : large_plan;
            for (std::size_t k = 0; k < count; ++k)
                lane.views[static_cast<std::size_t>(inputs_[k])] = items(inputs[k], first, len);
            Status st = run_steps(lane, profile_ ? lane.profile.data() : nullptr);
            if (!st.ok()) {  // keep the lane's first failing micro-batch; the others still run
                if (lane.failed_slice < 0 || i < lane.failed_slice) {
                    lane.failed_slice = i;
                    lane.error = std::move(st);
                }
                return;
            }
            for (std::size_t k = 0; k < outputs_.size(); ++k) {
                const ConstTensorView part = lane.views[static_cast<std::size_t>(outputs_[k])];
                std::copy(part.data, part.data + part.numel(), outputs_buf_[k].data() + first * (part.numel() / len));
            }
        });
        const Lane* failed = nullptr;  // the first failing micro-batch's, as a serial run would report
        for (int l = 0; l < lanes; ++l) {
            const Lane& lane = lanes_[static_cast<std::size_t>(l)];
            if (lane.failed_slice >= 0 && (!failed || lane.failed_slice < failed->failed_slice)) failed = &lane;
            if (profile_)
                for (std::size_t n = 0; n < profile_->size(); ++n) (*profile_)[n] += lane.profile[n];
        }
        if (failed) {
            const int64_t first = first_item(failed->failed_slice), last = first_item(failed->failed_slice + 1) - 1;
            return make_error(failed->error.code(), "%s (in items %lld..%lld of the batch)",
                              failed->error.message().c_str(), static_cast<long long>(first),
                              static_cast<long long>(last));
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
    // The most items a micro-batch of a run of `batch` items holds (batch:
    // no slicing); the batch is cut into ceil(batch / that) near-equal
    // micro-batches. The automatic choice plans the range at batch 1 once.
    int64_t slice_size(int64_t batch) {
        if (batch <= 1) return 1;
        const int64_t n = micro_batch_ > 0 ? micro_batch_ : auto_micro_batch();
        return std::max<int64_t>(1, std::min(n, batch));
    }
    // How many micro-batches a run of `batch` items is cut into (1: none).
    int64_t micro_batches(int64_t batch) {
        const int64_t slice = slice_size(batch);
        return (std::max<int64_t>(batch, 1) + slice - 1) / slice;
    }

    // Automatic micro-batch (per lane: threads run micro-batches side by
    // side, so it does not depend on the thread count), the larger of
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
        if (auto_micro_batch_ == 0) {
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
            auto_micro_batch_ = std::max<int64_t>({for_kernels, for_cache, 1});
        }
        return auto_micro_batch_;
    }

    // The outputs of the last run (views into the arena).
    const std::vector<ConstTensorView>& outputs() const { return results_; }
    // The plan of the last run (peak memory, offsets), or null before one.
    // After a run in micro-batches: the plan of the larger micro-batches.
    const Plan* plan() const { return last_plan_; }
    // Threads the last run's micro-batches ran on at once (1: one thread,
    // or layer by layer; 0 before a run). Per-node profiles of such a run
    // add the time of every lane: about that many times the wall time.
    int last_run_lanes() const { return last_lanes_; }
    // Bytes this session holds for activations, scratch (every lane's) and
    // (after runs in micro-batches) the full-batch outputs: its peak memory
    // so far.
    std::size_t memory_bytes() const {
        std::size_t floats = 0;
        for (const Lane& lane : lanes_) floats += lane.arena_floats + lane.workspace_floats;
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
    // What one thread needs to run the range: its buffers and the views of
    // the values of the micro-batch it is on.
    struct Lane {
        std::unique_ptr<float, Free> arena, workspace;
        std::size_t arena_floats = 0, workspace_floats = 0;
        std::vector<ConstTensorView> views, node_inputs;
        const Plan* plan = nullptr;
        std::vector<int64_t> profile;  // per node ns of the current run, summed into *profile_ after it
        int64_t failed_slice = -1;     // the lane's first failing micro-batch of the current run
        Status error;
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

    // Runs the lane's plan on the inputs already in lane.views; `profile`
    // (per node nanoseconds) or null.
    Status run_steps(Lane& lane, int64_t* profile) const {
        const Plan& plan = *lane.plan;
        for (const Step& step : plan.steps) {
            for (std::size_t k = 0; k < step.inputs.size(); ++k)
                lane.node_inputs[k] = lane.views[static_cast<std::size_t>(step.inputs[k])];
            const TensorView out(lane.arena.get() + plan.offsets[static_cast<std::size_t>(step.output)],
                                 plan.shapes[static_cast<std::size_t>(step.output)]);
            const auto started = profile ? Clock::now() : Clock::time_point();
            Status st = step.layer->run(lane.node_inputs.data(), step.inputs.size(), out, lane.workspace.get());
            if (profile)
                profile[step.node] +=
                    std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count();
            if (!st.ok()) {
                const NodeInfo& node = model_->node(step.named);
                return make_error(st.code(), "session: node '%.80s' (%s): %s", node.name.c_str(), node.op.c_str(),
                                  st.message().c_str());
            }
            lane.views[static_cast<std::size_t>(step.output)] = out;
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

    // The plan for this batch size, made once (not thread-safe: runs plan
    // every size they need before any lane starts).
    Result<const Plan*> plan_for(int64_t batch) {
        auto it = plans_.find(batch);
        if (it == plans_.end()) {
            SALTED_ASSIGN(Plan p, plan_range(*model_, from_, to_, batch));
            it = plans_.emplace(batch, std::move(p)).first;
        }
        last_plan_ = &it->second;
        return last_plan_;
    }

    // Grows the lane's buffers when `p` needs more than any plan before, so
    // batch sizes seen before allocate nothing.
    Status reserve(Lane& lane, const Plan& p) {
        SALTED_TRY(grow(lane.arena, lane.arena_floats, p.arena_floats));
        SALTED_TRY(grow(lane.workspace, lane.workspace_floats, p.workspace_floats));
        lane.views.resize(model_->topology().values.size());
        lane.node_inputs.resize(std::max(lane.node_inputs.size(), static_cast<std::size_t>(std::max(p.max_node_inputs, 1))));
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
    const Plan* last_plan_ = nullptr;
    std::vector<Lane> lanes_ = std::vector<Lane>(1);  // lanes_[0]: the calling thread's (unsliced runs use it)
    int last_lanes_ = 0;
    std::vector<ConstTensorView> results_;
    std::vector<int64_t>* profile_ = nullptr;
    int64_t micro_batch_ = 0, auto_micro_batch_ = 0;
    bool adaptive_threads_ = true;
    std::map<int64_t, ThreadChoice> thread_choices_;  // by batch size
    std::vector<Tensor> outputs_buf_;  // micro-batched runs' outputs, for outputs_capacity_ items
    int64_t outputs_capacity_ = 0;
};

}  // namespace graph
}  // namespace salted
