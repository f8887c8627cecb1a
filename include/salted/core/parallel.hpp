// parallel_for: splits [0, n) into contiguous chunks and runs them on the
// calling thread plus pool threads, but only when the work is large enough to
// pay for waking them. Every chunk writes disjoint outputs and each output is
// computed the same way whatever the split, so results do not depend on the
// thread count.
//
// Threads are opt-in, as OpenMP was: a program compiled with -fopenmp (the
// salted::openmp CMake target) or with SALTED_THREADS defined gets them;
// otherwise everything runs on the calling thread and no thread is created.
//
// Why not `#pragma omp parallel`: its closing barrier waits for every thread
// to arrive. On a 2-core phone or a shared server, when another process holds
// the second core, a worker that is not scheduled stalls every region by a
// scheduler time slice (milliseconds), and spinning workers make it worse
// (BENCHMARKING.md: peers went from 0.5 ms to 35-100 ms per run). This pool
// never waits for a thread that has not started:
//   - each participant (the caller is participant 0) owns a contiguous
//     range of the chunks and claims from its front; one that runs out
//     takes chunks from the back of the others' ranges, so unclaimed work
//     is done by whoever is running. Owning ranges is for the caches: the
//     same chunk goes to the same core run after run and layer after layer,
//     so a core finds the weights and activations of its share in its own
//     caches. (On the Zen 5 guests here the two vCPUs do not share a last
//     level cache: a line the other core wrote arrives at half the rate of a
//     local one, and each core's L3 holds ~16 MB, less than WideResNet's
//     prepared weights. A shared counter handed chunks out by arrival, so
//     each core ran other items and weights every layer and run: LeNet at
//     batch 64 on 2 threads took 9.6 ms, 6.9 ms with owned ranges, 10.5 on
//     one thread);
//   - the caller waits only for chunks a worker has actually claimed;
//   - idle workers spin for at most 100 us after a region (the regions of
//     one run come back to back, and waking a blocked thread costs 50-100 us
//     in a VM), then block on a condition variable; the caller spins at most
//     30 us before blocking itself. Bounded spinning cannot collapse the way
//     OpenMP's active wait does: a spinner gives its core back in 100 us;
//   - if a join still stalls (a worker was descheduled mid-chunk), the pool
//     backs off to the calling thread alone for a while, longer while the
//     stalls cost more than the pool saves (StallBackoff);
//   - on Linux, workers may run on any CPU the process may use except the
//     one the caller is on. Without that, a worker that had slept (a pause
//     between runs of a few ms) was woken onto the caller's own CPU and
//     shared it with the caller until the load balancer moved it: Linux
//     looks for an idle CPU only inside the waker's last-level-cache domain,
//     and where each CPU has its own (the Zen 5 guests here, many VMs) that
//     domain is the caller's CPU alone. Measured: LeNet at batch 64 on 2
//     threads, 7.4 ms per run back to back, 13 ms with 20 ms pauses between
//     runs (both threads on CPU 0), 10.5 ms on one thread. The mask is set
//     again only when the caller turns up on another CPU.
// One parallel region runs at a time: a second caller (another Session on
// another thread, or a nested call) gets the serial path instead of waiting.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>

#if defined(_OPENMP) && !defined(SALTED_THREADS)
#define SALTED_THREADS 1
#endif

