// ThreadChoice: whether a Session's runs at one batch size should use the
// thread pool or stay on the calling thread, decided by timing both.
//
// Why: more threads are not always faster. At batch 1 the regions of a run
// are short, and on a shared or virtualised machine the second core may be
// busy with another process or slow to wake; then two threads take longer
// than one (bench/compare measured 0.78-0.89x of the 1-thread speed at batch
// 1 with another process holding a core). Thresholds on work per region
// cannot see that; timing the runs can.
//
// How: 2 untimed runs, then 8 runs with the pool and 8 on the caller alone
// (in blocks: alternating left the pool's worker asleep at every pool run,
// which made the pool look slow); the pool is kept only if its lower
// quartile is at least 3 % faster (ties go to one thread, which
// leaves the other core to whoever needs it). Every 512 runs both are timed
// again, since the machine's load changes. Results are identical either
// way (no kernel's sums depend on the thread count); only speed changes.
#pragma once

#include <algorithm>
#include <cstdint>

namespace salted {
namespace graph {

class ThreadChoice {
public:
    static constexpr int warmup_runs = 2;  // not timed: the first plans, starts the pool
    static constexpr int probe_runs = 8;
    static constexpr int64_t reprobe_every = 512;
    static constexpr double pool_must_win_by = 0.97;

    // Whether the next run should stay on the calling thread.
    bool next_serial() const { return probing_ ? n_ >= probe_runs : serial_; }

    // The wall time of the run next_serial() was asked for.
    void record(double seconds) {
        if (!probing_) {
            if (++since_ >= reprobe_every) {
                probing_ = true;
                n_ = -warmup_runs;
            }
            return;
        }
        if (n_ < 0) {
            ++n_;
            return;
        }
        (n_ < probe_runs ? pool_[n_] : serial_times_[n_ - probe_runs]) = seconds;
        if (++n_ == 2 * probe_runs) {
            serial_ = !(lower_quartile(pool_) < pool_must_win_by * lower_quartile(serial_times_));
            probing_ = false;
            since_ = 0;
        }
    }

    bool decided() const { return !probing_; }
    bool serial() const { return serial_; }

private:
    // Robust to the odd slow run (another process, a page fault), which a
    // probe of 8 cannot average out.
    static double lower_quartile(const double (&v)[probe_runs]) {
        double s[probe_runs];
        std::copy(v, v + probe_runs, s);
        std::nth_element(s, s + probe_runs / 4, s + probe_runs);
        return s[probe_runs / 4];
    }

    bool probing_ = true;
    int n_ = -warmup_runs;  // probe runs so far: the first probe_runs with the pool, then alone
    double pool_[probe_runs] = {}, serial_times_[probe_runs] = {};
    bool serial_ = false;
    int64_t since_ = 0;
};

}  // namespace graph
}  // namespace salted
