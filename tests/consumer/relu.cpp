// Consumer smoke test: includes the umbrella header, runs a ReLU through the
// public API and checks every value, plus one error path. The #if checks turn
// a broken build promise (exceptions on, OpenMP forced or missing) into a
// compile error, so the test cannot pass by accident.
#include <cstdio>

#include "salted/salted.hpp"

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#error "the consumer must build with -fno-exceptions"
#endif
#if defined(SALTED_CONSUMER_FORBID_OPENMP) && defined(_OPENMP)
#error "salted::salted must not add OpenMP to its consumers"
#endif
#if defined(SALTED_CONSUMER_EXPECT_OPENMP) && !defined(_OPENMP)
#error "salted::openmp must add OpenMP when the compiler supports it"
#endif

// Counts wrong outputs of ReLU over a tensor of the given shape.
static int check_relu(const salted::Shape& shape) {
    using namespace salted;
    auto x = Tensor::empty(shape);
    auto y = Tensor::empty(shape);
    if (!x.ok() || !y.ok()) {
        std::fprintf(stderr, "consumer: allocation failed\n");
        return 1;
    }
    for (int64_t i = 0; i < x->numel(); ++i) (*x)[i] = static_cast<float>(i % 11) - 5.0f;
    Status s = ops::activation(ops::Activation::relu(), x->view(), y->view());
    if (!s.ok()) {
        std::fprintf(stderr, "consumer: relu failed: %s\n", s.message().c_str());
        return 1;
    }
    int wrong = 0;
    for (int64_t i = 0; i < x->numel(); ++i) {
        float want = (*x)[i] > 0.0f ? (*x)[i] : 0.0f;
        if ((*y)[i] != want) ++wrong;
    }
    std::printf("consumer: relu over %s: %d wrong\n", shape.str().c_str(), wrong);
    return wrong;
}

int main() {
    using namespace salted;
    int failures = 0;
    // 210 values: not a multiple of any SIMD width, so the scalar tail runs.
    failures += check_relu({2, 3, 5, 7});
    // 2^20 values: enough work for parallel_for to use several threads.
    failures += check_relu({1, 16, 256, 256});

    // A shape mismatch is an error value, never a crash.
    auto a = Tensor::empty({2, 2});
    auto b = Tensor::empty({2, 3});
    if (!a.ok() || !b.ok()) return 1;
    Status s = ops::activation(ops::Activation::relu(), a->view(), b->view());
    if (s.code() != Errc::shape_mismatch) {
        std::fprintf(stderr, "consumer: expected shape_mismatch, found %s\n", errc_name(s.code()));
        ++failures;
    }
#if defined(_OPENMP)
    std::printf("consumer: OpenMP on, %d threads available\n", max_threads());
#else
    std::printf("consumer: OpenMP off\n");
#endif
    std::printf("consumer: %s\n", failures == 0 ? "ok" : "FAILED");
    return failures == 0 ? 0 : 1;
}