#if defined(SALTED_THREADS)
#include <pthread.h>
#if defined(__linux__)
#include <sched.h>
#endif
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace salted {

// Below this many floating-point operations per extra thread a region runs
// on one thread. Measured here: waking a blocked worker and joining it costs
// 50-60 us, about 5 MFLOP on one core at ~100 GFLOP/s, so a smaller split
// makes two threads slower than one. Tests lower it with
// set_parallel_min_flops() to exercise the threaded paths on small shapes.
constexpr int64_t default_parallel_min_flops = 4000000;

// Upper bound on pool threads (the caller is one more).
constexpr int max_pool_threads = 63;

namespace detail {
inline int& thread_setting() {
    static int threads = 0;  // 0 = default
    return threads;
}
inline int64_t& min_flops_setting() {
    static int64_t flops = default_parallel_min_flops;
    return flops;
}

inline int default_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
    const unsigned hw = std::thread::hardware_concurrency();
    return hw > 0 ? static_cast<int>(hw) : 1;
#endif
}

// When a parallel region's join stalls (a worker was descheduled while it
// held a chunk: the caller waited beyond its own share), the pool runs
// regions on the caller alone for a while. The pause starts at 20 ms and
// doubles, up to 1 s, while stalls come back before the clean pooled
// regions since the last one have run 10 times the wait it cost: two
// threads save at most half of a region (much less when another process
// has the second core), so stalls that frequent are not paid for. An
// occasional stall costs one 20 ms pause.
//
// Why the count: the pause used to end its doubling at the first clean
// region. With a busy loop on the second core the worker is preempted
// every few runs for a scheduler slice (~4 ms on a 2 ms run of
// WideResNet-16-4 at batch 1): each stall bought a 20 ms pause, then the
// pool ran again until the next one, and runs on the pool took 0.92-0.96x
// the 1-thread speed (bench/compare, 12-07 16:40).
class StallBackoff {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr Clock::duration stall_allowance = std::chrono::microseconds(300);
    static constexpr Clock::duration pause_min = std::chrono::milliseconds(20);
    static constexpr Clock::duration pause_max = std::chrono::milliseconds(1000);
    static constexpr int stalls_pay_after = 10;

    // Whether a region starting at `now` should stay on the caller.
    bool off(Clock::time_point now) const { return now < until_; }

    // A pooled region: started, the caller's own chunks done, all joined.
    void joined(Clock::time_point start, Clock::time_point own_done, Clock::time_point end) {
        const Clock::duration waited = (end - own_done) - (own_done - start);  // beyond the caller's own share
        if (waited <= stall_allowance) {
            clean_ += end - start;
            return;
        }
        const bool unpaid = clean_ < stalls_pay_after * waited;
        pause_ = unpaid ? std::min(std::max(pause_ * 2, pause_min), pause_max) : pause_min;
        until_ = end + pause_;
        clean_ = Clock::duration::zero();
    }

    Clock::duration pause() const { return pause_; }

private:
    Clock::time_point until_;
    Clock::duration pause_ = Clock::duration::zero();
    Clock::duration clean_ = Clock::duration::max() / 4;  // pooled time since the last stall: none yet
};

#if defined(SALTED_THREADS)
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

class WorkerPool {
public:
    // The workers' name in top, ps -L, gdb and /proc/<pid>/task/*/comm.
    static constexpr const char* worker_name = "salted-pool";

    // `participant`: 0 for the caller, 1.. for the workers of the region.
    using ChunkFn = void (*)(void* ctx, int64_t chunk, int participant);

    static WorkerPool& instance() {
        static WorkerPool pool;
        return pool;
    }

    // Runs fn(ctx, c, participant) for every c in [0, chunks) on the caller and up to
    // `helpers` pool threads. Returns false, having run nothing, when the
    // pool is in use or backing off: the caller then runs serially.
    bool run(int helpers, int64_t chunks, ChunkFn fn, void* ctx) {
        if (busy_.exchange(true, std::memory_order_acquire)) return false;
        const auto start = Clock::now();
        if (backoff_.off(start) || (helpers = grow(helpers)) < 1) {
            busy_.store(false, std::memory_order_release);
            return false;
        }
        keep_off_caller_cpu();
        pthread_mutex_lock(&mu_);
        fn_ = fn;
        ctx_ = ctx;
        wanted_ = helpers;
        const int participants = helpers + 1;
        for (int p = 0; p < participants; ++p)
            ranges_[p].store(Range::pack(chunks * p / participants, chunks * (p + 1) / participants),
                             std::memory_order_relaxed);
        open_ = true;
        generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        pthread_mutex_unlock(&mu_);
        pthread_cond_broadcast(&wake_);

        claim_all(0, participants, fn, ctx);
        const auto own_done = Clock::now();
        // Claimed chunks finish soon unless their thread was descheduled:
        // spin a little, then block.
        while (active_.load(std::memory_order_acquire) > 0 && Clock::now() - own_done < spin_limit) cpu_relax();
        pthread_mutex_lock(&mu_);
        open_ = false;  // no worker joins this region from now on
        while (active_.load(std::memory_order_acquire) > 0) {
            caller_waiting_ = true;
            pthread_cond_wait(&done_, &mu_);
        }
        caller_waiting_ = false;
        pthread_mutex_unlock(&mu_);

        const auto end = Clock::now();
        backoff_.joined(start, own_done, end);
        busy_.store(false, std::memory_order_release);
        return true;
    }

    // The CPU the workers are currently kept off (the caller's at the last
    // region that moved them), or -1: none yet, not Linux, or the process
    // may use a single CPU. For tests.
    int avoided_cpu() const { return avoided_cpu_; }

    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

private:
    using Clock = std::chrono::steady_clock;
    static constexpr Clock::duration spin_limit = std::chrono::microseconds(30);
    static constexpr Clock::duration worker_spin = std::chrono::microseconds(100);

    WorkerPool() {
        pthread_mutex_init(&mu_, nullptr);
        pthread_cond_init(&wake_, nullptr);
        pthread_cond_init(&done_, nullptr);
    }
    ~WorkerPool() {
        pthread_mutex_lock(&mu_);
        stop_.store(true, std::memory_order_relaxed);
        pthread_mutex_unlock(&mu_);
        pthread_cond_broadcast(&wake_);
        for (int i = 0; i < started_; ++i) pthread_join(threads_[i], nullptr);
        pthread_cond_destroy(&done_);
        pthread_cond_destroy(&wake_);
        pthread_mutex_destroy(&mu_);
    }

    // Starts threads up to `helpers`; returns how many exist (creation can
    // fail when the system is out of threads: then we use fewer).
    int grow(int helpers) {
        helpers = std::min(helpers, max_pool_threads);
        while (started_ < helpers) {
            Start* s = &starts_[started_];
            s->pool = this;
            s->index = started_;
            if (pthread_create(&threads_[started_], nullptr, &WorkerPool::thread_main, s) != 0) break;
            ++started_;
        }
        return std::min(helpers, started_);
    }

    // Workers may run anywhere the process may, except on the caller's CPU
    // (see the header comment). Called by the caller holding busy_.
    void keep_off_caller_cpu() {
#if defined(__linux__) && defined(CPU_SETSIZE)
        const int cpu = sched_getcpu();
        if (cpu < 0 || cpu >= CPU_SETSIZE || (cpu == avoided_cpu_ && placed_ == started_)) return;
        if (!allowed_known_) {  // what the process may use: the caller's own set, read once
            CPU_ZERO(&allowed_);
            if (sched_getaffinity(0, sizeof(allowed_), &allowed_) != 0) return;
            allowed_known_ = true;
        }
        cpu_set_t mask = allowed_;
        CPU_CLR(cpu, &mask);
        if (CPU_COUNT(&mask) == 0) return;  // one CPU: nothing to keep off
        for (int i = 0; i < started_; ++i) pthread_setaffinity_np(threads_[i], sizeof(mask), &mask);
        avoided_cpu_ = cpu;
        placed_ = started_;
#endif
    }

    // A participant's unclaimed chunks [front, back), in one word so that the
    // owner (taking the front) and thieves (taking the back) claim with one
    // compare-and-swap each. Chunk counts are small (parallel_for asks for
    // at most 4 per thread), far below the 2^32 a half-word holds.
    struct alignas(64) Range {
        std::atomic<uint64_t> word{0};
        static uint64_t pack(int64_t front, int64_t back) {
            return static_cast<uint64_t>(front) | (static_cast<uint64_t>(back) << 32);
        }
        void store(uint64_t w, std::memory_order o) { word.store(w, o); }
        // Claims the front chunk (owner) or the back one (thief); -1 when empty.
        int64_t claim(bool from_front) {
            uint64_t w = word.load(std::memory_order_relaxed);
            for (;;) {
                const int64_t front = static_cast<int64_t>(w & 0xffffffffu), back = static_cast<int64_t>(w >> 32);
                if (front >= back) return -1;
                const uint64_t next = from_front ? pack(front + 1, back) : pack(front, back - 1);
                if (word.compare_exchange_weak(w, next, std::memory_order_relaxed)) return from_front ? front : back - 1;
            }
        }
    };

    // Runs participant `self`'s own chunks in order, then the others' from
    // their backs, until none is left.
    void claim_all(int self, int participants, ChunkFn fn, void* ctx) {
        for (int64_t c; (c = ranges_[self].claim(true)) >= 0;) fn(ctx, c, self);
        for (int i = 1; i < participants; ++i) {
            Range& other = ranges_[(self + i) % participants];
            for (int64_t c; (c = other.claim(false)) >= 0;) fn(ctx, c, self);
        }
    }

    struct Start {
        WorkerPool* pool;
        int index;
    };
    static void* thread_main(void* arg) {
        Start* s = static_cast<Start*>(arg);
#if defined(__linux__)
        pthread_setname_np(pthread_self(), worker_name);
#endif
        s->pool->work(s->index);
        return nullptr;
    }

    void work(int index) {
        uint64_t seen = 0;
        for (;;) {
            // Spin briefly first: the next region of the same run is usually
            // microseconds away, and a blocked thread takes 50-100 us to wake.
            const auto spin_from = Clock::now();
            while (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed) &&
                   Clock::now() - spin_from < worker_spin)
                cpu_relax();
            pthread_mutex_lock(&mu_);
            // Skip regions that closed before we came, or that want fewer threads.
            while (!stop_.load(std::memory_order_relaxed) &&
                   (generation_.load(std::memory_order_relaxed) == seen || !open_ || index >= wanted_)) {
                seen = generation_.load(std::memory_order_relaxed);
                pthread_cond_wait(&wake_, &mu_);
            }
            if (stop_.load(std::memory_order_relaxed)) {
                pthread_mutex_unlock(&mu_);
                return;
            }
            seen = generation_.load(std::memory_order_relaxed);
            active_.fetch_add(1, std::memory_order_relaxed);
            const ChunkFn fn = fn_;
            void* const ctx = ctx_;
            const int participants = wanted_ + 1;  // the caller and the wanted workers
            pthread_mutex_unlock(&mu_);
            claim_all(index + 1, participants, fn, ctx);
            pthread_mutex_lock(&mu_);
            if (active_.fetch_sub(1, std::memory_order_release) == 1 && caller_waiting_) pthread_cond_signal(&done_);
            pthread_mutex_unlock(&mu_);
        }
    }

    pthread_mutex_t mu_;
    pthread_cond_t wake_, done_;
    // Written under mu_; generation_ and stop_ are also read by spinning workers.
    std::atomic<uint64_t> generation_{0};
    std::atomic<bool> stop_{false};
    bool open_ = false, caller_waiting_ = false;
    int wanted_ = 0;
    ChunkFn fn_ = nullptr;
    void* ctx_ = nullptr;
    // Shared without the lock (set up under it before a region opens).
    Range ranges_[max_pool_threads + 1];
    std::atomic<int> active_{0};
    std::atomic<bool> busy_{false};
    // Owned by the caller holding busy_.
    int started_ = 0;
    pthread_t threads_[max_pool_threads];
    Start starts_[max_pool_threads];
    StallBackoff backoff_;
    int avoided_cpu_ = -1, placed_ = 0;  // placed_: workers the mask was set on
#if defined(__linux__) && defined(CPU_SETSIZE)
    cpu_set_t allowed_;
    bool allowed_known_ = false;
#endif
};
#endif  // SALTED_THREADS

