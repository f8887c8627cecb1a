// Micro-benchmark: salted's Conv2d and Dense on the real layer shapes of the
// reference models, against OpenBLAS SGEMM and, when the build found it,
// oneDNN's dnnl_sgemm on the equivalent GEMM shape in the same run (the
// ceiling a GEMM-based engine could reach on that shape), plus a large
// square SGEMM for the machine's peak. Prints a Markdown table. Both
// libraries matter: on Zen 5, OpenBLAS 0.3.21 runs its 256-bit kernels
// (~100 GFLOP/s) while oneDNN uses AVX-512 (~180-200).
//
//   bench_layers [--iters 50] [--threads 1] [--min-sample-ms 1] [--peak 1024]
//                [--batch N] [--filter TEXT] [--list]
//
// What is timed: salted runs the whole op (im2col panels or Winograd
// transforms, GEMM, bias and the fused ReLU); SGEMM runs only the bare GEMM
// on matrices of the same shape (no im2col, no bias), so a ratio near 1 means
// the op costs what the GEMM alone costs in a tuned BLAS. The last column
// says which algorithm Conv2d chose: for `winograd` rows (3x3 stride 1) and
// `row-winograd` rows (the sensor net's (1,5)/(3,5) layers), the GFLOP/s are
// *effective*: direct-convolution FLOPs / time, as if the layer had done all
// 2*M*N*K of them; Winograd F(4x4, 3x3) does about a quarter, F(2x2, 3x3)
// (`winograd-2x2`, 8x8 maps at batch 1) 4/9, the row Winograd 3/kw of them.
// Each layer runs alone here, so its weights stay in cache between runs;
// in a model they are evicted by the other layers' (salted bench --layers
// shows that cost).
// --batch N runs every selected shape at batch N instead of its own (the
// SGEMM twin's N grows with it; rows already at N are not repeated).
// Run with OMP_WAIT_POLICY=PASSIVE (bench/run.sh does) so idle OpenMP workers
// do not spin on a shared machine.
#include <cblas.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "layer_shapes.hpp"
#include "salted/core/parallel.hpp"
#include "salted/core/tensor.hpp"
#include "salted/kernels/gemm.hpp"
#include "salted/ops/conv2d.hpp"
#include "salted/ops/dense.hpp"
#include "timer.hpp"

#if defined(SALTED_BENCH_DNNL)
#include <dnnl.h>
#include <omp.h>
#endif

// OpenBLAS extensions. Declared here rather than taken from cblas.h so the
// bench also builds when cblas.h is another implementation's header; we
// link libopenblas itself, which defines them.
extern "C" {
void openblas_set_num_threads(int num_threads);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace {

struct Options {
    int iters = 50;             // samples per system and shape
    int threads = 1;
    double min_sample_ms = 1.0; // a sample repeats the call until it lasts this long
    int peak = 1024;            // square SGEMM size for the ceiling row; 0 skips it
    std::string filter;         // only shapes whose "model layer" contains this
    int batch = 0;              // > 0: every shape at this batch size
    bool list = false;
};

bool parse_int(const char* s, int lo, int& out) {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (!s[0] || *end || v < lo || v > 1000000) return false;
    out = static_cast<int>(v);
    return true;
}

bool parse_options(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const bool has_value = i + 1 < argc;
        if (a == "--iters" && has_value) {
            if (!parse_int(argv[++i], 1, o.iters)) return false;
        } else if (a == "--threads" && has_value) {
            if (!parse_int(argv[++i], 1, o.threads)) return false;
        } else if (a == "--peak" && has_value) {
            if (!parse_int(argv[++i], 0, o.peak)) return false;
        } else if (a == "--min-sample-ms" && has_value) {
            char* end = nullptr;
            o.min_sample_ms = std::strtod(argv[++i], &end);
            if (*end || !(o.min_sample_ms >= 0 && o.min_sample_ms <= 60000)) return false;
        } else if (a == "--batch" && has_value) {
            if (!parse_int(argv[++i], 1, o.batch)) return false;
        } else if (a == "--filter" && has_value) {
            o.filter = argv[++i];
        } else if (a == "--list") {
            o.list = true;
        } else {
            return false;
        }
    }
    return true;
}

void fill_random(float* p, int64_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) p[i] = d(rng);
}

