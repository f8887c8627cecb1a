// Winograd F(4x4, 3x3): the lane transforms against their scalar twins, the
// scalar Winograd twin and the fast kernel against the direct loop nest
// ops::ref::conv2d over a grid of awkward shapes, bit-identical results on 1
// and 2 threads, and conv2d's batch-level threading (both algorithms).
// F(2x2, 3x3) (kernels/winograd_2x2.hpp) and F(2x2, 5x5) (winograd_5x5.hpp)
// the same way, and where conv2d takes them. The
// row Winograd (polyphase F(6, 3), kernels/winograd_row.hpp) against the
// same loop nest, through conv2d.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <new>
#include <string>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/kernels/winograd.hpp"
#include "salted/kernels/winograd_2x2.hpp"
#include "salted/kernels/winograd_5x5.hpp"
#include "salted/kernels/winograd_row.hpp"
#include "salted/ops/conv2d.hpp"
#include "random_floats.hpp"

// Every operator new of this test program is counted, to check that run()
// allocates nothing once warm (the thread pool starts its threads on first use).
// GCC cannot tell that these malloc/free pairs replace new/delete.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::atomic<long> heap_allocations{0};
}
void* operator new(std::size_t n) {
    heap_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace salted;
using kernels::WinogradConv3x3;
using kernels::WinogradGeometry;
using ops::Activation;
using ops::Conv2d;
using ops::Conv2dParams;

namespace {

std::vector<float> random_floats(std::size_t n, uint32_t seed) { return ::random_floats(n, seed, 7u); }

// Lowers the work threshold so that small shapes take the threaded paths,
// and restores the defaults afterwards.
struct ThreadSetting {
    explicit ThreadSetting(int threads) {
        set_num_threads(threads);
        set_parallel_min_flops(1);
    }
    ~ThreadSetting() {
        set_num_threads(0);
        set_parallel_min_flops(default_parallel_min_flops);
    }
};

// max|a - b| / max(1, max|b|).
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
    double scale = 1, worst = 0;
    for (float v : b) scale = std::max(scale, double(std::fabs(v)));
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::fabs(double(a[i]) - double(b[i]));
        if (!(d <= worst)) worst = d;  // NaN propagates
    }
    return worst / scale;
}

// F(4,3) in float32 is a little less exact than the direct sum: measured up
// to ~3e-6 relative here (K up to 9 x 70, unscaled uniform weights); the
// PyTorch parity tolerance is 1e-4.
constexpr double winograd_tolerance = 2e-5;

Conv2dParams conv3x3(int64_t cin, int64_t cout, int64_t pt, int64_t pl, int64_t pb, int64_t pr, Activation act) {
    Conv2dParams p;
    p.in_channels = cin;
    p.out_channels = cout;
    p.kernel_h = p.kernel_w = 3;
    p.pad_top = pt;
    p.pad_left = pl;
    p.pad_bottom = pb;
    p.pad_right = pr;
    p.activation = act;
    return p;
}

struct Problem {
    Conv2dParams p;
    int64_t batch = 1, h = 1, w = 1;
    bool with_bias = true;
    std::vector<float> weight, bias, input, want;
    Shape in_shape, out_shape;

    Problem(const Conv2dParams& params, int64_t n, int64_t hh, int64_t ww, bool b, uint32_t seed)
        : p(params), batch(n), h(hh), w(ww), with_bias(b) {
        const int64_t cin_g = p.in_channels / p.groups;
        weight = random_floats(p.out_channels * cin_g * p.kernel_h * p.kernel_w, seed);
        bias = random_floats(p.out_channels, seed + 1);
        in_shape = Shape({n, p.in_channels, hh, ww});
        input = random_floats(in_shape.numel(), seed + 2);
        auto os = ops::detail::conv2d_output_shape(p, in_shape);
        REQUIRE_MESSAGE(os.ok(), os.message());
        out_shape = *os;
        want.assign(out_shape.numel(), NAN);
        REQUIRE(ops::ref::conv2d(p, ConstTensorView(input.data(), in_shape), weight_view(), bias_view(),
                                 TensorView(want.data(), out_shape))
                    .ok());
    }
    ConstTensorView weight_view() const {
        return ConstTensorView(weight.data(),
                               Shape({p.out_channels, p.in_channels / p.groups, p.kernel_h, p.kernel_w}));
    }
    ConstTensorView bias_view() const {
        return with_bias ? ConstTensorView(bias.data(), Shape({p.out_channels})) : ConstTensorView();
    }
    WinogradGeometry geometry() const {
        WinogradGeometry g;
        g.batch = batch;
        g.in_h = h;
        g.in_w = w;
        g.pad_top = p.pad_top;
        g.pad_left = p.pad_left;
        g.out_h = out_shape[2];
        g.out_w = out_shape[3];
        return g;
    }
    std::string describe() const {
        return "cin=" + std::to_string(p.in_channels) + " cout=" + std::to_string(p.out_channels) + " in=" +
               std::to_string(batch) + "x" + std::to_string(h) + "x" + std::to_string(w) + " pad=" +
               std::to_string(p.pad_top) + "," + std::to_string(p.pad_left) + "," + std::to_string(p.pad_bottom) +
               "," + std::to_string(p.pad_right) + " bias=" + std::to_string(with_bias) +
               " act=" + std::to_string(static_cast<int>(p.activation.kind));
    }
};

// The fast kernel (F(4x4) unless told otherwise) with exactly the workspace
// it asks for, followed by guard values that must survive.
template <class Kernel = WinogradConv3x3>
std::vector<float> run_kernel(const Problem& pb) {
    auto wk = Kernel::create(pb.p.in_channels, pb.p.out_channels, pb.weight.data(),
                                      pb.with_bias ? pb.bias.data() : nullptr);
    REQUIRE_MESSAGE(wk.ok(), wk.message());
    const WinogradGeometry g = pb.geometry();
    const auto need = static_cast<std::size_t>(wk->workspace_floats(g));
    std::vector<float> ws(need + 64, 777.0f), out(pb.out_shape.numel(), NAN);
    wk->run(g, pb.input.data(), out.data(), pb.p.activation, ws.data());
    for (std::size_t i = need; i < ws.size(); ++i) REQUIRE(ws[i] == 777.0f);
    return out;
}

