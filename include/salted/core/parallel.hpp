// parallel_for: splits [0, n) into contiguous chunks over threads, but only
// when the work is large enough to pay for waking them. OpenMP when the
// compiler has it (-fopenmp), a plain serial loop otherwise; the results are
// identical either way because every chunk writes disjoint outputs.
//
// On a shared 2-core machine, spinning OpenMP workers collapse when another
// process holds a core (see BENCHMARKING.md). salted keeps its parallel regions
// coarse and thresholded; set OMP_WAIT_POLICY=PASSIVE (the default of the
// `salted` program) to make idle workers block rather than spin.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace salted {

// Below this many floating-point operations per extra thread a region runs
// on one thread. Measured here: with idle workers blocking (passive wait) a
// fork/join costs 50-60 us, about 5 MFLOP on one core at ~100 GFLOP/s, so a
// smaller split makes two threads slower than one. Tests lower it with
// set_parallel_min_flops() to exercise the threaded paths on small shapes.
constexpr int64_t default_parallel_min_flops = 4000000;

namespace detail {
inline int& thread_setting() {
    static int threads = 0;  // 0 = runtime default
    return threads;
}
inline int64_t& min_flops_setting() {
    static int64_t flops = default_parallel_min_flops;
    return flops;
}
}  // namespace detail

// Number of threads parallel regions may use (1 without OpenMP).
inline int max_threads() {
#if defined(_OPENMP)
    int t = detail::thread_setting();
    return t > 0 ? t : omp_get_max_threads();
#else
    return 1;
#endif
}

// Sets the thread count for later regions; 0 restores the runtime default.
inline void set_num_threads(int threads) { detail::thread_setting() = std::max(0, threads); }

// Work per extra thread below which regions stay serial.
inline int64_t parallel_min_flops() { return detail::min_flops_setting(); }
inline void set_parallel_min_flops(int64_t flops) { detail::min_flops_setting() = std::max<int64_t>(1, flops); }

// Calls fn(begin, end) on disjoint chunks covering [0, n). `flops_total` is
// the estimated work of the whole range; below parallel_min_flops() per extra
// thread the call is a single fn(0, n) on the calling thread.
template <class Fn>
void parallel_for(int64_t n, int64_t flops_total, Fn&& fn) {
    if (n <= 0) return;
    int threads = max_threads();
    if (threads > 1) {
        int64_t by_work = flops_total / parallel_min_flops();
        threads = static_cast<int>(std::min<int64_t>({static_cast<int64_t>(threads), n, std::max<int64_t>(1, by_work)}));
    }
    if (threads <= 1) {
        fn(int64_t(0), n);
        return;
    }
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        int nt = omp_get_num_threads();
        int64_t begin = n * t / nt;
        int64_t end = n * (t + 1) / nt;
        if (begin < end) fn(begin, end);
    }
#else
    fn(int64_t(0), n);
#endif
}

}  // namespace salted