// An aligned buffer of n random floats; the bench exits on allocation failure.
salted::Tensor make_buffer(int64_t n, std::mt19937& rng) {
    auto r = salted::Tensor::empty(salted::Shape({n < 1 ? 1 : n}));
    if (!r.ok()) {
        std::fprintf(stderr, "bench_layers: %s\n", r.message().c_str());
        std::exit(1);
    }
    salted::Tensor t = std::move(*r);
    fill_random(t.data(), t.numel(), rng);
    return t;
}

[[noreturn]] void die(const char* what, const std::string& message) {
    std::fprintf(stderr, "bench_layers: %s: %s\n", what, message.c_str());
    std::exit(1);
}

struct Row {
    std::string model, layer, gemm, algo;
    int64_t batch = 1, flops = 0;
    bench::Stats salted, blas, dnnl;  // dnnl: zero when not built with oneDNN
};

// The same row-major SGEMM as a cblas_sgemm(RowMajor, ...) call, in oneDNN.
struct DnnlSgemm {
    char transa, transb;
    int64_t m, n, k;
    const float* a;
    int64_t lda;
    const float* b;
    int64_t ldb;
    float* c;
    int64_t ldc;
};

// Times salted's op, the equivalent OpenBLAS SGEMM and (if built with it)
// oneDNN's, interleaved.
template <class SaltedRun, class BlasRun>
void measure(SaltedRun& salted_run, BlasRun& blas_run, const DnnlSgemm& dnnl, const Options& o, Row& row) {
    const double target = o.min_sample_ms * 1e-3;
    std::vector<bench::TimedSystem> systems(2);
    systems[0].run = salted_run;
    systems[1].run = blas_run;
#if defined(SALTED_BENCH_DNNL)
    systems.emplace_back();
    systems[2].run = [&dnnl] {
        if (dnnl_sgemm(dnnl.transa, dnnl.transb, dnnl.m, dnnl.n, dnnl.k, 1.0f, dnnl.a, dnnl.lda, dnnl.b, dnnl.ldb,
                       0.0f, dnnl.c, dnnl.ldc) != dnnl_success)
            die("dnnl_sgemm", "failed");
    };
#else
    (void)dnnl;
#endif
    // Calibration doubles as warm-up: caches, page faults, OpenMP/BLAS threads.
    for (bench::TimedSystem& t : systems) t.reps = bench::calibrate_reps(t.run, target);
    bench::interleaved_samples(systems, o.iters);
    row.salted = bench::summarize(systems[0].samples);
    row.blas = bench::summarize(systems[1].samples);
    if (systems.size() > 2) row.dnnl = bench::summarize(systems[2].samples);
}

Row bench_conv(const bench::LayerShape& L, const Options& o, std::mt19937& rng) {
    using namespace salted;
    ops::Conv2dParams p;
    p.in_channels = L.cin;
    p.out_channels = L.cout;
    p.kernel_h = L.kh;
    p.kernel_w = L.kw;
    p.stride_h = L.sh;
    p.stride_w = L.sw;
    p.pad_top = L.pad_top;
    p.pad_left = L.pad_left;
    p.pad_bottom = L.pad_bottom;
    p.pad_right = L.pad_right;
    p.activation = ops::Activation::relu();
    const int64_t m = L.gemm_m(), n = L.gemm_n(), k = L.gemm_k();
    salted::Tensor weight = make_buffer(L.cout * L.cin * L.kh * L.kw, rng), bias = make_buffer(L.cout, rng);
    const Shape in_shape({L.batch, L.cin, L.h, L.w});
    // Told its input size, as a model's layers are (Conv2d::create).
    auto conv = ops::Conv2d::create(p, ConstTensorView(weight.data(), Shape({L.cout, L.cin, L.kh, L.kw})),
                                    ConstTensorView(bias.data(), Shape({L.cout})), in_shape);
    if (!conv.ok()) die(L.layer, conv.message());
    auto out_shape = conv->output_shape(in_shape);
    if (!out_shape.ok()) die(L.layer, out_shape.message());
    if ((*out_shape)[2] != L.out_h() || (*out_shape)[3] != L.out_w() || conv->flops(in_shape) != L.flops())
        die(L.layer, "the table's output size or FLOP count disagrees with Conv2d");
    salted::Tensor in = make_buffer(in_shape.numel(), rng), out = make_buffer(out_shape->numel(), rng);
    salted::Tensor ws = make_buffer(static_cast<int64_t>(conv->workspace_floats(in_shape)), rng);
    auto salted_run = [&] {
        Status st = conv->run(ConstTensorView(in.data(), in_shape), TensorView(out.data(), *out_shape), ws.data());
        if (!st.ok()) die(L.layer, st.message());
    };

    // The same GEMM in OpenBLAS: weights [M x K] times patches [K x N].
    salted::Tensor a = make_buffer(m * k, rng), b = make_buffer(k * n, rng), c = make_buffer(m * n, rng);
    auto blas_run = [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
                    static_cast<int>(k), 1.0f, a.data(), static_cast<int>(k), b.data(), static_cast<int>(n), 0.0f,
                    c.data(), static_cast<int>(n));
    };
    const DnnlSgemm dnnl{'N', 'N', m, n, k, a.data(), k, b.data(), n, c.data(), n};
    Row row;
    const bool plain_gemm = L.kh == 1 && L.kw == 1 && L.sh == 1 && L.sw == 1 &&
                            L.pad_top + L.pad_left + L.pad_bottom + L.pad_right == 0;
    row.algo = conv->uses_winograd_2x2(in_shape)   ? "winograd-2x2"
               : conv->uses_winograd(in_shape)     ? "winograd"
               : conv->uses_winograd_5x5(in_shape) ? "winograd-5x5"
               : conv->uses_row_winograd(in_shape) ? "row-winograd"
               : conv->uses_direct(in_shape)       ? "direct"
               : conv->uses_shallow(in_shape)      ? "shallow"
               : plain_gemm                        ? "gemm"
                                                   : "im2col";
    measure(salted_run, blas_run, dnnl, o, row);
    return row;
}

