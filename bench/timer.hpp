// A tiny benchmark timer in the spirit of xsimd's pico_bench: time a callable
// many times and summarise the samples with robust statistics (median, min,
// max, median absolute deviation), because on a shared machine the mean is
// dominated by the occasional sample that lost its core.
//
// Sub-microsecond calls (a batch-1 fc3 is ~1 kFLOP) are below the clock's
// useful resolution, so one *sample* is `reps` back-to-back calls and the
// per-call time is the sample divided by reps; calibrate_reps picks reps so
// that a sample lasts at least a target duration.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

struct Stats {
    double median = 0, min = 0, max = 0, mad = 0;  // seconds per call
};

inline double median_of(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline Stats summarize(const std::vector<double>& samples) {
    Stats s;
    if (samples.empty()) return s;
    s.median = median_of(samples);
    s.min = *std::min_element(samples.begin(), samples.end());
    s.max = *std::max_element(samples.begin(), samples.end());
    std::vector<double> dev(samples.size());
    for (std::size_t i = 0; i < samples.size(); ++i) dev[i] = std::fabs(samples[i] - s.median);
    s.mad = median_of(dev);
    return s;
}

// Seconds per call of `reps` consecutive calls of f.
template <class F>
double seconds_per_call(F& f, int reps) {
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) f();
    return std::chrono::duration<double>(Clock::now() - t0).count() / reps;
}

// Smallest power-of-two repetition count whose sample lasts >= target
// seconds (at most max_reps). Also serves as warm-up.
template <class F>
int calibrate_reps(F& f, double target_seconds, int max_reps = 1 << 16) {
    int reps = 1;
    while (reps < max_reps && seconds_per_call(f, reps) * reps < target_seconds) reps *= 2;
    return reps;
}

// Times two callables interleaved: sample i runs a then b when i is even and
// b then a when it is odd, so slow drift (another process, frequency) hits
// both alike and neither always runs on the other's warm cache.
template <class A, class B>
void interleaved_samples(A& a, int reps_a, B& b, int reps_b, int samples, std::vector<double>& out_a,
                         std::vector<double>& out_b) {
    out_a.clear();
    out_b.clear();
    for (int i = 0; i < samples; ++i) {
        if (i % 2 == 0) {
            out_a.push_back(seconds_per_call(a, reps_a));
            out_b.push_back(seconds_per_call(b, reps_b));
        } else {
            out_b.push_back(seconds_per_call(b, reps_b));
            out_a.push_back(seconds_per_call(a, reps_a));
        }
    }
}

}  // namespace bench
