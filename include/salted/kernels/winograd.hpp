// 3x3, stride-1 convolution by Winograd's F(4x4, 3x3) (transforms and the
// choice of F(4,3) are explained in winograd_transforms.hpp): 4x fewer
// multiplies than the direct convolution, at the price of three transforms.
//
// Data flow, per block of output tiles (4x4 output pixels each, numbered
// over the whole batch, so a block may span images):
//   1. input transform: each tile's 6x6 input patch of each input channel
//      becomes 36 values, written straight into the packed-A panel layout of
//      gemm_pack.hpp: V[xi] is a [tiles x Cin] matrix in MR-row panels;
//   2. 36 GEMMs per NR-wide panel of output channels,
//      M[xi][tiles x NR] = V[xi] * U[xi], through the shared SGEMM
//      microkernel (gemm_blocked_serial); U[xi] = (G g G^T)[xi] was packed
//      once at create() as B panels [Cin x Cout];
//   3. output transform of each tile's 36 values into 4x4 pixels, with the
//      bias and the activation fused, and partial edge tiles clipped.
// Tiles are the GEMM rows (not the columns) so that the few tiles of a
// batch-1 late layer (8x8 pixels: 4 tiles) still fill the microkernel's
// wide dimension with output channels. A block's V (36 x Cin x tiles) and its
// M panel (tiles x 36 x NR) stay in L2 between the steps.
//
// Finite inputs give the convolution within float rounding (F(4,3) error is
// ~5e-6 of max|y| at K = 9 x 256; see winograd_transforms.hpp). An Inf or
// NaN input, though, is mixed into all 16 outputs of each tile that reads
// it (the transforms add it to its neighbours), where the direct
// convolution would spread it only to the outputs whose window holds it.
//
// The driver (WinogradConv<Tiles>: blocks, GEMMs, threads, workspace) is
// shared with the row Winograd of winograd_row.hpp, whose Tiles type
// supplies 1 x 6 tiles with 8 positions and several transformed channels
// per input channel; the steps above are the same with those numbers.
//
// Threads: see run(). A block's V and M live in a slot of the caller's
// workspace, one slot per worker (at most gemm_max_slots). Every output
// value is computed by the same operations in the same order whatever the
// split, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/simd.hpp"
#include "salted/core/tensor.hpp"
#include "salted/kernels/gemm.hpp"
#include "salted/kernels/winograd_tiles.hpp"
#include "salted/kernels/winograd_transforms.hpp"
#include "salted/ops/activation.hpp"