Row bench_dense(const bench::LayerShape& L, const Options& o, std::mt19937& rng) {
    using namespace salted;
    ops::DenseParams p{L.cin, L.cout, ops::Activation::relu()};
    salted::Tensor weight = make_buffer(L.cout * L.cin, rng), bias = make_buffer(L.cout, rng);
    auto d = ops::Dense::create(p, ConstTensorView(weight.data(), Shape({L.cout, L.cin})),
                                ConstTensorView(bias.data(), Shape({L.cout})));
    if (!d.ok()) die(L.layer, d.message());
    const Shape in_shape({L.batch, L.cin});
    auto out_shape = d->output_shape(in_shape);
    if (!out_shape.ok()) die(L.layer, out_shape.message());
    if (d->flops(in_shape) != L.flops()) die(L.layer, "the table's FLOP count disagrees with Dense");
    salted::Tensor in = make_buffer(in_shape.numel(), rng), out = make_buffer(out_shape->numel(), rng);
    salted::Tensor ws = make_buffer(static_cast<int64_t>(d->workspace_floats(in_shape)), rng);
    auto salted_run = [&] {
        Status st = d->run(ConstTensorView(in.data(), in_shape), TensorView(out.data(), *out_shape), ws.data());
        if (!st.ok()) die(L.layer, st.message());
    };

    // x[batch x in] * W^T with W stored [out x in], as nn.Linear over a BLAS.
    const int bm = static_cast<int>(L.batch), bn = static_cast<int>(L.cout), bk = static_cast<int>(L.cin);
    salted::Tensor c = make_buffer(L.batch * L.cout, rng);
    auto blas_run = [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bm, bn, bk, 1.0f, in.data(), bk, weight.data(), bk, 0.0f,
                    c.data(), bn);
    };
    const DnnlSgemm dnnl{'N', 'T', bm, bn, bk, in.data(), bk, weight.data(), bk, c.data(), bn};
    Row row;
    row.algo = "gemm";
    measure(salted_run, blas_run, dnnl, o, row);
    return row;
}

// Square GEMM, both sides packing both operands every call: the ceiling row.
Row bench_peak(int size, const Options& o, std::mt19937& rng) {
    using namespace salted;
    const int64_t s = size;
    salted::Tensor a = make_buffer(s * s, rng), b = make_buffer(s * s, rng), c = make_buffer(s * s, rng);
    salted::Tensor ws = make_buffer(kernels::gemm_workspace_floats(s, s, s), rng);
    auto salted_run = [&] {
        Status st = kernels::gemm(s, s, s, a.data(), s, b.data(), s, c.data(), s, kernels::GemmEpilogue(), false,
                                  ws.data());
        if (!st.ok()) die("peak gemm", st.message());
    };
    auto blas_run = [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a.data(), size, b.data(), size,
                    0.0f, c.data(), size);
    };
    const DnnlSgemm dnnl{'N', 'N', s, s, s, a.data(), s, b.data(), s, c.data(), s};
    Row row;
    row.model = "peak";
    row.layer = "square SGEMM (kernels::gemm)";
    row.gemm = std::to_string(s) + "x" + std::to_string(s) + "x" + std::to_string(s);
    row.flops = 2 * s * s * s;
    row.algo = "gemm";
    measure(salted_run, blas_run, dnnl, o, row);
    return row;
}