std::vector<float> run_conv(const Conv2d& conv, const Problem& pb) {
    const std::size_t need = conv.workspace_floats(pb.in_shape);
    std::vector<float> ws(need + 64, 777.0f), out(pb.out_shape.numel(), NAN);
    auto st = conv.run(ConstTensorView(pb.input.data(), pb.in_shape), TensorView(out.data(), pb.out_shape), ws.data());
    REQUIRE_MESSAGE(st.ok(), st.message());
    for (std::size_t i = need; i < ws.size(); ++i) REQUIRE(ws[i] == 777.0f);
    return out;
}

// A grid of awkward problems for one kernel: every (cin, cout) pair in
// three variants (batch 3 in the second), a size from `sizes`, every padding
// from none to 2 (asymmetric too), activations and bias on and off.
struct Grid {
    std::vector<int64_t> cins, couts;
    std::vector<std::array<int64_t, 2>> sizes;
    int kernel = 3;             // square kernel side
    uint32_t seed = 1;
    int64_t big_product = 1000;  // cin x cout above this only on maps of at most big_pixels
    int64_t big_pixels = 100;
    int size_stride = 7;  // problem i's size: sizes[(seed_i * size_stride + variant) % sizes.size()]
};
struct GridRun {
    int ran = 0;
    int many_blocks = 0;   // problems with more tiles than one block
    int split_panels = 0;  // batch 1 with several output-channel panels
    double worst = 0;
};

// Runs `Kernel` on the grid on 1, 2 and 3 threads: within the Winograd
// tolerance of the loop nest, and bit-identical whatever the thread count.
template <class Kernel, class Tiles>
GridRun check_grid(const Grid& grid) {
    const Activation acts[] = {Activation::none(), Activation::relu(), Activation::leaky_relu(0.1f)};
    uint32_t seed = grid.seed;
    GridRun r;
    for (int64_t cin : grid.cins)
        for (int64_t cout : grid.couts)
            for (int variant = 0; variant < 3; ++variant) {
                ++seed;
                const auto& sz = grid.sizes[(seed * grid.size_stride + variant) % grid.sizes.size()];
                const int64_t pt = seed % 3, pl = (seed / 3) % 3, pb_ = (seed / 2) % 3, pr = (seed / 5) % 3;
                // Shapes whose output would be empty are conv2d's error path, not ours.
                if (sz[0] + pt + pb_ < grid.kernel || sz[1] + pl + pr < grid.kernel) continue;
                // The biggest channel counts only on small maps, to keep the double-precision reference quick.
                if (cin * cout > grid.big_product && sz[0] * sz[1] > grid.big_pixels) continue;
                const int64_t batch = variant == 1 ? 3 : 1;
                Conv2dParams p = conv3x3(cin, cout, pt, pl, pb_, pr, acts[seed % 3]);
                p.kernel_h = p.kernel_w = grid.kernel;
                Problem pb(p, batch, sz[0], sz[1], seed % 4 != 0, seed);
                std::vector<std::vector<float>> outs;
                for (int threads : {1, 2, 3}) {
                    ThreadSetting ts(threads);
                    outs.push_back(run_kernel<Kernel>(pb));
                }
                INFO(pb.describe());
                const double err = relative_error(outs[0], pb.want);
                r.worst = std::max(r.worst, err);
                CHECK(err <= winograd_tolerance);
                CHECK(outs[1] == outs[0]);
                CHECK(outs[2] == outs[0]);
                if (Tiles::tile_count(pb.geometry()) > kernels::winograd_block_tiles) ++r.many_blocks;
                if (cout > kernels::gemm_nr && batch == 1) ++r.split_panels;
                ++r.ran;
            }
    MESSAGE("worst relative error " << r.worst);
    return r;
}

}  // namespace

TEST_CASE("winograd lane transforms equal their scalar twins on every lane") {
    using B = simd::FloatBatch;
    constexpr int W = static_cast<int>(simd::width);
    auto d = random_floats(36 * W, 5);
    auto m = random_floats(36 * W, 6);
    B dv[36], vv[36], mv[36], yv[16];
    for (int k = 0; k < 36; ++k) {
        dv[k] = B::load_unaligned(d.data() + k * W);
        mv[k] = B::load_unaligned(m.data() + k * W);
    }
    kernels::winograd::input_transform(dv, vv);
    kernels::winograd::output_transform(mv, yv);
    alignas(64) float lanes_v[36][W], lanes_y[16][W];
    for (int k = 0; k < 36; ++k) vv[k].store_aligned(lanes_v[k]);
    for (int k = 0; k < 16; ++k) yv[k].store_aligned(lanes_y[k]);
    for (int t = 0; t < W; ++t) {
        float dt[36], mt[36], v_ref[36], y_ref[16];
        for (int k = 0; k < 36; ++k) {
            dt[k] = d[k * W + t];
            mt[k] = m[k * W + t];
        }
        kernels::ref::winograd_input_transform(dt, v_ref);
        kernels::ref::winograd_output_transform(mt, y_ref);
        INFO("lane " << t);
        // Inputs in [-1, 1] and coefficient sums up to 100 (B) and 289 (A):
        // a few float ulps of such values.
        for (int k = 0; k < 36; ++k) CHECK(std::fabs(lanes_v[k][t] - v_ref[k]) <= 2e-5f);
        for (int k = 0; k < 16; ++k) CHECK(std::fabs(lanes_y[k][t] - y_ref[k]) <= 5e-5f);
    }
}

