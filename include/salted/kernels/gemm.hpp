// SGEMM: C[M x N] (+)= A[M x K] * B[K x N], then an optional fused epilogue
// C = act(C + bias). Row-major, float32.
//
// Structure (BLIS-like, specialised for inference):
//  - A is always packed in MR-row panels. Layers pack their weights once at
//    create(), so the hot loop never repacks them.
//  - B comes from a *source*: already packed (dense weights), or packed one
//    K x NR panel at a time from an activation (a matrix, or conv2d's im2col,
//    which writes patches straight into panel order so the im2col matrix is
//    never materialised). A panel is packed into a caller-provided slot and
//    multiplied at once, while it is hot; run() never allocates.
//  - Loops: B panel (NR) -> M block (MC) -> K block (KC) -> A panel (MR) ->
//    microkernel. A KC x NR slice of B stays in L1 while the A panels of the
//    M block stream from L2.
//  - Threads: one parallel region per GEMM, over contiguous ranges of B
//    panels (each worker packs and multiplies its own), or, when there are
//    too few panels (batch-1 late layers: 8x8 pixels), over an (M tile x
//    panel) grid. Below the work threshold everything is serial. Every
//    output element is summed in the same K order whatever the split, so
//    results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/kernels/gemm_microkernel.hpp"
#include "salted/kernels/gemm_pack.hpp"

namespace salted {
namespace kernels {

// Cache blocking. KC x NR floats of B (32 KiB at 256 x 32) stay in L1 with
// room for the A stream; MC x KC of A (256 KiB) stays in L2.
constexpr int64_t gemm_kc = 256;
constexpr int64_t gemm_mc = 32 * gemm_mr;
// Threads that pack B panels concurrently, each into its own K x NR slot of
// the workspace. Fixed, so that the workspace size does not depend on the
// thread count; a GEMM uses at most this many threads.
constexpr int64_t gemm_max_slots = 8;

// ---------------------------------------------------------------------------
// B sources. A source reports whether it is prepacked; if so panel(p) is the
// K x NR panel p, otherwise pack(p, cols, dst) writes panel p (its first
// `cols` columns valid, the rest zero) into dst.

// B already packed by gemm_pack_b (e.g. dense weights packed at create()).
struct PackedB {
    static constexpr bool prepacked = true;
    const float* data = nullptr;
    int64_t k = 0;
    const float* panel(int64_t p) const { return data + p * gemm_nr * k; }
    void pack(int64_t, int, float*) const {}
};

// B as a strided matrix, B(i, j) = b[i * rs + j * cs], packed panel by panel.
struct MatrixB {
    static constexpr bool prepacked = false;
    const float* b = nullptr;
    int64_t k = 0, rs = 0, cs = 1;
    const float* panel(int64_t) const { return nullptr; }
    void pack(int64_t p, int cols, float* dst) const { gemm_pack_b_panel(k, cols, b + p * gemm_nr * cs, rs, cs, dst); }
};

// Whether packed A (m x k) is too large to stay in L2 between B panels
// (half of a 512 KiB L2, the smallest here): kernels::gemm's 1024^3 square
// ran at 0.44 of OpenBLAS on Zen 3 with a panel at a time.
inline bool gemm_a_streams(int64_t m, int64_t k) { return m * k > 64 * 1024; }

// Workspace (floats) of gemm_blocked for a source that packs on demand: one
// K x NR panel per slot.
inline int64_t gemm_b_workspace_floats(int64_t k, int64_t n) {
    return std::min<int64_t>((n + gemm_nr - 1) / gemm_nr, gemm_max_slots) * gemm_nr * k;
}

namespace detail {

// Computes rows [m0, m1) x panels [p0, p1) of C. m0 is a multiple of MR;
// panel_at(p) gives the K x NR panel p of B.
template <class PanelAt>
inline void gemm_compute(int64_t m, int64_t n, int64_t k, int64_t m0, int64_t m1, int64_t p0, int64_t p1,
                         const float* a_packed, const PanelAt& panel_at, float* c, int64_t ldc,
                         const GemmEpilogue* ep, bool accumulate) {
    constexpr int MR = gemm_mr, NR = gemm_nr;
    for (int64_t mb = m0; mb < m1; mb += gemm_mc) {
        const int64_t mend = std::min(m1, mb + gemm_mc);
        // Equal K blocks of at most KC: 800 = 4 x 200 rather than 3 x 256 + 32,
        // whose short last block would reload and store C for little work.
        const int64_t kblocks = (k + gemm_kc - 1) / gemm_kc;
        const int64_t kstep = (k + kblocks - 1) / kblocks;
        for (int64_t pc = 0; pc < k; pc += kstep) {
            const int64_t kc = std::min(kstep, k - pc);
            const bool first = pc == 0, last = pc + kc == k;
            for (int64_t p = p0; p < p1; ++p) {
                const float* bp = panel_at(p) + pc * NR;
                const int64_t col0 = p * NR;
                const int cols = static_cast<int>(std::min<int64_t>(NR, n - col0));
                for (int64_t i = mb; i < mend; i += MR) {
                    GemmTileOut o;
                    o.c = c + i * ldc + col0;
                    o.ldc = ldc;
                    o.cols = cols;
                    o.load_c = first ? accumulate : true;
                    o.epilogue = last ? ep : nullptr;
                    o.row0 = i;
                    o.col0 = col0;
                    gemm_f32_tile(static_cast<int>(std::min<int64_t>(MR, m - i)), kc, a_packed + i * k + pc * MR,
                                  bp, NR, o);
                }
            }
        }
    }
}

}  // namespace detail

// C[m x n] (+)= A * B with A packed (gemm_pack_a) and B from `src`.
// `b_work` holds gemm_b_workspace_floats(k, n) floats unless src is prepacked
// (then it may be null). Arguments are trusted: the ops validate them.
template <class BSource>
inline void gemm_blocked(int64_t m, int64_t n, int64_t k, const float* a_packed, const BSource& src, float* b_work,
                         float* c, int64_t ldc, const GemmEpilogue& epilogue, bool accumulate) {
    constexpr int NR = gemm_nr, MR = gemm_mr;
    const GemmEpilogue* ep = epilogue.trivial() ? nullptr : &epilogue;
    const int64_t panels = (n + NR - 1) / NR;
    const int64_t flops = 2 * m * n * k;
    const int threads = threads_for_work(flops);

    // M tiles x panels, for when panels alone cannot feed every thread.
    auto run_grid = [&](int64_t p0, int64_t p1, auto panel_at, int64_t grid_flops) {
        const int64_t np = p1 - p0;
        const int64_t want_m = std::min<int64_t>((m + MR - 1) / MR, (2 * threads + np - 1) / np);
        const int64_t tile_m = round_up((m + want_m - 1) / want_m, MR);
        const int64_t mtiles = (m + tile_m - 1) / tile_m;
        parallel_for(mtiles * np, grid_flops, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; ++t) {
                const int64_t mi = t / np, p = p0 + t % np;
                detail::gemm_compute(m, n, k, mi * tile_m, std::min(m, (mi + 1) * tile_m), p, p + 1, a_packed,
                                     panel_at, c, ldc, ep, accumulate);
            }
        });
    };

