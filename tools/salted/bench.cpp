// `salted bench`: how fast a model runs here, on this machine, as the engine
// runs it in production (one Session reused, so steady-state runs allocate
// nothing).
//
// Inputs are seeded pseudo-random values in [-1, 1) and one random valid salt
// per row: the time of these models does not depend on the values. After
// --warmup runs (which also plan the buffers), --iters runs are timed one by
// one; the median is the figure to quote (the machine is shared, so min and
// max show the spread). --micro-batch M runs at most M items at a time (0,
// the default: the session chooses; with several threads, micro-batches run
// side by side, one per thread). With several threads the session times
// runs with and without its pool and keeps the faster (its first 18 runs
// probe); --fixed-threads always uses the pool. --layers adds the mean time
// of every node over the timed runs, so a user sees where the time goes.
#include <algorithm>
#include <chrono>
#include <cinttypes>

#include "common.hpp"

namespace salted_cli {

namespace {

// Deterministic inputs: a 64-bit LCG's top bits mapped to [-1, 1).
void fill_pseudo_random(float* p, int64_t n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = static_cast<float>(static_cast<double>(x >> 40) / double(1 << 23) - 1.0);
    }
}

double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

Failure cmd_bench(const Args& a) {
    if (Failure f = check_model_command_options(a, {"--batch", "--iters", "--warmup", "--micro-batch",
                                                    "--fixed-threads", "--layers", "--json"}); f.status)
        return f;
    long long batch = 1, iters = 50, warmup = 5;
    if (a.has("--batch") && !parse_int(a.get("--batch"), 1, 65536, batch))
        return usage("--batch: expected an integer in 1..65536, found '" + a.get("--batch") + "'");
    if (a.has("--iters") && !parse_int(a.get("--iters"), 1, 1000000, iters))
        return usage("--iters: expected an integer in 1..1000000, found '" + a.get("--iters") + "'");
    if (a.has("--warmup") && !parse_int(a.get("--warmup"), 0, 1000000, warmup))
        return usage("--warmup: expected an integer in 0..1000000, found '" + a.get("--warmup") + "'");
    long long micro = 0;
    if (a.has("--micro-batch") && !parse_int(a.get("--micro-batch"), 0, 65536, micro))
        return usage("--micro-batch: expected an integer in 0..65536 (0: automatic), found '" +
                     a.get("--micro-batch") + "'");
    auto m = load_model(a);
    if (!m.ok()) return fail(m.error());

    // One tensor per graph input: data inputs random, the salt input valid.
    std::vector<Tensor> owned;
    std::vector<ConstTensorView> inputs;
    std::vector<int64_t> salts;
    if (m->salted()) {
        auto s = split::draw_salts(*m, batch);
        if (!s.ok()) return fail(s.error());
        salts = std::move(s).value();
    }
    for (int v : m->topology().inputs) {
        Result<Tensor> t = Tensor();
        if (m->value(v).is_salt) {
            t = split::salt_tensor(*m, salts);
        } else {
            t = Tensor::empty(m->value_shape(v, batch));
            if (t.ok()) fill_pseudo_random(t->data(), t->shape().numel(), static_cast<uint64_t>(v) + 1);
        }
        if (!t.ok()) return fail(t.error());
        owned.push_back(std::move(t).value());
    }
    for (const Tensor& t : owned) inputs.push_back(t.view());

    auto session = graph::Session::whole(*m);
    if (!session.ok()) return fail(session.error());
    session->set_micro_batch(micro);
    session->set_adaptive_threads(!a.flag("--fixed-threads"));
    for (long long i = 0; i < warmup; ++i) {
        auto y = session->run(inputs);
        if (!y.ok()) return fail(y.error());
    }
    std::vector<int64_t> node_ns;
    if (a.flag("--layers")) session->profile_into(&node_ns);
    std::vector<double> ms(static_cast<std::size_t>(iters));
    for (long long i = 0; i < iters; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        auto y = session->run(inputs);
        const auto t1 = std::chrono::steady_clock::now();
        if (!y.ok()) return fail(y.error());
        ms[static_cast<std::size_t>(i)] = std::chrono::duration<double, std::milli>(t1 - t0).count();
    }
    session->profile_into(nullptr);

    const double med = median_of(ms);
    const double lo = *std::min_element(ms.begin(), ms.end()), hi = *std::max_element(ms.begin(), ms.end());
    const double flops = static_cast<double>(m->flops_per_item()) * static_cast<double>(batch);
    const double gflops = flops / (med * 1e6);
    const std::size_t peak = session->memory_bytes();
    const int64_t slice = session->slice_size(batch);
    const int64_t weight_bytes = m->parameter_count() * 4, kernel_bytes = m->kernel_bytes();
    const int threads = max_threads();
    // Adaptive threads (the default) may have settled on the calling thread alone.
    const bool one_thread = threads > 1 && session->runs_serially(batch);

    if (a.flag("--json")) {
        std::printf("{\"model\": %s, \"batch\": %lld, \"threads\": %d, \"iters\": %lld, \"warmup\": %lld,\n",
                    json_string(a.model).c_str(), batch, threads, iters, warmup);
        std::printf(" \"median_ms\": %.6f, \"min_ms\": %.6f, \"max_ms\": %.6f, \"per_item_ms\": %.6f, "
                    "\"mflops_per_run\": %.6f, \"gflops\": %.3f, \"peak_bytes\": %zu, \"weight_bytes\": %" PRId64
                    ", \"kernel_bytes\": %" PRId64 ", \"micro_batch\": %" PRId64
                    ", \"lanes\": %d, \"adaptive_chose_one_thread\": %s",
                    med, lo, hi, med / static_cast<double>(batch), flops / 1e6, gflops, peak, weight_bytes,
                    kernel_bytes, slice, session->last_run_lanes(),
                    one_thread ? "true" : "false");
        if (!node_ns.empty()) {
            std::printf(",\n \"layers\": [");
            for (int i = 0; i < m->node_count(); ++i) {
                const graph::NodeInfo& n = m->node(i);
                const double mean_ms = static_cast<double>(node_ns[static_cast<std::size_t>(i)]) / 1e6 / iters;
                std::printf("%s\n  {\"index\": %d, \"name\": %s, \"op\": \"%s\", \"mean_ms\": %.6f, \"mflops\": %.6f}",
                            i ? "," : "", i, json_string(n.name).c_str(), n.op.c_str(), mean_ms,
                            static_cast<double>(n.flops) * batch / 1e6);
            }
            std::printf("]");
        }
        std::printf("}\n");
        return Failure();
    }
    std::printf("model: %s\nbatch %lld", a.model.c_str(), batch);
    if (slice < batch)
        std::printf(" (in %" PRId64 " micro-batches of at most %" PRId64 "%s)", session->micro_batches(batch), slice,
                    session->last_run_lanes() > 1 ? ", side by side on the threads" : "");
    std::printf(", %d thread%s%s, %lld timed runs after %lld warm-up\n", threads, threads == 1 ? "" : "s",
                one_thread ? " (adaptive: now running on 1; --fixed-threads to force)" : "", iters, warmup);
    std::printf("median %.4f ms (min %.4f, max %.4f), %.4f ms per item, %.2f GFLOP/s (%.3f MFLOP per run)\n", med, lo,
                hi, med / static_cast<double>(batch), gflops, flops / 1e6);
    std::printf("peak memory: %.3f MB of activations, scratch and outputs (planned), %.3f MB of weights in the file, "
                "%.3f MB of prepared kernels (packed, Winograd-transformed, salt tables)\n",
                peak / 1e6, static_cast<double>(weight_bytes) / 1e6, static_cast<double>(kernel_bytes) / 1e6);
    if (!node_ns.empty()) {
        double total = 0;
        for (int64_t ns : node_ns) total += static_cast<double>(ns);
        if (session->last_run_lanes() > 1)
            std::printf("\nThe micro-batches ran side by side on %d threads: each time below is the sum of the "
                        "threads' times (in all about %d x the wall time), and GFLOP/s are per thread.",
                        session->last_run_lanes(), session->last_run_lanes());
        std::printf("\nper node (mean over the timed runs):\n  %3s  %-28s %-17s %10s %7s %10s %9s\n", "#", "name", "op",
                    "ms", "share", "MFLOP", "GFLOP/s");
        for (int i = 0; i < m->node_count(); ++i) {
            const graph::NodeInfo& n = m->node(i);
            const double ns = static_cast<double>(node_ns[static_cast<std::size_t>(i)]) / iters;
            const double mf = static_cast<double>(n.flops) * batch / 1e6;
            std::printf("  %3d  %-28.28s %-17s %10.4f %6.1f%% %10.3f %9.2f\n", i, n.name.c_str(), n.op.c_str(),
                        ns / 1e6, total > 0 ? 100.0 * ns * iters / total : 0.0, mf, ns > 0 ? mf * 1e6 / ns : 0.0);
        }
    }
    return Failure();
}

}  // namespace salted_cli