namespace salted {
namespace kernels {

// One convolution problem for a Winograd path (trusted: the op validated
// it). Stride and dilation are 1 (the row Winograd, winograd_row.hpp, also
// takes a column stride); bottom/right padding shows only in out_h and out_w.
// The tile counts are F(4x4, 3x3)'s.
struct WinogradGeometry {
    int64_t batch = 0;
    int64_t in_h = 0, in_w = 0;
    int64_t pad_top = 0, pad_left = 0;
    int64_t stride_h = 1;  // row Winograd only
    int64_t out_h = 0, out_w = 0;
    int64_t tiles_y() const { return (out_h + winograd::tile_out - 1) / winograd::tile_out; }
    int64_t tiles_x() const { return (out_w + winograd::tile_out - 1) / winograd::tile_out; }
    int64_t tiles_per_image() const { return tiles_y() * tiles_x(); }
    int64_t tiles() const { return batch * tiles_per_image(); }
};

namespace detail {
constexpr int64_t gcd_of(int64_t a, int64_t b) { return b == 0 ? a : gcd_of(b, a % b); }
}  // namespace detail

// Tiles per block: a multiple of both the SIMD width (the input transform
// handles one tile per lane) and MR (a block is whole A panels), and no
// more: on the 32x32 WRN layers, blocks of 32 or 64 tiles measured 0-15%
// slower than 16. With 16 tiles a block's V (36 x Cin x 16 floats, 576 KiB
// at Cin = 256) stays in Zen 4's 1 MiB L2.
constexpr int64_t winograd_block_tiles =
    static_cast<int64_t>(simd::width) / detail::gcd_of(static_cast<int64_t>(simd::width), gemm_mr) * gemm_mr;

// Whether F(4x4, 3x3) can beat im2col + GEMM for a 3x3 stride-1 layer with
// these channel counts, whatever its input size: decides whether conv2d
// prepares the Winograd weights at all. Measured on Zen 4 (1 thread, batch 1,
// Cin 3..32 x Cout 8..64 x maps 4..32): with Cout = 8 three quarters of each
// NR = 32 GEMM panel is padding and Winograd lost everywhere (0.4-0.9x);
// with Cin <= 4 it lost on 32x32 maps (0.5-0.9x), where the short im2col K
// costs little; from Cin = 8, Cout = 16 it won on 16x16 and larger maps
// (1.1-2.5x, more with more channels).
inline bool winograd_channels_worth_it(int64_t in_channels, int64_t out_channels) {
    return in_channels >= 8 && out_channels >= 16;
}

// Whether it wins for this output size too: on 8x8 and smaller maps (at most
// 4 tiles per image) 16 output channels did not pay (0.6-1.0x); 32 and more did.
inline bool winograd_worth_it(int64_t in_channels, int64_t out_channels, int64_t out_h, int64_t out_w) {
    if (!winograd_channels_worth_it(in_channels, out_channels)) return false;
    const int64_t tiles_per_image = ((out_h + 3) / 4) * ((out_w + 3) / 4);
    return out_channels >= 32 || tiles_per_image > 4;
}

// Whether winograd_worth_it holds whatever the output size: conv2d then
// keeps no im2col copy of the weights.
inline bool winograd_worth_it_for_any_size(int64_t in_channels, int64_t out_channels) {
    return winograd_channels_worth_it(in_channels, out_channels) && out_channels >= 32;
}

// The position where each tile's output starts.
struct WinogradTilePos {
    int64_t image, oy, ox;  // top-left output pixel
};

// Tiles of tile x tile output pixels in rows of tiles over each image, then
// image by image; tile t0 + r's top-left output pixel goes to pos[r] and its
// side x side input patch to patches[r].
inline void locate_square_tiles(const WinogradGeometry& g, int64_t cin, int tile, int side, int64_t t0,
                                int64_t count, WinogradTilePos* pos, winograd::Patch* patches) {
    const int64_t tx_count = (g.out_w + tile - 1) / tile, per_image = (g.out_h + tile - 1) / tile * tx_count;
    for (int64_t r = 0; r < count; ++r) {
        const int64_t t = t0 + r, rem = t % per_image;
        pos[r] = WinogradTilePos{t / per_image, rem / tx_count * tile, rem % tx_count * tile};
        patches[r] =
            winograd::patch_at(pos[r].image, pos[r].oy, pos[r].ox, cin, g.in_h, g.in_w, g.pad_top, g.pad_left, side);
    }
}

// The tiling of one convolution shape (here F(4x4, 3x3); kernels/
// winograd_row.hpp has the 1-row F(6, 3) for row-wise convolutions). A
// Tiles type says how many tiles a problem has (tile_count), how many
// transform positions a tile has (positions), the
// output tile's extent (tile_h x tile_w) and how it is stored, how the weights of an (output
// channel, transformed input channel) pair become `positions` values, where
// each tile reads its input, and how one input channel of up to a SIMD
// width of tiles becomes transformed values (handed over one transformed
// channel at a time); WinogradConv does the rest.
struct Tiles3x3 {
    using Geometry = WinogradGeometry;
    using Patch = winograd::Patch;
    static constexpr int positions = winograd::positions;
    static constexpr int tile_h = winograd::tile_out, tile_w = winograd::tile_out;
    static constexpr int64_t block_tiles = winograd_block_tiles;
    // Transformed input channels per input channel.
    int phases() const { return 1; }
    // Leading transformed channels (in units of Cin) whose weights can be
    // non-zero at position xi: all of them here (RowTiles has fewer).
    int live_phases(int) const { return 1; }
    static constexpr bool has_dead_positions = false;  // whether live_phases can be less than phases
    static int64_t tile_count(const Geometry& g) { return g.tiles(); }
    // The rows and columns of a tile's input patch.
    int patch_rows() const { return winograd::tile_in; }
    int patch_cols() const { return winograd::tile_in; }

    // U = G g G^T of weight[co][k] ([Cout, Cin, 3, 3]).
    void kernel_transform(const float* weight, int64_t co, int64_t k, int64_t cin, double* u) const {
        winograd::kernel_transform(weight + (co * cin + k) * 9, u);
    }

    void locate(const Geometry& g, int64_t cin, int64_t t0, int64_t count, WinogradTilePos* pos,
                Patch* patches) const {
        locate_square_tiles(g, cin, winograd::tile_out, winograd::tile_in, t0, count, pos, patches);
    }