// The 1-minute load average, to record how busy the shared machine was.
std::string load_average() {
    char buf[64] = "(unknown)";
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
        if (!std::fgets(buf, sizeof buf, f)) std::snprintf(buf, sizeof buf, "(unknown)");
        std::fclose(f);
    }
    std::string s = buf;
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

std::string loaded_library(const void* symbol) {
    Dl_info info;
    if (dladdr(symbol, &info) && info.dli_fname) {
        char resolved[4096];
        if (realpath(info.dli_fname, resolved)) return std::string(info.dli_fname) + " -> " + resolved;
        return info.dli_fname;
    }
    return "(unknown)";
}

double gflops(int64_t flops, double seconds) { return seconds > 0 ? flops / seconds * 1e-9 : 0; }

// Microseconds with a precision that suits the magnitude ("0.42", "71.3",
// "24700"): batch-1 dense layers take well under a microsecond.
std::string us(double seconds) {
    char buf[32];
    const double v = seconds * 1e6;
    std::snprintf(buf, sizeof buf, v < 10 ? "%.2f" : v < 1000 ? "%.1f" : "%.0f", v);
    return buf;
}

std::string spread(const bench::Stats& s) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s–%s ±%.1f%%", us(s.min).c_str(), us(s.max).c_str(),
                  s.median > 0 ? 100.0 * s.mad / s.median : 0.0);
    return buf;
}

