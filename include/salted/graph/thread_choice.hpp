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
// How: 2 untimed runs, then 8 runs with the pool and 8 on the caller alone,
// in blocks of 4 taken in turn (pool, alone, pool, alone): single runs in
// turn left the pool's worker asleep at every pool run, which made the pool
// look slow, and one block of 8 each put the two modes in different
// minutes, so that drift on a shared host decided (bench/compare, 12-07:
// WideResNet-28-3 at batch 1 kept the pool and ran 0.90x its 1-thread
// speed). The pool is kept only if its median is at least 5 % faster (ties
// go to one thread, which leaves the other core to whoever needs it). The
// median, not the fastest runs: with another process on the second core,
// pool runs are fast when the worker gets the core and
// several times slower when it waits for it, and the fast ones alone made
// the pool look good (bench/compare, sensor net at batch 1: 0.63-0.69x of
// the 1-thread speed). Then the machine may change: every 16 runs the median
// of the last 16 is compared with the probe's median of the mode chosen, and
// 25 % slower means probing again (at most every 128 runs); every 512 runs
// both are timed again anyway. Results are identical either way (no
// kernel's sums depend on the thread count); only speed changes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace salted {
namespace graph {

class ThreadChoice {
public:
    static constexpr int warmup_runs = 2;  // not timed: the first plans, starts the pool
    static constexpr int probe_runs = 8;               // per mode
    static constexpr int probe_block = 4;              // runs of one mode in a row
    static constexpr int watch_runs = 16;              // runs per look at the chosen mode's times
    static constexpr double slower_by = 1.25;          // a median this much over the probe's: probe again
    static constexpr int64_t min_runs_between = 128;   // early probes at most this often
    static constexpr int64_t reprobe_every = 512;
    static constexpr double pool_must_win_by = 0.95;

    // Whether the next run should stay on the calling thread.
    bool next_serial() const { return probing_ ? n_ >= 0 && (n_ / probe_block) % 2 == 1 : serial_; }

    // The wall time of the run next_serial() was asked for.
    void record(double seconds) {
        if (!probing_) {
            ++since_;
            watch_[since_ % watch_runs] = seconds;
            const bool drifted =
                since_ % watch_runs == 0 && since_ >= min_runs_between && median(watch_) > slower_by * chosen_median_;
            if (drifted || since_ >= reprobe_every) start_probe();
            return;
        }
        if (n_ < 0) {
            ++n_;
            return;
        }
        const int block = n_ / probe_block, slot = block / 2 * probe_block + n_ % probe_block;
        (block % 2 == 0 ? pool_[slot] : serial_times_[slot]) = seconds;
        if (++n_ == 2 * probe_runs) {
            const double pool = median(pool_), serial = median(serial_times_);
            serial_ = !(pool < pool_must_win_by * serial);
            chosen_median_ = serial_ ? serial : pool;
            probing_ = false;
            since_ = 0;
        }
    }

    bool decided() const { return !probing_; }
    bool serial() const { return serial_; }

private:
    void start_probe() {
        probing_ = true;
        n_ = -warmup_runs;
    }

    // Robust to a few odd slow runs (another process, a page fault), and
    // still sees a mode that is slow half the time.
    template <std::size_t N>
    static double median(const double (&v)[N]) {
        double s[N];
        std::copy(v, v + N, s);
        std::nth_element(s, s + N / 2, s + N);
        const double hi = s[N / 2];
        return 0.5 * (hi + *std::max_element(s, s + N / 2));
    }

    bool probing_ = true;
    int n_ = -warmup_runs;  // probe runs so far, in blocks of probe_block: pool, alone, pool, alone
    static_assert(probe_runs % probe_block == 0, "whole blocks per mode");
    double pool_[probe_runs] = {}, serial_times_[probe_runs] = {};
    double watch_[watch_runs] = {};  // the chosen mode's last times
    double chosen_median_ = 0;
    bool serial_ = false;
    int64_t since_ = 0;  // runs since the last decision
};

}  // namespace graph
}  // namespace salted