    // emit(0, tv): tv[xi] = B^T d B of channel c of `lanes` tiles (one per
    // lane). Every tiling's transform_input is forced inline into
    // WinogradConv::transform_input, whose per-lane-group copies GCC
    // otherwise called out of line (LeNet 15 % slower).
    template <class Emit>
    __attribute__((always_inline)) void transform_input(const Geometry& g, const float* in, const Patch* patches,
                                                        int lanes, int64_t c, const Emit& emit) const {
        simd::FloatBatch d[positions], tv[positions];
        winograd::load_patches(in, patches, lanes, c * g.in_h * g.in_w, g.in_w, d);
        winograd::input_transform(d, tv);
        emit(0, tv);
    }

    static void output_transform(const simd::FloatBatch* m, simd::FloatBatch* y) {
        winograd::output_transform(m, y);
    }

    // The valid rows x cols of tile y (y[i * 4 + j]) for `lanes` channels, channel l at dst + l * plane.
    static void store(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w, int rows, int cols,
                      int lanes) {
        winograd::store_tile(y, dst, plane, out_w, rows, cols, lanes);
    }

    // Whether whole tiles of 16 channels can be stored 8 channels at a
    // time (store_half), which WinogradConv::transform_output uses to keep
    // the output lines it writes in L1 (see there).
#if defined(SALTED_WINOGRAD_AVX512)
    static constexpr bool store_in_halves = true;
    template <int Half>
    static void store_half(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w) {
        winograd::store_tile_half_avx512<Half>(y, dst, plane, out_w);
    }
#else
    static constexpr bool store_in_halves = false;
#endif
};

// A Winograd convolution: the driver shared by the tilings (blocks, GEMMs,
// threads, workspace), over the transformed input channels K = Cin x phases.
template <class Tiles>
class WinogradConv {
public:
    using Geometry = typename Tiles::Geometry;
    using Patch = typename Tiles::Patch;
    static constexpr int positions = Tiles::positions;

    // weight in PyTorch layout, as `tiles` reads it; bias [Cout] or null.
    // The arguments are trusted (conv2d validated them); fails only when
    // memory runs out.
    static Result<WinogradConv> create(const Tiles& tiles, int64_t in_channels, int64_t out_channels,
                                       const float* weight, const float* bias) {
        constexpr int NR = gemm_nr, P = positions;
        WinogradConv w;
        w.tiles_ = tiles;
        w.cin_ = in_channels;
        w.k_ = in_channels * tiles.phases();
        for (int xi = 0; xi < P; ++xi) w.k_at_[xi] = in_channels * tiles.live_phases(xi);
        w.cout_ = out_channels;
        w.panels_ = (out_channels + NR - 1) / NR;
        SALTED_ASSIGN(w.u_, Tensor::zeros(Shape({w.panels_, P, w.k_, NR})));
        SALTED_ASSIGN(w.bias_, Tensor::zeros(Shape({w.panels_ * NR})));
        if (bias) std::memcpy(w.bias_.data(), bias, static_cast<std::size_t>(out_channels) * sizeof(float));
        // U[xi](k, co) in B-panel order: panel co / NR, row k, column co % NR,
        // with a panel's positions next to each other, so that the GEMMs
        // (panel by panel, position by position) stream it in one sweep.
        float* u = w.u_.data();
        double t[P];
        for (int64_t co = 0; co < out_channels; ++co)
            for (int64_t k = 0; k < w.k_; ++k) {
                tiles.kernel_transform(weight, co, k, in_channels, t);
                for (int xi = 0; xi < P; ++xi)
                    u[(((co / NR) * P + xi) * w.k_ + k) * NR + co % NR] = static_cast<float>(t[xi]);
            }
        return w;
    }

    int64_t in_channels() const { return cin_; }
    int64_t out_channels() const { return cout_; }
    // Bytes of the transformed weights and the padded bias.
    int64_t kernel_bytes() const { return (u_.numel() + bias_.numel()) * static_cast<int64_t>(sizeof(float)); }

    // Tiles per block (the last block of a problem may have fewer).
    static constexpr int64_t block_tiles() { return Tiles::block_tiles; }

    // Threads that share a one-block problem, each with its own transformed
    // input (run()): more would each repeat a transform that then costs as
    // much as their share of the GEMMs, and hold V (up to ~600 KiB) each.
    static constexpr int64_t one_block_max_lanes = 4;

    // Distance between positions xi in a slot's V. Padded by a cache line:
    // unpadded, the 36 positions are a power of two apart (4 KiB at Cin =
    // 64) and fall into one L1 set, which the input transform's 36 stores
    // per channel thrash (measured: padding saved 0-15% on the 32x32 WRN layers).
    int64_t v_stride() const { return block_tiles() * k_ + 16; }
    // Distance between tiles in a slot's M: a tile's positions x NR
    // channels are contiguous, so the output transform reads one sequential
    // run per tile (the GEMMs write it with ldc = m_row()).
    static constexpr int64_t m_row() { return positions * gemm_nr; }