// A cap on the threads of regions started from this thread (0: none).
inline int& thread_limit() {
    static thread_local int limit = 0;
    return limit;
}

}  // namespace detail

// Threads set for the process (set_num_threads), ignoring ScopedThreadLimit.
inline int configured_threads() {
#if defined(SALTED_THREADS)
    const int t = detail::thread_setting();
    return std::min(t > 0 ? t : detail::default_threads(), max_pool_threads + 1);
#else
    return 1;
#endif
}

// Number of threads parallel regions started from this thread may use (1
// without threads).
inline int max_threads() {
    const int n = configured_threads(), limit = detail::thread_limit();
    return limit > 0 ? std::min(n, limit) : n;
}

// Caps the threads of the regions this thread starts while it lives (a
// Session's adaptive choice runs some calls on the caller alone).
class ScopedThreadLimit {
public:
    explicit ScopedThreadLimit(int limit) : saved_(detail::thread_limit()) { detail::thread_limit() = limit; }
    ~ScopedThreadLimit() { detail::thread_limit() = saved_; }
    ScopedThreadLimit(const ScopedThreadLimit&) = delete;
    ScopedThreadLimit& operator=(const ScopedThreadLimit&) = delete;

private:
    int saved_;
};

// Sets the thread count for later regions; 0 restores the default
// (OMP_NUM_THREADS under OpenMP, else the hardware's thread count).
inline void set_num_threads(int threads) { detail::thread_setting() = std::max(0, threads); }