void print_row(const Row& r) {
    const double gs = gflops(r.flops, r.salted.median), gb = gflops(r.flops, r.blas.median);
    std::printf("| %s | %s | %" PRId64 " | %s | %.3g | %s | %s | %.1f | %s | %s | %.1f | %.2f | %s |",
                r.model.c_str(), r.layer.c_str(), r.batch, r.gemm.c_str(), r.flops * 1e-6,
                us(r.salted.median).c_str(), spread(r.salted).c_str(), gs, us(r.blas.median).c_str(),
                spread(r.blas).c_str(), gb, r.salted.median > 0 ? r.blas.median / r.salted.median : 0.0,
                r.algo.c_str());
    if (r.dnnl.median > 0) {
        // The faster SGEMM of the two decides the last column.
        const double best = std::min(r.blas.median, r.dnnl.median);
        std::printf(" %s | %s | %.1f | %.2f |", us(r.dnnl.median).c_str(), spread(r.dnnl).c_str(),
                    gflops(r.flops, r.dnnl.median), r.salted.median > 0 ? best / r.salted.median : 0.0);
    } else {
        std::printf(" - | - | - | - |");
    }
    std::printf("\n");
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (!parse_options(argc, argv, o)) {
        std::fprintf(stderr,
                     "usage: bench_layers [--iters N>=1 (50)] [--threads N>=1 (1)] [--min-sample-ms X (1)]\n"
                     "                    [--peak SIZE (1024; 0 skips)] [--batch N] [--filter TEXT] [--list]\n");
        return 2;
    }
    std::vector<bench::LayerShape> shapes = bench::reference_layer_shapes();
    if (o.batch > 0) {
        // Every shape at the requested batch, each (model, layer) once.
        std::vector<bench::LayerShape> at_batch;
        std::set<std::string> seen;
        for (bench::LayerShape L : shapes) {
            L.batch = o.batch;
            if (seen.insert(std::string(L.model) + "|" + L.layer).second) at_batch.push_back(L);
        }
        shapes = at_batch;
    }
    auto selected = [&](const bench::LayerShape& L) {
        return o.filter.empty() || (std::string(L.model) + " " + L.layer).find(o.filter) != std::string::npos;
    };
    if (o.list) {
        for (const auto& L : shapes)
            if (selected(L))
                std::printf("%s | %s | batch %" PRId64 " | GEMM %" PRId64 "x%" PRId64 "x%" PRId64 "\n", L.model,
                            L.layer, L.batch, L.gemm_m(), L.gemm_n(), L.gemm_k());
        return 0;
    }

    // Idle OpenBLAS workers spin for 2^28 cycles (~0.1 s) after each call
    // before they sleep, so with 2 threads on 2 cores they take the core that
    // salted's next (interleaved) run needs, and salted looks 2x slower than
    // it is. OpenBLAS reads the spin time when it loads, before main, so we
    // set the shortest one (2^4 cycles) and run ourselves again. salted's own
    // idle workers block under OMP_WAIT_POLICY=PASSIVE, so both sides then
    // pay a wake-up per call.
    if (o.threads > 1 && !std::getenv("OPENBLAS_THREAD_TIMEOUT")) {
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
        execv("/proc/self/exe", argv);
        std::fprintf(stderr, "bench_layers: could not re-run with OPENBLAS_THREAD_TIMEOUT=4; "
                             "set it yourself for fair 2-thread numbers\n");
    }
    salted::set_num_threads(o.threads);
    openblas_set_num_threads(o.threads);
#if defined(SALTED_BENCH_DNNL)
    omp_set_num_threads(o.threads);  // oneDNN (Debian's) threads through OpenMP
#endif
    const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
    const char* blas_timeout = std::getenv("OPENBLAS_THREAD_TIMEOUT");
    std::printf("salted bench_layers: %d thread(s), %d samples per system and shape, sample >= %g ms, "
                "salted max_threads() = %d, OMP_WAIT_POLICY=%s\n",
                o.threads, o.iters, o.min_sample_ms, salted::max_threads(), wait_policy ? wait_policy : "(unset)");
    std::printf("OPENBLAS_THREAD_TIMEOUT=%s; load average at start: %s\n", blas_timeout ? blas_timeout : "(unset)",
                load_average().c_str());
    std::printf("SGEMM library: %s\n", loaded_library(reinterpret_cast<void*>(&cblas_sgemm)).c_str());
    std::printf("OpenBLAS config: %s; core: %s\n", openblas_get_config(), openblas_get_corename());
#if defined(SALTED_BENCH_DNNL)
    const dnnl_version_t* dv = dnnl_version();
    std::printf("oneDNN: %d.%d.%d (%s, CPU runtime %s)\n", dv->major, dv->minor, dv->patch,
                loaded_library(reinterpret_cast<void*>(&dnnl_sgemm)).c_str(),
                dv->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
#else
    std::printf("oneDNN: not built in (apt-get install libdnnl-dev, then reconfigure)\n");
#endif
    std::printf("salted GEMM tile: MR=%d NR=%d (SIMD width %d floats)\n", salted::kernels::gemm_mr,
                salted::kernels::gemm_nr, static_cast<int>(salted::simd::width));
    std::printf("times are µs per call: median, then min–max and ±MAD as %% of the median; "
                "ratio = OpenBLAS SGEMM median / salted median (> 1: salted faster); best ratio = the faster "
                "of OpenBLAS and oneDNN / salted; algo = what salted ran (winograd and row-winograd rows: "
                "effective GFLOP/s, direct-convolution FLOPs / time)\n\n");
    std::printf("| model | layer | batch | GEMM MxNxK | MFLOP | salted µs | salted spread | salted GFLOP/s "
                "| SGEMM µs | SGEMM spread | SGEMM GFLOP/s | ratio | algo | oneDNN µs | oneDNN spread "
                "| oneDNN GFLOP/s | best ratio |\n");
    std::printf("|---|---|--:|---|--:|--:|---|--:|--:|---|--:|--:|---|--:|---|--:|--:|\n");

    std::mt19937 rng(42);
    if (o.peak > 0 && o.filter.empty()) print_row(bench_peak(o.peak, o, rng));
    for (const auto& L : shapes) {
        if (!selected(L)) continue;
        Row r = L.dense ? bench_dense(L, o, rng) : bench_conv(L, o, rng);
        r.model = L.model;
        r.layer = L.layer;
        r.batch = L.batch;
        r.gemm = std::to_string(L.gemm_m()) + "x" + std::to_string(L.gemm_n()) + "x" + std::to_string(L.gemm_k());
        r.flops = L.flops();
        print_row(r);
    }
    std::printf("\nload average at end: %s\n", load_average().c_str());
    return 0;
}