    // Floats of a transformed input block (V) and of `rows` tiles of an M panel.
    int64_t v_floats() const { return positions * v_stride(); }
    static constexpr int64_t m_floats(int64_t rows) { return rows * m_row(); }

    // Scratch for run(), whatever the thread count, plus 16 floats to align
    // it to cache lines whatever the caller's alignment: a slot (V and M) per
    // possible worker, at most gemm_max_slots with several blocks and
    // one_block_max_lanes with one (see run()).
    int64_t workspace_floats(const Geometry& g) const {
        const int64_t tiles = Tiles::tile_count(g);
        const int64_t blocks = (tiles + block_tiles() - 1) / block_tiles();
        if (blocks <= 1) {
            const int64_t rows = one_block_item_rows(tiles), items = panels_ * ((tiles + rows - 1) / rows);
            return std::min(one_block_max_lanes, items) * (v_floats() + m_floats(rows)) + 16;
        }
        return std::min(gemm_max_slots, blocks) * (v_floats() + m_floats(block_tiles())) + 16;
    }

    // run()'s work for the thread threshold, in FLOPs at GEMM speed: the
    // GEMMs plus, for the transforms, ~1000 per tile and channel at 36
    // positions (fewer positions in proportion), fitted to 1-thread times of
    // the WRN layers (a 16->64 32x32 layer does 4.7 MFLOP of GEMM in the time
    // of ~12). In double, so that no shape overflows it.
    int64_t work_flops(const Geometry& g) const {
        const double per_tile = 2.0 * positions * double(k_) * double(panels_ * gemm_nr) +
                                1000.0 * positions / 36.0 * double(k_ + cout_);
        return static_cast<int64_t>(std::min(double(Tiles::tile_count(g)) * per_tile, 9e18));
    }

    // out[N, Cout, out_h, out_w] = act(conv(in[N, Cin, in_h, in_w]) + bias).
    // `workspace` holds workspace_floats(g) floats; allocates nothing.
    //
    // Several blocks (batch > 1, or 32x32 maps at batch 1): the blocks are
    // shared out, each worker transforming, multiplying and writing its own.
    // One block (batch 1, maps up to 16x16): the (output-channel panel, run
    // of tiles) pieces of the GEMMs and output transform are shared out, and
    // each thread that takes one first transforms the whole input into its
    // own V. That repeats the transform (10-15 % of the layer) on every
    // thread, but no thread writes what another reads: with one V written
    // by the caller and read by the worker, each line the caller rewrote
    // had first to be taken back from the other core's cache, and on the
    // hosts here, whose two vCPUs share no cache, the caller's transform of
    // a 16x16 or 8x8 layer took 60-120 us on 2 threads against 22-35 on one
    // (WideResNet-16-4 at batch 1; the WideResNets' runs on 2 threads
    // 0.87-0.94x the time with a V per thread, bench/compare's worker). When the pool has no second
    // core to offer (another process holds it) every piece runs here on one
    // V, and the run costs what it costs on one thread; a thread that wakes
    // late and takes the last piece transforms first, which can end the
    // layer up to one transform later than one thread would. (Splitting a
    // block into halves that each transform their own tiles measured 3-8 %
    // slower on one thread, as each half streams all of U.)
    void run(const Geometry& g, const float* in, float* out, const ops::Activation& act, float* workspace) const {
        const int64_t tiles = Tiles::tile_count(g);
        if (tiles <= 0) return;
        const int64_t work = work_flops(g);
        // 64-byte aligned: M rows are whole cache lines, as the microkernel
        // stores them and the output transform loads them.
        const auto misalign = reinterpret_cast<std::uintptr_t>(workspace) % 64;
        float* aligned = workspace + (misalign % sizeof(float) == 0 ? (64 - misalign) % 64 / sizeof(float) : 0);
        // More workers than threads (up to the slots), so that the pool can
        // hand a stalled thread's share to one that runs; a chunk [b, e) of
        // workers uses slot b, and chunks running at once have distinct b.
        const int64_t blocks = (tiles + block_tiles() - 1) / block_tiles();
        if (blocks > 1) {
            const int64_t workers = std::min(blocks, gemm_max_slots);
            const int64_t slot = v_floats() + m_floats(block_tiles());
            parallel_for(workers, work, [&](int64_t b, int64_t e) {
                float* v = aligned + b * slot;
                float* m = v + v_floats();
                for (int64_t blk = b * blocks / workers; blk < e * blocks / workers; ++blk) {
                    const int64_t t0 = blk * block_tiles(), count = std::min(block_tiles(), tiles - t0);
                    WinogradTilePos pos[Tiles::block_tiles];
                    Patch patches[Tiles::block_tiles];
                    tiles_.locate(g, cin_, t0, count, pos, patches);
                    transform_input(g, in, pos, patches, count, true, v);
                    for (int64_t p = 0; p < panels_; ++p) finish_tiles(g, out, act, pos, count, v, 0, p, m);
                }
            });
            return;
        }
        WinogradTilePos pos[Tiles::block_tiles];
        Patch patches[Tiles::block_tiles];
        tiles_.locate(g, cin_, 0, tiles, pos, patches);
        const int64_t rows = one_block_item_rows(tiles), runs = (tiles + rows - 1) / rows, items = panels_ * runs;
        const int lanes = static_cast<int>(std::min<int64_t>({items, one_block_max_lanes, threads_for_work(work)}));
        // Lane k's slot starts k / lanes of the way into the workspace, as
        // a parallel_for participant's chunks (and so the several-block
        // path's slots) do: then the scratch lines one thread writes here
        // are mostly those it wrote in the other Winograd layers too, not
        // lines the other core must hand back (WRN-16-4 at batch 1 on 2
        // threads: 0.96-0.97x the time against lane k at slot k).
        const int64_t slot = v_floats() + m_floats(rows), slots = std::min(one_block_max_lanes, items);
        bool transformed[one_block_max_lanes] = {};
        parallel_tasks(items, lanes, [&](int64_t it, int lane) {
            float* v = aligned + lane * (slots / lanes) * slot;
            float* m = v + v_floats();
            if (!transformed[lane]) {
                transform_input(g, in, pos, patches, tiles, false, v);
                transformed[lane] = true;
            }
            const int64_t p = it / runs, r0 = it % runs * rows;
            finish_tiles(g, out, act, pos + r0, std::min(rows, tiles - r0), v, r0, p, m);
        });
    }

private:
    // One block's work is shared out as (output-channel panel, run of tiles)
    // items. A run of all the tiles reads each panel of U once (measured: 10 %
    // faster than MR-tile runs on a 256->256 8x8 layer at batch 1, whose U is
    // 4 MB); with fewer than 4 panels the runs are MR tiles, so that two
    // threads still get even shares (3 panels of whole runs ran 2 threads
    // slower than one on a 96->96 16x16 layer).
    int64_t one_block_item_rows(int64_t tiles) const { return panels_ >= 4 ? tiles : std::min<int64_t>(gemm_mr, tiles); }

