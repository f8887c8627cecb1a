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
#include <functional>
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

// Times several systems interleaved: sample i runs them in an order rotated
// by i (a b c, b c a, c a b, ...), so slow drift (another process,
// frequency) hits all alike and none always runs on another's warm cache.
struct TimedSystem {
    std::function<void()> run;
    int reps = 1;
    std::vector<double> samples;  // seconds per call
};

inline void interleaved_samples(std::vector<TimedSystem>& systems, int samples) {
    for (TimedSystem& t : systems) t.samples.clear();
    const std::size_t n = systems.size();
    for (int i = 0; i < samples; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            TimedSystem& t = systems[(static_cast<std::size_t>(i) + j) % n];
            t.samples.push_back(seconds_per_call(t.run, t.reps));
        }
}

}  // namespace bench