// Work per extra thread below which regions stay serial.
inline int64_t parallel_min_flops() { return detail::min_flops_setting(); }
inline void set_parallel_min_flops(int64_t flops) { detail::min_flops_setting() = std::max<int64_t>(1, flops); }

// Threads worth using for `flops` of work: max_threads(), but no more than
// one per parallel_min_flops() of it, and at least 1.
inline int threads_for_work(int64_t flops) {
    const int threads = max_threads();
    if (threads <= 1) return threads;
    return static_cast<int>(std::min<int64_t>(threads, std::max<int64_t>(1, flops / parallel_min_flops())));
}

// Calls fn(begin, end) on disjoint chunks covering [0, n). `flops_total` is
// the estimated work of the whole range; below parallel_min_flops() per extra
// thread the call is a single fn(0, n) on the calling thread. fn must not
// depend on which thread runs a chunk, nor on how [0, n) was split.
template <class Fn>
void parallel_for(int64_t n, int64_t flops_total, Fn&& fn) {
    if (n <= 0) return;
    const int threads = static_cast<int>(std::min<int64_t>(threads_for_work(flops_total), n));
#if defined(SALTED_THREADS)
    if (threads > 1) {
        // A few chunks per thread, so whoever runs picks up the slack.
        struct Job {
            Fn* fn;
            int64_t n, chunks;
        };
        Job job{&fn, n, std::min<int64_t>(n, int64_t(threads) * 4)};
        auto run_chunk = [](void* ctx, int64_t c, int) {
            Job* j = static_cast<Job*>(ctx);
            (*j->fn)(j->n * c / j->chunks, j->n * (c + 1) / j->chunks);
        };
        if (detail::WorkerPool::instance().run(threads - 1, job.chunks, run_chunk, &job)) return;
    }
#else
    static_cast<void>(threads);  // always 1 without threads
#endif
    fn(int64_t(0), n);
}