    // Transformed channels live at position xi: the leading k_at_[xi] (a
    // constant K where the tiling has no dead positions).
    int64_t live_channels(int xi) const { return Tiles::has_dead_positions ? k_at_[xi] : k_; }

    // For `count` tiles (at most a block, starting at tile r0, an MR-panel
    // boundary, of the transformed input `v`, [positions][panels][K'][MR]
    // with positions v_stride() apart and K' = live_channels(xi)) and
    // output-channel panel p: the GEMMs into `m` ([count][positions][NR],
    // tiles m_row() apart), then the output transform. A position's GEMM
    // sums only its live channels; where there are none its M is zero.
    // Not inlined: inlined into run(), its GEMMs and the input transform
    // were laid out differently by GCC and LeNet's 5x5 layers ran 4-15 %
    // slower (alternated builds, min of 500 runs).
    __attribute__((noinline)) void finish_tiles(const Geometry& g, float* out, const ops::Activation& act,
                                                const WinogradTilePos* pos, int64_t count, const float* v,
                                                int64_t r0, int64_t p, float* m) const {
        constexpr int NR = gemm_nr, P = positions;
        for (int xi = 0; xi < P; ++xi) {
            const int64_t k = live_channels(xi);
            if (Tiles::has_dead_positions && k == 0) {
                for (int64_t r = 0; r < count; ++r) std::fill_n(m + r * m_row() + xi * NR, NR, 0.0f);
                continue;
            }
            PackedB src;
            src.data = u_.data() + (p * P + xi) * k_ * NR;  // its first k rows
            src.k = k;
            gemm_blocked_serial(count, NR, k, v + xi * v_stride() + r0 * k, src, nullptr, m + xi * NR, m_row(),
                                GemmEpilogue(), false);
        }
        switch (act.kind) {
            case ops::Activation::Kind::none:
                transform_output(g, out, [](simd::FloatBatch x) { return x; }, pos, count, p, m);
                break;
            case ops::Activation::Kind::relu:
                transform_output(g, out, [](simd::FloatBatch x) { return xsimd::max(x, simd::FloatBatch(0.0f)); },
                                 pos, count, p, m);
                break;
            case ops::Activation::Kind::leaky_relu: {
                const simd::FloatBatch slope(act.negative_slope);
                transform_output(
                    g, out,
                    [slope](simd::FloatBatch x) { return xsimd::select(x > simd::FloatBatch(0.0f), x, x * slope); },
                    pos, count, p, m);
                break;
            }
        }
    }