TEST_CASE("winograd tile loads and stores move exactly the right elements") {
    // load_patches / store_tile take the AVX-512 transposes where available;
    // both must agree element for element with the definition, for interior
    // and edge patches (masks) and for partly filled lane groups.
    using B = simd::FloatBatch;
    namespace wg = kernels::winograd;
    constexpr int W = static_cast<int>(simd::width);
    const int64_t C = 3, H = 9, Wd = 11;
    auto in = random_floats(2 * C * H * Wd, 21);
    int patches_checked = 0;
    for (int lanes : {W, W - 3, 1}) {
        // Tiles at every offset of a 9x11 image padded by 2 on the top and left.
        std::vector<wg::Patch> tiles(W);
        std::vector<int64_t> iy0(W), ix0(W), image(W);
        for (int t = 0; t < W; ++t) {
            image[t] = t % 2;
            const int64_t oy = (t * 3) % 8, ox = (t * 5) % 10;
            tiles[t] = wg::patch_at(image[t], oy, ox, C, H, Wd, 2, 2);
            iy0[t] = oy - 2;
            ix0[t] = ox - 2;
        }
        for (int64_t c = 0; c < C; ++c) {
            B d[36];
            wg::load_patches(in.data(), tiles.data(), lanes, c * H * Wd, Wd, d);
            alignas(64) float got[36][W];
            for (int k = 0; k < 36; ++k) d[k].store_aligned(got[k]);
            for (int t = 0; t < W; ++t)
                for (int i = 0; i < 6; ++i)
                    for (int j = 0; j < 6; ++j) {
                        const int64_t y = iy0[t] + i, x = ix0[t] + j;
                        float want = 0.0f;
                        if (t < lanes && y >= 0 && y < H && x >= 0 && x < Wd)
                            want = in[((image[t] * C + c) * H + y) * Wd + x];
                        INFO("lanes " << lanes << " tile " << t << " c " << c << " (" << i << "," << j << ")");
                        REQUIRE(got[i * 6 + j][t] == want);
                    }
            patches_checked += lanes;
        }
    }
    CHECK(patches_checked == 3 * (W + W - 3 + 1));

    // Stores: whole tiles of W channels, clipped tiles, fewer channels.
    const int64_t Ho = 7, Wo = 9, plane = Ho * Wo;
    auto vals = random_floats(16 * W, 22);
    B y[16];
    for (int k = 0; k < 16; ++k) y[k] = B::load_unaligned(vals.data() + k * W);
    int stores_checked = 0;
    for (int rows : {4, 3, 1})
        for (int cols : {4, 2})
            for (int lanes : {W, 5}) {
                std::vector<float> out(W * plane, -9.0f);
                const int64_t oy = 2, ox = 3;
                wg::store_tile(y, out.data() + oy * Wo + ox, plane, Wo, rows, cols, lanes);
                for (int l = 0; l < W; ++l)
                    for (int64_t py = 0; py < Ho; ++py)
                        for (int64_t px = 0; px < Wo; ++px) {
                            const int64_t i = py - oy, j = px - ox;
                            const bool inside = l < lanes && i >= 0 && i < rows && j >= 0 && j < cols;
                            const float want = inside ? vals[(i * 4 + j) * W + l] : -9.0f;
                            INFO("rows " << rows << " cols " << cols << " lanes " << lanes);
                            REQUIRE(out[l * plane + py * Wo + px] == want);
                        }
                ++stores_checked;
            }
    CHECK(stores_checked == 12);
}

TEST_CASE("winograd kernel transform reproduces a 3x3 correlation through the three matrices") {
    // A single 6x6 tile, one channel: A^T [U (.) B^T d B] A equals the direct
    // 4x4 correlation of d with g.
    auto g = random_floats(9, 11);
    auto d = random_floats(36, 12);
    double u[36];
    kernels::winograd::kernel_transform(g.data(), u);
    float v[36], mprod[36], y[16];
    kernels::ref::winograd_input_transform(d.data(), v);
    for (int k = 0; k < 36; ++k) mprod[k] = static_cast<float>(u[k] * v[k]);
    kernels::ref::winograd_output_transform(mprod, y);
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
            double s = 0;
            for (int ky = 0; ky < 3; ++ky)
                for (int kx = 0; kx < 3; ++kx) s += double(g[ky * 3 + kx]) * d[(i + ky) * 6 + j + kx];
            CHECK(std::fabs(y[i * 4 + j] - s) <= 1e-5);
        }
}

TEST_CASE("scalar winograd twin matches the direct convolution") {
    const Activation acts[] = {Activation::none(), Activation::relu(), Activation::leaky_relu(0.2f)};
    int ran = 0;
    uint32_t seed = 300;
    for (int64_t cin : {1, 5})
        for (int64_t size : {1, 4, 7, 10}) {
            ++seed;
            Problem pb(conv3x3(cin, 3, 1 + seed % 2, (seed / 3) % 3, 1, 1 + (seed / 5) % 2, acts[seed % 3]), 2,
                       size, size + 1, seed % 2 == 0, seed);
            std::vector<float> out(pb.out_shape.numel(), NAN);
            kernels::ref::winograd_conv3x3(pb.geometry(), cin, 3, pb.input.data(), pb.weight.data(),
                                           pb.with_bias ? pb.bias.data() : nullptr, pb.p.activation, out.data());
            INFO(pb.describe());
            CHECK(relative_error(out, pb.want) <= winograd_tolerance);
            ++ran;
        }
    CHECK(ran == 8);
}

TEST_CASE("winograd kernel matches ref::conv2d over a grid, identically on 1, 2 and 3 threads") {
    // Channel counts around and between the SIMD width (16), MR (8) and NR
    // (32); sizes from 1x1 (smaller than a tile) to 33x33 (a partial tile
    // column and row).
    Grid g;
    g.cins = {1, 3, 8, 16, 17, 33, 70};
    g.couts = {1, 8, 15, 32, 33, 70};
    g.sizes = {{1, 1}, {2, 3}, {3, 3}, {4, 4}, {5, 9}, {6, 6}, {8, 8}, {11, 7}, {16, 16}, {33, 33}};
    const GridRun r = check_grid<WinogradConv3x3, kernels::Tiles3x3>(g);
    CHECK(r.ran >= 100);
    CHECK(r.split_panels >= 10);  // batch 1 with several channel panels: the split-panel path
}