    if constexpr (BSource::prepacked) {
        auto panel_at = [&](int64_t p) { return src.panel(p); };
        if (threads <= 1)
            detail::gemm_compute(m, n, k, 0, m, 0, panels, a_packed, panel_at, c, ldc, ep, accumulate);
        else
            run_grid(0, panels, panel_at, flops);
        return;
    }

    auto pack = [&](int64_t p, float* dst) { src.pack(p, static_cast<int>(std::min<int64_t>(NR, n - p * NR)), dst); };
    if (threads > 1 && panels < 2 * threads && panels % threads != 0 && panels <= gemm_max_slots) {
        // Too few panels to share out evenly (batch-1 late layers: 8x8 pixels
        // are 2 panels; 3 panels on 2 threads): pack them all, then split M
        // as well.
        for (int64_t p = 0; p < panels; ++p) pack(p, b_work + p * NR * k);
        run_grid(0, panels, [&](int64_t p) -> const float* { return b_work + p * NR * k; }, flops);
        return;
    }
    // Each worker owns a slot and a contiguous range of panels: it packs a
    // panel into its slot and multiplies it at once, while it is hot in cache.
    // When packed A is larger than L2 can keep (gemm_a_streams), a panel at
    // a time would stream all of A from L3 per NR columns: then a worker
    // packs a group of panels into the slots it owns and multiplies them
    // together, each MC x KC block of A serving the whole group from L2.
    const int64_t workers = std::min<int64_t>({static_cast<int64_t>(threads), panels, gemm_max_slots});
    const int64_t group = gemm_a_streams(m, k) ? std::min(panels, gemm_max_slots) / workers : 1;  // >= 1
    parallel_for(workers, flops, [&](int64_t b, int64_t e) {
        float* slots = b_work + b * group * NR * k;  // chunks running at once have distinct b
        for (int64_t p0 = b * panels / workers; p0 < e * panels / workers; p0 += group) {
            const int64_t p1 = std::min(p0 + group, e * panels / workers);
            for (int64_t p = p0; p < p1; ++p) pack(p, slots + (p - p0) * NR * k);
            auto panel_at = [slots, p0, k](int64_t p) -> const float* { return slots + (p - p0) * gemm_nr * k; };
            detail::gemm_compute(m, n, k, 0, m, p0, p1, a_packed, panel_at, c, ldc, ep, accumulate);
        }
    });
}