    // Stores the lanes of `x` (one tile each, tiles r0.. of the block) into
    // the A panels of one transformed channel: tile r goes to row r % MR of
    // panel r / MR, and panels are `panel_stride` floats apart.
    // r0 is a compile-time constant where the caller can make it one (the
    // AVX2 lane groups, transform_input), so that the switch below folds.
    __attribute__((always_inline)) static void store_lanes(const simd::FloatBatch& x, float* dst,
                                                           int64_t panel_stride, int64_t r0) {
        constexpr int W = static_cast<int>(simd::width), MR = gemm_mr;
#if defined(SALTED_WINOGRAD_AVX512)
        if constexpr (W == 16 && MR == 8) {  // two half vectors; r0 is a multiple of 16
            float* d = dst + (r0 / MR) * panel_stride;
            // Masked extracts with a full mask: the same instructions, but
            // GCC 12's cast form trips -Wuninitialized (see winograd_tiles.hpp).
            _mm256_storeu_ps(d, _mm512_maskz_extractf32x8_ps(0xff, x, 0));
            _mm256_storeu_ps(d + panel_stride, _mm512_maskz_extractf32x8_ps(0xff, x, 1));
            return;
        }
#elif defined(SALTED_WINOGRAD_AVX2)
        if constexpr (W == 8 && MR == 6) {
            // A block is 24 tiles, 4 panels of 6 rows, and r0 (a tile of
            // the block) is 0, 8 or 16, so each lane group splits over two
            // panels in one of three fixed ways: 4-, 2-float stores instead
            // of 8 scalar ones.
            static_assert(block_tiles() == 24, "the AVX2 lane stores assume 24-tile blocks");
            const __m128 lo = _mm256_castps256_ps128(x), hi = _mm256_extractf128_ps(x, 1);
            auto store2_low = [](float* p, __m128 v) { _mm_store_sd(reinterpret_cast<double*>(p), _mm_castps_pd(v)); };
            auto store2_high = [](float* p, __m128 v) { _mm_storeh_pd(reinterpret_cast<double*>(p), _mm_castps_pd(v)); };
            switch (r0) {
                case 0:  // lanes 0-5: panel 0 rows 0-5; lanes 6-7: panel 1 rows 0-1
                    _mm_storeu_ps(dst, lo);
                    store2_low(dst + 4, hi);
                    store2_high(dst + panel_stride, hi);
                    return;
                case 8:  // lanes 0-3: panel 1 rows 2-5; lanes 4-7: panel 2 rows 0-3
                    _mm_storeu_ps(dst + panel_stride + 2, lo);
                    _mm_storeu_ps(dst + 2 * panel_stride, hi);
                    return;
                default:  // 16. lanes 0-1: panel 2 rows 4-5; lanes 2-7: panel 3 rows 0-5
                    store2_low(dst + 2 * panel_stride + 4, lo);
                    store2_high(dst + 3 * panel_stride, lo);
                    _mm_storeu_ps(dst + 3 * panel_stride + 2, hi);
                    return;
            }
        }
#endif
        alignas(64) float lanes[W];
        x.store_aligned(lanes);
        for (int t = 0; t < W; ++t) {
            const int64_t r = r0 + t;
            dst[(r / MR) * panel_stride + r % MR] = lanes[t];
        }
    }

    // With several blocks the input comes from memory, not from cache (a
    // batch, or a large map: the sensor net's conv2 reads 1.35 MB per
    // image), and a block reads a short run of lines in each of Cin channel
    // planes: more concurrent streams than the hardware prefetchers follow.
    // So the transform of channel c first prefetches its tiles' lines in
    // channel c + 2 (2 measured better than 1, 3, 4 or 8 on the sensor and
    // 32x32 WRN layers; into L1, not L2). Sensor conv2 at batch 8 ran
    // 0.58x the time, at batch 1 0.90x; WRN-16-4's 64->64 32x32 conv at
    // batch 8 0.88-0.90x. With one block the input is small and already in
    // cache, and the prefetches only cost (LeNet's 8x8 conv3: 1.13x).
    static constexpr int64_t prefetch_channels_ahead = 2;
    static constexpr int64_t prefetch_max_floats = 64 * 16;  // 64 lines per channel