TEST_CASE("winograd kernel: many blocks, blocks spanning images, wide channels") {
    // 16x16 and 32x32 maps in batches: tiles of several images share a block
    // and the threads share the blocks; a tile count that no block size divides.
    struct Case {
        int64_t cin, cout, batch, h, w;
    } cases[] = {{64, 64, 2, 32, 32}, {48, 40, 3, 13, 18}, {130, 20, 2, 16, 16}, {16, 96, 5, 9, 9}, {256, 40, 1, 8, 8}};
    uint32_t seed = 900;
    for (const auto& c : cases) {
        Problem pb(conv3x3(c.cin, c.cout, 1, 1, 1, 1, Activation::relu()), c.batch, c.h, c.w, true, ++seed);
        std::vector<std::vector<float>> outs;
        for (int threads : {1, 2, 3}) {
            ThreadSetting ts(threads);
            outs.push_back(run_kernel(pb));
        }
        INFO(pb.describe());
        CHECK(relative_error(outs[0], pb.want) <= winograd_tolerance);
        CHECK(outs[1] == outs[0]);
        CHECK(outs[2] == outs[0]);
    }
}

TEST_CASE("conv2d takes the winograd path where it qualifies, and it matches ref") {
    Problem wrn(conv3x3(64, 64, 1, 1, 1, 1, Activation::relu()), 2, 16, 16, true, 41);
    auto conv = Conv2d::create(wrn.p, wrn.weight_view(), wrn.bias_view());
    REQUIRE(conv.ok());
    CHECK(conv->uses_winograd(wrn.in_shape));
    std::vector<std::vector<float>> outs;
    for (int threads : {1, 2}) {
        ThreadSetting ts(threads);
        outs.push_back(run_conv(*conv, wrn));
    }
    CHECK(relative_error(outs[0], wrn.want) <= winograd_tolerance);
    CHECK(outs[1] == outs[0]);

    // Not 3x3 stride-1 dilation-1 ungrouped: im2col.
    auto uses = [](Conv2dParams p, Shape in) {
        std::vector<float> w(p.out_channels * (p.in_channels / p.groups) * p.kernel_h * p.kernel_w, 0.5f);
        auto c = Conv2d::create(
            p, ConstTensorView(w.data(), Shape({p.out_channels, p.in_channels / p.groups, p.kernel_h, p.kernel_w})),
            ConstTensorView());
        REQUIRE(c.ok());
        return c->uses_winograd(in);
    };
    Conv2dParams p = conv3x3(64, 64, 1, 1, 1, 1, Activation::none());
    CHECK(uses(p, Shape({1, 64, 16, 16})));
    Conv2dParams s2 = p;
    s2.stride_w = 2;
    CHECK(!uses(s2, Shape({1, 64, 16, 16})));
    Conv2dParams d2 = p;
    d2.dilation_h = 2;
    CHECK(!uses(d2, Shape({1, 64, 16, 16})));
    Conv2dParams g2 = p;
    g2.groups = 2;
    CHECK(!uses(g2, Shape({1, 64, 16, 16})));
    Conv2dParams k5 = p;
    k5.kernel_h = k5.kernel_w = 5;
    CHECK(!uses(k5, Shape({1, 64, 16, 16})));
    CHECK(!uses(p, Shape({1, 63, 16, 16})));  // invalid input: no path
}

TEST_CASE("winograd heuristic: consistent, and one conv2d switches algorithm by input size") {
    int checked = 0;
    for (int64_t cin : {1, 4, 7, 8, 16, 64, 256})
        for (int64_t cout : {1, 8, 15, 16, 31, 32, 256})
            for (int64_t hw : {1, 3, 4, 8, 9, 16, 32}) {
                const bool any = kernels::winograd_worth_it_for_any_size(cin, cout);
                const bool here = kernels::winograd_worth_it(cin, cout, hw, hw);
                const bool channels = kernels::winograd_channels_worth_it(cin, cout);
                CHECK((!any || here));       // "any size" includes this size
                CHECK((!here || channels));  // no size without the channels
                ++checked;
            }
    CHECK(checked == 7 * 7 * 7);

    // 12 -> 16: Winograd on 16x16 maps, im2col on 8x8 ones, from one object.
    Problem big(conv3x3(12, 16, 1, 1, 1, 1, Activation::relu()), 2, 16, 16, true, 61);
    Problem small(conv3x3(12, 16, 1, 1, 1, 1, Activation::relu()), 2, 8, 8, true, 61);
    auto conv = Conv2d::create(big.p, big.weight_view(), big.bias_view());
    REQUIRE(conv.ok());
    CHECK(conv->uses_winograd(big.in_shape));
    CHECK(!conv->uses_winograd(small.in_shape));
    CHECK(relative_error(run_conv(*conv, big), big.want) <= winograd_tolerance);
    CHECK(relative_error(run_conv(*conv, small), small.want) <= 1e-5);
}

TEST_CASE("conv2d batch threading: images on threads, bit-identical to one thread") {
    // im2col layers (5x5, strided, grouped, 1x1 plain GEMM) and a Winograd
    // one, at batch sizes that split evenly, unevenly (5 on 2 threads: many
    // images) and that fall back to per-GEMM threading (3 on 2 threads).
    struct Case {
        int64_t cin, cout, k, stride, groups, pad, batch, h, w;
    } cases[] = {
        {32, 32, 5, 1, 1, 0, 4, 12, 12},   // LeNet conv3-like: small per image
        {6, 9, 3, 2, 3, 1, 5, 11, 10},     // grouped, strided
        {19, 33, 1, 1, 1, 0, 8, 9, 13},    // 1x1 plain GEMM
        {7, 16, 5, 1, 1, 2, 3, 10, 12},    // 3 images on 2 threads
        {24, 40, 3, 1, 1, 1, 6, 12, 12},   // Winograd, 6 images
        {3, 8, 3, 1, 1, 1, 2, 9, 9},       // 3x3 stride 1 with few channels
    };
    uint32_t seed = 500;
    for (const auto& c : cases) {
        Conv2dParams p;
        p.in_channels = c.cin;
        p.out_channels = c.cout;
        p.kernel_h = p.kernel_w = c.k;
        p.stride_h = p.stride_w = c.stride;
        p.groups = c.groups;
        p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = c.pad;
        p.activation = Activation::leaky_relu(0.05f);
        Problem pb(p, c.batch, c.h, c.w, true, ++seed);
        auto conv = Conv2d::create(p, pb.weight_view(), pb.bias_view());
        REQUIRE(conv.ok());
        std::vector<std::vector<float>> outs;
        for (int threads : {1, 2}) {
            ThreadSetting ts(threads);
            outs.push_back(run_conv(*conv, pb));
        }
        // And with the default threshold (these layers are small: serial).
        set_num_threads(2);
        outs.push_back(run_conv(*conv, pb));
        set_num_threads(0);
        INFO(pb.describe() << " k=" << c.k << " stride=" << c.stride << " groups=" << c.groups
                           << " winograd=" << conv->uses_winograd(pb.in_shape));
        const double tol = conv->uses_winograd(pb.in_shape) ? winograd_tolerance : 1e-5;
        CHECK(relative_error(outs[0], pb.want) <= tol);
        CHECK(outs[1] == outs[0]);
        CHECK(outs[2] == outs[0]);
    }
}