// Calls fn(task, lane) for every task in [0, n), each task whole, on up to
// `lanes` threads (at most max_threads()); a lane in [0, lanes) is used by
// one thread at a time, so fn may keep per-lane state (buffers) indexed by
// it. Tasks are claimed as parallel_for's chunks are: each lane owns a
// contiguous run of tasks and steals from the others' backs, so lane k gets
// the same tasks run after run when nobody stalls. There is no work
// threshold: the caller asks only for tasks worth a thread each. Inside fn
// the thread is limited to one thread (nested regions run serially). When
// the pool is busy or backing off, every task runs on the caller as lane 0.
// Returns the lanes the tasks were offered to (1: all ran on the caller).
template <class Fn>
int parallel_tasks(int64_t n, int lanes, Fn&& fn) {
    if (n <= 0) return 0;
    lanes = static_cast<int>(std::min<int64_t>({static_cast<int64_t>(std::max(lanes, 1)), n,
                                                static_cast<int64_t>(max_threads())}));
#if defined(SALTED_THREADS)
    if (lanes > 1) {
        auto run_task = [](void* ctx, int64_t task, int participant) {
            const ScopedThreadLimit alone(1);
            (*static_cast<Fn*>(ctx))(task, participant);
        };
        if (detail::WorkerPool::instance().run(lanes - 1, n, run_task, &fn)) return lanes;
    }
#endif
    const ScopedThreadLimit alone(1);
    for (int64_t t = 0; t < n; ++t) fn(t, 0);
    return 1;
}

}  // namespace salted