    // Input channel c's phase ph (0 <= ph < phases) is transformed channel ph * Cin + c.
    void transform_input(const Geometry& g, const float* in, const WinogradTilePos* pos, const Patch* patches,
                         int64_t count, bool prefetch, float* v) const {
        constexpr int W = static_cast<int>(simd::width), MR = gemm_mr, P = positions;
        const int64_t xi_stride = v_stride(), plane = g.in_h * g.in_w;
        for (int64_t r0 = 0; r0 < count; r0 += W) {
            const int lanes = static_cast<int>(std::min<int64_t>(W, count - r0));
            // The lines the lanes' patches read in one channel, as offsets
            // within the first tile's image (a block may end in the next).
            const int64_t image = pos[r0].image * cin_ * plane;
            const int64_t lo = std::max(patches[r0].offset, image);
            const int64_t last = patches[r0 + lanes - 1].offset + (tiles_.patch_rows() - 1) * g.in_w +
                                 tiles_.patch_cols();
            const int64_t hi = std::min({last, image + plane, lo + prefetch_max_floats});
            const auto channels = [&](auto group_start) {
                for (int64_t c = 0; c < cin_; ++c) {
                    if (prefetch && c + prefetch_channels_ahead < cin_)
                        for (int64_t i = lo; i < hi; i += 16)
                            prefetch_ahead(in, (c + prefetch_channels_ahead) * plane + i);
                    tiles_.transform_input(g, in, patches + r0, lanes, c, [&](int ph, const simd::FloatBatch* tv) {
                        const int64_t k = ph * cin_ + c;
                        for (int xi = 0; xi < P; ++xi)
                            if (!Tiles::has_dead_positions || k < k_at_[xi])
                                store_lanes(tv[xi], v + xi * xi_stride + k * MR, live_channels(xi) * MR,
                                            group_start);
                    });
                }
            };
#if defined(SALTED_WINOGRAD_AVX2)
            // The lane group's start as a constant: store_lanes' switch then
            // folds, out of the channel loop (measured: a jump per stored
            // position was a tenth of the sensor net's input transform).
            if constexpr (W == 8 && MR == 6) {
                if (r0 == 0) channels(std::integral_constant<int64_t, 0>());
                else if (r0 == 8) channels(std::integral_constant<int64_t, 8>());
                else channels(std::integral_constant<int64_t, 16>());
                continue;
            }
#endif
            channels(r0);
        }
    }

    // Output transform of panel `panel`'s channels, then bias, `act` and the
    // store of each tile's valid pixels.
    //
    // A tile's store writes 4 short rows into each of 16 channel planes. When
    // a plane is a multiple of 4 KiB (32x32 maps), those 16 channels' rows
    // fall into one L1 set, which holds 12 lines: every store evicted a line
    // the next tile (4 pixels to the right, same lines) was about to write,
    // and the output transform of a 16->64 32x32 layer took 880 ns per tile
    // against 250 on 28x28 or 36x36 maps. Where the tiling can store 8
    // channels at a time (Tiles::store_in_halves), groups of 4 tiles (one
    // line of a row, for adjacent tiles) are stored 8 channels at a time:
    // 8 lines per set, each written whole before it can be evicted.
    template <class Act>
    void transform_output(const Geometry& g, float* out, const Act& act, const WinogradTilePos* pos, int64_t count,
                          int64_t panel, const float* m) const {
        using B = simd::FloatBatch;
        constexpr int W = static_cast<int>(simd::width), NR = gemm_nr, P = positions;
        constexpr int TH = Tiles::tile_h, T = Tiles::tile_w, G = Tiles::store_in_halves ? 4 : 1;
        const int64_t Ho = g.out_h, Wo = g.out_w, plane = Ho * Wo;
        for (int64_t r0 = 0; r0 < count; r0 += G) {
            const int n = static_cast<int>(std::min<int64_t>(G, count - r0));
            for (int h = 0; h < NR; h += W) {
                const int64_t co0 = panel * NR + h;
                const int lanes = static_cast<int>(std::min<int64_t>(W, cout_ - co0));
                if (lanes <= 0) break;
                const B bias = B::load_unaligned(bias_.data() + co0);
                B y[G][TH * T];
                float* dst[G];
                bool halves[G];
                for (int t = 0; t < n; ++t) {
                    const WinogradTilePos& tp = pos[r0 + t];
                    const int rows = static_cast<int>(std::min<int64_t>(TH, Ho - tp.oy));
                    const int cols = static_cast<int>(std::min<int64_t>(T, Wo - tp.ox));
                    B mv[P];
                    for (int xi = 0; xi < P; ++xi) mv[xi] = B::load_unaligned(m + (r0 + t) * m_row() + xi * NR + h);
                    Tiles::output_transform(mv, y[t]);
                    for (int k = 0; k < TH * T; ++k) y[t][k] = act(y[t][k] + bias);
                    dst[t] = out + ((tp.image * cout_ + co0) * Ho + tp.oy) * Wo + tp.ox;
                    halves[t] = Tiles::store_in_halves && lanes == W && rows == TH && cols == T;
                    if (!halves[t]) Tiles::store(y[t], dst[t], plane, Wo, rows, cols, lanes);
                }
                if constexpr (Tiles::store_in_halves) {
                    for (int t = 0; t < n; ++t)
                        if (halves[t]) Tiles::template store_half<0>(y[t], dst[t], plane, Wo);
                    for (int t = 0; t < n; ++t)
                        if (halves[t]) Tiles::template store_half<1>(y[t], dst[t], plane, Wo);
                }
            }
        }
    }