TEST_CASE("conv2d workspace does not depend on the thread count") {
    Problem pb(conv3x3(32, 64, 1, 1, 1, 1, Activation::none()), 16, 8, 8, false, 77);
    auto conv = Conv2d::create(pb.p, pb.weight_view(), pb.bias_view());
    REQUIRE(conv.ok());
    Conv2dParams p5 = pb.p;
    p5.kernel_h = p5.kernel_w = 5;
    p5.pad_top = p5.pad_left = p5.pad_bottom = p5.pad_right = 2;
    std::vector<float> w5(64 * 32 * 25, 0.1f);
    auto conv5 = Conv2d::create(p5, ConstTensorView(w5.data(), Shape({64, 32, 5, 5})), ConstTensorView());
    REQUIRE(conv5.ok());
    std::vector<std::size_t> sizes;
    for (int threads : {1, 2, 3}) {
        ThreadSetting ts(threads);
        sizes.push_back(conv->workspace_floats(pb.in_shape));
        sizes.push_back(conv5->workspace_floats(pb.in_shape));
    }
    CHECK(sizes[0] == sizes[2]);
    CHECK(sizes[0] == sizes[4]);
    CHECK(sizes[1] == sizes[3]);
    CHECK(sizes[1] == sizes[5]);
    CHECK(sizes[0] > 0);
    CHECK(sizes[1] > 0);
}

TEST_CASE("conv2d run allocates nothing once warm, on both algorithms and any thread count") {
    {  // The counter sees ordinary allocations.
        const long before = heap_allocations.load();
        std::vector<float>* v = new std::vector<float>(100);
        const long seen = heap_allocations.load() - before;
        delete v;
        CHECK(seen == 2);
    }
    Problem wino(conv3x3(32, 48, 1, 1, 1, 1, Activation::relu()), 3, 12, 12, true, 91);
    Conv2dParams p5;
    p5.in_channels = 8;
    p5.out_channels = 16;
    p5.kernel_h = p5.kernel_w = 5;
    Problem im2col(p5, 4, 12, 12, true, 92);
    Conv2dParams row = p5;  // the sensor net's (1,5) stride-(1,2) layer, small
    row.kernel_h = 1;
    row.stride_w = 2;
    Problem rows(row, 3, 9, 40, true, 93);
    for (Problem* pb : {&wino, &im2col, &rows}) {
        auto conv = Conv2d::create(pb->p, pb->weight_view(), pb->bias_view());
        REQUIRE(conv.ok());
        std::vector<float> ws(conv->workspace_floats(pb->in_shape)), out(pb->out_shape.numel());
        const ConstTensorView in(pb->input.data(), pb->in_shape);
        const TensorView o(out.data(), pb->out_shape);
        for (int threads : {1, 2}) {
            ThreadSetting ts(threads);
            bool ok = conv->run(in, o, ws.data()).ok();  // warm: the pool may start its threads
            const long before = heap_allocations.load();
            for (int i = 0; i < 3; ++i) ok = ok && conv->run(in, o, ws.data()).ok();
            const long during = heap_allocations.load() - before;
            INFO("winograd=" << conv->uses_winograd(pb->in_shape) << " threads=" << threads);
            CHECK(ok);
            CHECK(during == 0);
        }
        CHECK(relative_error(out, pb->want) <= winograd_tolerance);
    }
}

// Row convs: kh x kw kernels with kh <= 3 and a row stride of 1 (kw = 3) or
// 2 (kw = 4..6), as the sensor ConvNet's (1,5)/(3,5) stride-(.,2) layers.
TEST_CASE("row winograd: conv2d on row-wise layers matches the direct loop nest, on 1 and 2 threads") {
    struct Case {
        int64_t kh, kw, sh, sw, cin, cout, batch, h, w, pt, pl, pb, pr;
    } cases[] = {
        {1, 5, 1, 2, 16, 32, 1, 9, 60, 0, 0, 0, 0},   // sensor conv2-like
        {1, 5, 1, 2, 9, 17, 3, 7, 41, 0, 0, 0, 0},    // odd channels, output width not a multiple of 4
        {3, 5, 2, 2, 12, 20, 2, 13, 46, 0, 0, 0, 0},  // sensor conv4-like
        {2, 4, 1, 2, 8, 16, 1, 10, 50, 1, 2, 0, 3},   // even kernel, asymmetric padding
        {1, 6, 2, 2, 10, 24, 2, 9, 70, 1, 1, 1, 1},   // padding above and below: zero rows
        {3, 3, 2, 1, 8, 40, 1, 11, 30, 1, 1, 1, 1},   // stride 1 along the row (3x3 Winograd needs stride 1 both ways)
        {1, 3, 1, 1, 8, 16, 4, 5, 20, 0, 1, 0, 1},    // (1,3) stride 1, batch 4
    };
    uint32_t seed = 900;
    for (const auto& c : cases) {
        Conv2dParams p;
        p.in_channels = c.cin;
        p.out_channels = c.cout;
        p.kernel_h = c.kh;
        p.kernel_w = c.kw;
        p.stride_h = c.sh;
        p.stride_w = c.sw;
        p.pad_top = c.pt;
        p.pad_left = c.pl;
        p.pad_bottom = c.pb;
        p.pad_right = c.pr;
        for (Activation act : {Activation::none(), Activation::leaky_relu(0.1f)}) {
            p.activation = act;
            ++seed;
            Problem pb(p, c.batch, c.h, c.w, seed % 2 == 0, seed);
            auto conv = Conv2d::create(p, pb.weight_view(), pb.bias_view());
            REQUIRE(conv.ok());
            INFO(pb.describe() << " kernel=" << c.kh << "x" << c.kw << " stride=" << c.sh << "," << c.sw);
            REQUIRE(conv->uses_row_winograd(pb.in_shape));
            CHECK(!conv->uses_winograd(pb.in_shape));
            CHECK(!conv->uses_direct(pb.in_shape));
            CHECK(!conv->uses_shallow(pb.in_shape));  // (1,3) on 8 channels could be shallow too: row wins
            std::vector<std::vector<float>> outs;
            for (int threads : {1, 2}) {
                ThreadSetting ts(threads);
                outs.push_back(run_conv(*conv, pb));
            }
            CHECK(relative_error(outs[0], pb.want) <= winograd_tolerance);
            CHECK(outs[1] == outs[0]);
        }
    }
}

