// Throwaway timing harness for conv2d/dense shapes of the reference models
// (not built by CMake; the benchmark suite proper lives elsewhere).
//   g++ -O3 -march=native -std=c++17 -fopenmp -I include bench/scratch_conv.cpp -o /tmp/scratch_conv
//   OMP_WAIT_POLICY=PASSIVE /tmp/scratch_conv [threads]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "salted/ops/conv2d.hpp"
#include "salted/ops/dense.hpp"

using namespace salted;

struct ConvCase {
    const char* name;
    int64_t cin, cout, h, w, kh, kw, sh, sw, pt, pl, pb, pr;
};

template <class F>
static double best_seconds(F&& f) {
    f();  // warm up
    double best = 1e30;
    for (int rep = 0; rep < 15; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        const int iters = 10;
        for (int i = 0; i < iters; ++i) f();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters);
    }
    return best;
}

int main(int argc, char** argv) {
    set_num_threads(argc > 1 ? std::atoi(argv[1]) : 1);
    const ConvCase cases[] = {
        {"wrn 3x3 64->64 32x32 pad1", 64, 64, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1},
        {"wrn 3x3 128->128 16x16 pad1", 128, 128, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1},
        {"wrn 3x3 256->256 8x8 pad1", 256, 256, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1},
        {"wrn 3x3 64->128 s2 F.pad(0,1,0,1)", 64, 128, 32, 32, 3, 3, 2, 2, 0, 0, 1, 1},
        {"wrn 1x1 64->128 s1 32x32", 64, 128, 32, 32, 1, 1, 1, 1, 0, 0, 0, 0},
        {"lenet 5x5 32->32 28x28", 32, 32, 28, 28, 5, 5, 1, 1, 0, 0, 0, 0},
        {"lenet 5x5 3->32 32x32", 3, 32, 32, 32, 5, 5, 1, 1, 0, 0, 0, 0},
        {"sensor (1,5) 1->64 27x200", 1, 64, 27, 200, 1, 5, 1, 1, 0, 0, 0, 0},
        {"sensor (1,5)/s(1,2) 64->64 27x196", 64, 64, 27, 196, 1, 5, 1, 2, 0, 0, 0, 0},
        {"sensor (3,5)/s(2,2) 64->64 27x46", 64, 64, 27, 46, 3, 5, 2, 2, 0, 0, 0, 0},
    };
    for (const auto& c : cases) {
        ops::Conv2dParams p;
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
        p.activation = ops::Activation::relu();
        std::vector<float> w(c.cout * c.cin * c.kh * c.kw), b(c.cout);
        for (auto& x : w) x = std::rand() / float(RAND_MAX) - 0.5f;
        auto conv = ops::Conv2d::create(p, ConstTensorView(w.data(), {c.cout, c.cin, c.kh, c.kw}),
                                        ConstTensorView(b.data(), {c.cout}));
        if (!conv.ok()) { std::printf("%s\n", conv.message().c_str()); return 1; }
        Shape is({1, c.cin, c.h, c.w});
        auto os = conv->output_shape(is);
        auto in = Tensor::zeros(is);
        auto out = Tensor::empty(*os);
        std::vector<float> ws(conv->workspace_floats(is));
        for (int64_t i = 0; i < in->numel(); ++i) (*in)[i] = std::rand() / float(RAND_MAX);
        double s = best_seconds([&] { (void)conv->run(in->view(), out->view(), ws.data()); });
        std::printf("%-38s %8.3f ms  %6.1f GFLOP/s\n", c.name, s * 1e3, conv->flops(is) / s / 1e9);
    }
    for (int64_t batch : {1, 100}) {
        ops::DenseParams p{800, 120, ops::Activation::relu()};
        std::vector<float> w(800 * 120), b(120);
        auto d = ops::Dense::create(p, ConstTensorView(w.data(), {120, 800}), ConstTensorView(b.data(), {120}));
        Shape is({batch, 800});
        auto in = Tensor::zeros(is);
        auto out = Tensor::empty(*d->output_shape(is));
        std::vector<float> ws(d->workspace_floats(is));
        double s = best_seconds([&] { (void)d->run(in->view(), out->view(), ws.data()); });
        std::printf("dense 800->120 batch %-3lld              %8.3f ms  %6.1f GFLOP/s\n", (long long)batch, s * 1e3,
                    d->flops(is) / s / 1e9);
    }
}