    Tiles tiles_;
    int64_t cin_ = 0, k_ = 0, cout_ = 0;  // k_: transformed input channels, Cin x phases
    int64_t k_at_[positions] = {};         // the leading ones live at each position (Tiles::live_phases)
    int64_t panels_ = 0;                  // ceil(Cout / NR)
    Tensor u_;                            // [panels][positions][K][NR]: transformed weights as packed B panels
    Tensor bias_;                         // [panels * NR], zero past Cout (and everywhere without a bias)
};

// A Winograd convolution over a tiling with no parameters of its own (the
// square ones): created from the channel counts and the weights alone.
template <class Tiles>
class SquareWinogradConv : public WinogradConv<Tiles> {
public:
    SquareWinogradConv() = default;
    static Result<SquareWinogradConv> create(int64_t in_channels, int64_t out_channels, const float* weight,
                                             const float* bias) {
        SALTED_ASSIGN(WinogradConv<Tiles> w,
                      WinogradConv<Tiles>::create(Tiles(), in_channels, out_channels, weight, bias));
        return SquareWinogradConv(std::move(w));
    }

private:
    explicit SquareWinogradConv(WinogradConv<Tiles> w) : WinogradConv<Tiles>(std::move(w)) {}
};

// 3x3 stride-1 convolution by F(4x4, 3x3); weight [Cout, Cin, 3, 3].
using WinogradConv3x3 = SquareWinogradConv<Tiles3x3>;

namespace ref {
// Scalar twin of WinogradConv3x3::run: the textbook algorithm tile by tile,
// from the matrices, with the sums over input channels in double.
// in [N, Cin, H, W], weight [Cout, Cin, 3, 3].
inline void winograd_conv3x3(const WinogradGeometry& g, int64_t cin, int64_t cout, const float* in,
                             const float* weight, const float* bias, const ops::Activation& act, float* out) {
    constexpr int A = winograd::tile_in, T = winograd::tile_out, P = winograd::positions;
    const int64_t H = g.in_h, Wd = g.in_w, Ho = g.out_h, Wo = g.out_w;
    float d[P], v[P], mf[P], y[T * T];
    double u[P];
    for (int64_t n = 0; n < g.batch; ++n)
        for (int64_t ty = 0; ty < g.tiles_y(); ++ty)
            for (int64_t tx = 0; tx < g.tiles_x(); ++tx)
                for (int64_t co = 0; co < cout; ++co) {
                    double acc[P] = {};
                    for (int64_t ci = 0; ci < cin; ++ci) {
                        for (int i = 0; i < A; ++i)
                            for (int j = 0; j < A; ++j) {
                                const int64_t iy = ty * T + i - g.pad_top, ix = tx * T + j - g.pad_left;
                                d[i * A + j] = iy >= 0 && iy < H && ix >= 0 && ix < Wd
                                                   ? in[((n * cin + ci) * H + iy) * Wd + ix]
                                                   : 0.0f;
                            }
                        winograd_input_transform(d, v);
                        winograd::kernel_transform(weight + (co * cin + ci) * 9, u);
                        for (int k = 0; k < P; ++k) acc[k] += u[k] * double(v[k]);
                    }
                    for (int k = 0; k < P; ++k) mf[k] = static_cast<float>(acc[k]);
                    winograd_output_transform(mf, y);
                    for (int i = 0; i < T; ++i)
                        for (int j = 0; j < T; ++j) {
                            const int64_t oy = ty * T + i, ox = tx * T + j;
                            if (oy >= Ho || ox >= Wo) continue;
                            out[((n * cout + co) * Ho + oy) * Wo + ox] =
                                act.apply(y[i * T + j] + (bias ? bias[co] : 0.0f));
                        }
                }
}
}  // namespace ref

}  // namespace kernels
}  // namespace salted