TEST_CASE("row winograd: taken only where it saves multiplies and the output is big enough") {
    using kernels::RowTiles;
    CHECK(RowTiles::supports(1, 5, 2, 1, 1, 1));
    CHECK(RowTiles::supports(3, 5, 2, 1, 1, 1));
    CHECK(RowTiles::supports(1, 3, 1, 1, 1, 1));
    CHECK(!RowTiles::supports(3, 3, 2, 1, 1, 1));  // 2 + 1 taps: nothing saved (WideResNet's strided convs)
    CHECK(!RowTiles::supports(1, 5, 1, 1, 1, 1));  // 5 taps at stride 1 do not fit F(6, 3)
    CHECK(!RowTiles::supports(5, 5, 2, 1, 1, 1));  // more than 3 kernel rows
    CHECK(!RowTiles::supports(1, 5, 2, 1, 2, 1));  // dilated
    CHECK(!RowTiles::supports(1, 5, 2, 1, 1, 2));  // grouped
    CHECK(!RowTiles::supports(1, 5, 3, 1, 1, 1));  // stride 3
    // Small outputs stay on the direct convolution, from the same object.
    Conv2dParams p;
    p.in_channels = 16;
    p.out_channels = 32;
    p.kernel_h = 1;
    p.kernel_w = 5;
    p.stride_w = 2;
    Problem big(p, 1, 9, 40, true, 71), small(p, 1, 3, 13, true, 71);  // same weights
    auto conv = Conv2d::create(p, big.weight_view(), big.bias_view());
    REQUIRE(conv.ok());
    CHECK(conv->uses_row_winograd(big.in_shape));
    CHECK(!conv->uses_row_winograd(small.in_shape));
    CHECK(conv->uses_direct(small.in_shape));
    CHECK(relative_error(run_conv(*conv, big), big.want) <= winograd_tolerance);
    CHECK(relative_error(run_conv(*conv, small), small.want) <= 1e-5);
}

// F(2x2, 3x3): the lane transforms against the matrices, in double.
// The row F(6, 3) transforms are factored (shared sums), not the matrix
// products: within a few float roundings of B^T d and A^T m in double.
TEST_CASE("row winograd F(6, 3): factored lane transforms equal B^T d and A^T m on every lane") {
    namespace row63 = kernels::winograd::row63;
    using B = simd::FloatBatch;
    constexpr int W = static_cast<int>(simd::width);
    for (uint32_t seed : {31u, 32u, 33u}) {
        auto d = random_floats(8 * W, seed);
        auto m = random_floats(8 * W, seed + 100);
        B dv[16], ov[8], mv[8], yv[6];
        for (int k = 0; k < 8; ++k) {
            dv[2 * k] = B::load_unaligned(d.data() + k * W);  // stride 2: the odd entries are not read
            dv[2 * k + 1] = B(std::nanf(""));
            mv[k] = B::load_unaligned(m.data() + k * W);
        }
        row63::input_transform(dv, 2, ov);
        row63::output_transform(mv, yv);
        alignas(64) float lanes_o[8][W], lanes_y[6][W];
        for (int k = 0; k < 8; ++k) ov[k].store_aligned(lanes_o[k]);
        for (int k = 0; k < 6; ++k) yv[k].store_aligned(lanes_y[k]);
        // Each output row of matrix M (rows x 8) applied to x, lane t, against `got`.
        const auto check_rows = [&](const auto& M, const std::vector<float>& x, const float(*got)[W], int t) {
            for (std::size_t a = 0; a < std::size(M); ++a) {
                double want = 0, scale = 0;
                for (int i = 0; i < 8; ++i) {
                    want += M[a][i] * x[i * W + t];
                    scale += std::fabs(M[a][i] * x[i * W + t]);
                }
                CHECK(std::fabs(got[a][t] - want) <= 4e-7 * scale);
            }
        };
        for (int t = 0; t < W; ++t) {
            INFO("seed " << seed << " lane " << t);
            check_rows(row63::BT, d, lanes_o, t);
            check_rows(row63::AT, m, lanes_y, t);
        }
    }
}