// gemm_blocked on the calling thread only, for callers that already run one
// independent piece of work per thread (conv2d over the images of a batch,
// Winograd over tile blocks). `slot` holds K x NR floats unless src is
// prepacked (then it may be null). Every element is summed in the same K
// order as gemm_blocked, so results do not depend on which level is threaded.
template <class BSource>
inline void gemm_blocked_serial(int64_t m, int64_t n, int64_t k, const float* a_packed, const BSource& src,
                                float* slot, float* c, int64_t ldc, const GemmEpilogue& epilogue, bool accumulate) {
    constexpr int NR = gemm_nr;
    const GemmEpilogue* ep = epilogue.trivial() ? nullptr : &epilogue;
    const int64_t panels = (n + NR - 1) / NR;
    if constexpr (BSource::prepacked) {
        detail::gemm_compute(m, n, k, 0, m, 0, panels, a_packed, [&](int64_t p) { return src.panel(p); }, c, ldc, ep,
                             accumulate);
    } else {
        auto panel_at = [slot](int64_t) -> const float* { return slot; };
        for (int64_t p = 0; p < panels; ++p) {
            src.pack(p, static_cast<int>(std::min<int64_t>(NR, n - p * NR)), slot);
            detail::gemm_compute(m, n, k, 0, m, p, p + 1, a_packed, panel_at, c, ldc, ep, accumulate);
        }
    }
}

// Workspace (floats) for gemm().
inline int64_t gemm_workspace_floats(int64_t m, int64_t n, int64_t k) {
    return gemm_packed_a_floats(m, k) + gemm_b_workspace_floats(k, n);
}

// C[m x n] (+)= A[m x k] * B[k x n], then the epilogue. Row-major with leading
// dimensions lda >= k, ldb >= n, ldc >= n. Packs both operands into
// `workspace` (gemm_workspace_floats(m, n, k) floats); allocates nothing.
inline Status gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                   float* c, int64_t ldc, const GemmEpilogue& epilogue, bool accumulate, float* workspace) {
    if (m < 1 || n < 1 || k < 1)
        return make_error(Errc::invalid_argument, "gemm: m, n, k: expected >= 1, found %lld, %lld, %lld",
                          static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(k));
    if (lda < k || ldb < n || ldc < n)
        return make_error(Errc::invalid_argument,
                          "gemm: leading dimensions: expected lda >= %lld, ldb >= %lld, ldc >= %lld, found %lld, "
                          "%lld, %lld",
                          static_cast<long long>(k), static_cast<long long>(n), static_cast<long long>(n),
                          static_cast<long long>(lda), static_cast<long long>(ldb), static_cast<long long>(ldc));
    if (!a || !b || !c)
        return make_error(Errc::invalid_argument, "gemm: a, b, c: expected non-null pointers");
    if (!workspace)
        return make_error(Errc::invalid_argument, "gemm: workspace: expected %lld floats, found null",
                          static_cast<long long>(gemm_workspace_floats(m, n, k)));
    if (epilogue.bias_kind != GemmEpilogue::Bias::none && !epilogue.bias)
        return make_error(Errc::invalid_argument, "gemm: epilogue.bias: expected a pointer for the bias kind, found null");
    SALTED_TRY(epilogue.activation.validate("gemm"));
    float* a_packed = workspace;
    gemm_pack_a(m, k, a, lda, 1, a_packed);
    MatrixB src;
    src.b = b;
    src.k = k;
    src.rs = ldb;
    src.cs = 1;
    gemm_blocked(m, n, k, a_packed, src, workspace + gemm_packed_a_floats(m, k), c, ldc, epilogue, accumulate);
    return Status();
}

namespace ref {
// Scalar twin of kernels::gemm: the textbook triple loop, summed in double.
inline void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                 int64_t ldc, const GemmEpilogue& epilogue, bool accumulate) {
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double s = accumulate ? c[i * ldc + j] : 0.0;
            for (int64_t p = 0; p < k; ++p) s += double(a[i * lda + p]) * double(b[p * ldb + j]);
            if (epilogue.bias_kind == GemmEpilogue::Bias::per_row) s += epilogue.bias[i];
            if (epilogue.bias_kind == GemmEpilogue::Bias::per_column) s += epilogue.bias[j];
            c[i * ldc + j] = epilogue.activation.apply(static_cast<float>(s));
        }
}
}  // namespace ref

}  // namespace kernels
}  // namespace salted