TEST_CASE("winograd F(2x2): lane transforms equal B^T d B and A^T m A on every lane") {
    namespace f23 = kernels::winograd::f23;
    using B = simd::FloatBatch;
    constexpr int W = static_cast<int>(simd::width);
    auto d = random_floats(16 * W, 15);
    auto m = random_floats(16 * W, 16);
    B dv[16], vv[16], mv[16], yv[4];
    for (int k = 0; k < 16; ++k) {
        dv[k] = B::load_unaligned(d.data() + k * W);
        mv[k] = B::load_unaligned(m.data() + k * W);
    }
    f23::input_transform(dv, vv);
    f23::output_transform(mv, yv);
    alignas(64) float lanes_v[16][W], lanes_y[4][W];
    for (int k = 0; k < 16; ++k) vv[k].store_aligned(lanes_v[k]);
    for (int k = 0; k < 4; ++k) yv[k].store_aligned(lanes_y[k]);
    for (int t = 0; t < W; ++t) {
        INFO("lane " << t);
        for (int a = 0; a < 4; ++a)
            for (int b = 0; b < 4; ++b) {
                double v = 0;
                for (int i = 0; i < 4; ++i)
                    for (int j = 0; j < 4; ++j) v += f23::BT[a][i] * d[(i * 4 + j) * W + t] * f23::BT[b][j];
                CHECK(std::fabs(lanes_v[a * 4 + b][t] - v) <= 1e-6);
            }
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
                double y = 0;
                for (int i = 0; i < 4; ++i)
                    for (int j = 0; j < 4; ++j) y += f23::AT[a][i] * m[(i * 4 + j) * W + t] * f23::AT[b][j];
                CHECK(std::fabs(lanes_y[a * 2 + b][t] - y) <= 1e-6);
            }
    }
}

TEST_CASE("winograd F(2x2): kernel matches ref::conv2d over a grid, identically on 1, 2 and 3 threads") {
    // As the F(4x4) grid; the 2x2 tiles make odd sizes partial in both
    // directions. F(2, 3)'s constants are 0, +-1 and 1/2: as exact as F(4, 3) or better.
    Grid g;
    g.cins = {1, 8, 17, 70};
    g.couts = {1, 15, 32, 33, 130};
    g.sizes = {{1, 1}, {2, 3}, {3, 3}, {5, 9}, {8, 8}, {11, 7}, {16, 16}};
    g.seed = 2000;
    g.size_stride = 5;
    const GridRun r = check_grid<kernels::WinogradConv2x2, kernels::Tiles2x2>(g);
    CHECK(r.ran >= 40);
    CHECK(r.many_blocks >= 5);  // the several-block path as well as the one-block one
}

TEST_CASE("winograd F(2x2): conv2d takes it on small maps it was told to expect, and only there") {
    const Conv2dParams p = conv3x3(64, 64, 1, 1, 1, 1, Activation::relu());
    std::vector<float> w = random_floats(64 * 64 * 9, 71);
    const ConstTensorView wv(w.data(), Shape({64, 64, 3, 3}));
    auto told = Conv2d::create(p, wv, ConstTensorView(), Shape({1, 64, 8, 8}));
    auto untold = Conv2d::create(p, wv, ConstTensorView());
    auto big = Conv2d::create(p, wv, ConstTensorView(), Shape({1, 64, 16, 16}));
    REQUIRE(told.ok());
    REQUIRE(untold.ok());
    REQUIRE(big.ok());
    // 8x8 at batch 1: F(4x4) would have 4 tiles. Batch 2: 8, F(4x4) again.
    CHECK(told->uses_winograd_2x2(Shape({1, 64, 8, 8})));
    CHECK(told->uses_winograd(Shape({1, 64, 8, 8})));
    CHECK(!told->uses_winograd_2x2(Shape({2, 64, 8, 8})));
    CHECK(told->uses_winograd(Shape({2, 64, 8, 8})));
    CHECK(told->uses_winograd_2x2(Shape({4, 64, 4, 4})));  // 1 tile per image
    CHECK(!told->uses_winograd_2x2(Shape({5, 64, 4, 4})));
    CHECK(!told->uses_winograd_2x2(Shape({1, 64, 16, 16})));
    // Not told, or told of bigger maps: no F(2x2) weights, F(4x4) everywhere.
    CHECK(!untold->uses_winograd_2x2(Shape({1, 64, 8, 8})));
    CHECK(untold->uses_winograd(Shape({1, 64, 8, 8})));
    CHECK(!big->uses_winograd_2x2(Shape({1, 64, 8, 8})));
    // Layers F(4x4) does not take stay off F(2x2) too.
    Conv2dParams s2 = p;
    s2.stride_h = s2.stride_w = 2;
    auto strided = Conv2d::create(s2, wv, ConstTensorView(), Shape({1, 64, 8, 8}));
    REQUIRE(strided.ok());
    CHECK(!strided->uses_winograd_2x2(Shape({1, 64, 8, 8})));
    auto wrong = Conv2d::create(p, wv, ConstTensorView(), Shape({1, 63, 8, 8}));  // a hint that does not fit: ignored
    REQUIRE(wrong.ok());
    CHECK(!wrong->uses_winograd_2x2(Shape({1, 64, 8, 8})));
    // The F(2x2) weights are reported: 16 positions x 64 x 64 (2 panels of
    // 32 output channels) plus the padded bias.
    CHECK(told->kernel_bytes() - untold->kernel_bytes() == (16 * 64 * 64 + 64) * 4);
    CHECK(untold->kernel_bytes() == (36 * 64 * 64 + 64) * 4);  // F(4x4) only: no im2col copy at 64 -> 64

    // Through conv2d: matches the loop nest and F(4x4), bit-identical on 1 and
    // 2 threads, nothing allocated once warm.
    for (int64_t n : {1, 2}) {
        Problem pb(p, n, 8, 8, false, 72);
        pb.weight = w;
        std::vector<float> want(pb.out_shape.numel(), NAN);
        REQUIRE(ops::ref::conv2d(p, ConstTensorView(pb.input.data(), pb.in_shape), wv, ConstTensorView(),
                                 TensorView(want.data(), pb.out_shape))
                    .ok());
        std::vector<float> ws(told->workspace_floats(pb.in_shape)), out(pb.out_shape.numel(), NAN), first;
        const ConstTensorView in(pb.input.data(), pb.in_shape);
        for (int threads : {1, 2}) {
            ThreadSetting ts(threads);
            bool ok = told->run(in, TensorView(out.data(), pb.out_shape), ws.data()).ok();
            const long before = heap_allocations.load();
            for (int i = 0; i < 3; ++i) ok = ok && told->run(in, TensorView(out.data(), pb.out_shape), ws.data()).ok();
            INFO("batch " << n << " threads " << threads);
            CHECK(ok);
            CHECK(heap_allocations.load() - before == 0);
            CHECK(relative_error(out, want) <= winograd_tolerance);
            if (first.empty()) first = out;
            CHECK(out == first);
        }
        CHECK(relative_error(run_conv(*untold, pb), want) <= winograd_tolerance);
    }
}

// F(2x2, 5x5) (kernels/winograd_5x5.hpp): F(4x4, 3x3)'s input transform with
// its own G and A^T.
TEST_CASE("winograd F(2x2, 5x5): the matrices compute a 5x5 correlation, and the lane transform is A^T m A") {
    namespace wg = kernels::winograd;
    auto d = random_floats(36, 31), g = random_floats(25, 32);
    double u[36], v[36], t[6][6];
    wg::f25::kernel_transform(g.data(), u);
    for (int a = 0; a < 6; ++a)  // v = B^T d B
        for (int b = 0; b < 6; ++b) {
            double s = 0;
            for (int i = 0; i < 6; ++i)
                for (int j = 0; j < 6; ++j) s += wg::BT[a][i] * d[i * 6 + j] * wg::BT[b][j];
            v[a * 6 + b] = s;
        }
    for (int a = 0; a < 6; ++a)
        for (int b = 0; b < 6; ++b) t[a][b] = u[a * 6 + b] * v[a * 6 + b];
    for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 2; ++x) {
            double got = 0, want = 0;
            for (int a = 0; a < 6; ++a)
                for (int b = 0; b < 6; ++b) got += wg::f25::AT[y][a] * t[a][b] * wg::f25::AT[x][b];
            for (int i = 0; i < 5; ++i)
                for (int j = 0; j < 5; ++j) want += double(g[i * 5 + j]) * d[(y + i) * 6 + x + j];
            CHECK(std::fabs(got - want) <= 1e-12);
        }

    using B = simd::FloatBatch;
    constexpr int W = static_cast<int>(simd::width);
    auto m = random_floats(36 * W, 33);
    B mv[36], yv[4];
    for (int k = 0; k < 36; ++k) mv[k] = B::load_unaligned(m.data() + k * W);
    wg::f25::output_transform(mv, yv);
    alignas(64) float lanes_y[4][W];
    for (int k = 0; k < 4; ++k) yv[k].store_aligned(lanes_y[k]);
    for (int l = 0; l < W; ++l)
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
                double y = 0;
                for (int i = 0; i < 6; ++i)
                    for (int j = 0; j < 6; ++j) y += wg::f25::AT[a][i] * m[(i * 6 + j) * W + l] * wg::f25::AT[b][j];
                CHECK(std::fabs(lanes_y[a * 2 + b][l] - y) <= 2e-5);
            }
}

static Conv2dParams conv5x5(int64_t cin, int64_t cout, int64_t pt, int64_t pl, int64_t pb, int64_t pr, Activation act) {
    Conv2dParams p = conv3x3(cin, cout, pt, pl, pb, pr, act);
    p.kernel_h = p.kernel_w = 5;
    return p;
}

TEST_CASE("winograd F(2x2, 5x5): kernel matches ref::conv2d over a grid, identically on 1, 2 and 3 threads") {
    Grid g;
    g.cins = {1, 8, 17, 37};
    g.couts = {1, 15, 32, 33, 70};
    g.sizes = {{1, 1}, {3, 4}, {5, 5}, {6, 9}, {12, 12}, {13, 7}, {28, 28}};
    g.kernel = 5;
    g.seed = 3000;
    g.size_stride = 5;
    g.big_product = 600;
    g.big_pixels = 200;
    const GridRun r = check_grid<kernels::WinogradConv5x5, kernels::Tiles5x5>(g);
    CHECK(r.ran >= 40);
    CHECK(r.many_blocks >= 5);
}

TEST_CASE("winograd F(2x2, 5x5): conv2d takes it for 5x5 stride-1 ungrouped layers with enough channels") {
    auto make = [](Conv2dParams p) {
        std::vector<float> w = random_floats(p.out_channels * (p.in_channels / p.groups) * 25, 81);
        auto c = Conv2d::create(p, ConstTensorView(w.data(), Shape({p.out_channels, p.in_channels / p.groups, 5, 5})),
                                ConstTensorView());
        REQUIRE(c.ok());
        return std::move(c).value();
    };
    const Conv2dParams lenet = conv5x5(32, 32, 0, 0, 0, 0, Activation::relu());
    const Shape in({2, 32, 28, 28});
    Conv2d conv = make(lenet);
    CHECK(conv.uses_winograd_5x5(in));
    CHECK(!conv.uses_direct(in));
    CHECK(!conv.uses_winograd(in));
    Conv2dParams s2 = lenet, d2 = lenet, g2 = lenet, shallow = lenet;
    s2.stride_h = 2;
    d2.dilation_w = 2;
    g2.groups = 2;
    shallow.in_channels = 3;  // a first layer: the direct convolution
    for (const Conv2dParams& p : {s2, d2, g2, shallow}) {
        Conv2d c = make(p);
        CHECK(!c.uses_winograd_5x5(Shape({2, p.in_channels, 28, 28})));
    }
    // Through conv2d: the loop nest's result, bit-identical on 1 and 2
    // threads, nothing allocated once warm.
    Problem pb(lenet, 2, 28, 28, true, 82);
    auto c = Conv2d::create(lenet, pb.weight_view(), pb.bias_view());
    REQUIRE(c.ok());
    std::vector<float> ws(c->workspace_floats(pb.in_shape)), out(pb.out_shape.numel(), NAN), first;
    for (int threads : {1, 2}) {
        ThreadSetting ts(threads);
        const ConstTensorView x(pb.input.data(), pb.in_shape);
        bool ok = c->run(x, TensorView(out.data(), pb.out_shape), ws.data()).ok();
        const long before = heap_allocations.load();
        for (int i = 0; i < 3; ++i) ok = ok && c->run(x, TensorView(out.data(), pb.out_shape), ws.data()).ok();
        CHECK(ok);
        CHECK(heap_allocations.load() - before == 0);
        CHECK(relative_error(out, pb.want) <= winograd_tolerance);
        if (first.empty()) first = out;
        CHECK(out == first);
    }
}
