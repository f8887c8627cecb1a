// parallel_for and its worker pool (core/parallel.hpp): every index is run
// exactly once whatever the thread count, nested and concurrent callers fall
// back to the serial path instead of deadlocking, and the pool survives many
// short regions in a row.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <mutex>
#include <string>
#include <cstdint>
#include <thread>
#include <vector>

#include "salted/core/parallel.hpp"

#if defined(SALTED_THREADS) && defined(__linux__)
#include <dirent.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

using namespace salted;

namespace {

// Restores the global thread settings when a test ends.
struct ThreadSettings {
    ThreadSettings(int threads, int64_t min_flops) {
        set_num_threads(threads);
        set_parallel_min_flops(min_flops);
    }
    ~ThreadSettings() {
        set_num_threads(0);
        set_parallel_min_flops(default_parallel_min_flops);
    }
};

// Runs parallel_for over n indices, counting how often each one is visited.
std::vector<int> visits(int64_t n, int64_t flops) {
    std::vector<std::atomic<int>> count(static_cast<std::size_t>(n));
    for (auto& c : count) c.store(0);
    parallel_for(n, flops, [&](int64_t b, int64_t e) {
        REQUIRE(0 <= b);
        REQUIRE(b < e);
        REQUIRE(e <= n);
        for (int64_t i = b; i < e; ++i) count[static_cast<std::size_t>(i)].fetch_add(1);
    });
    std::vector<int> out;
    for (auto& c : count) out.push_back(c.load());
    return out;
}

TEST_CASE("parallel_for: every index exactly once, for any thread count and size") {
    for (int threads : {1, 2, 3, 4, 8}) {
        ThreadSettings settings(threads, 1);
        CAPTURE(threads);
        for (int64_t n : {1, 2, 3, 5, 7, 8, 31, 64, 1000}) {
            CAPTURE(n);
            for (int64_t flops : {int64_t(1), n * 1000, int64_t(1) << 40}) {
                const std::vector<int> v = visits(n, flops);
                for (int64_t i = 0; i < n; ++i) CHECK(v[static_cast<std::size_t>(i)] == 1);
            }
        }
    }
}

TEST_CASE("parallel_for: below the work threshold the caller runs it alone, in one call") {
    ThreadSettings settings(4, 1000);
    int calls = 0;
    const std::thread::id me = std::this_thread::get_id();
    bool same_thread = true;
    parallel_for(100, 999, [&](int64_t b, int64_t e) {
        ++calls;
        same_thread = same_thread && std::this_thread::get_id() == me;
        CHECK(b == 0);
        CHECK(e == 100);
    });
    CHECK(calls == 1);
    CHECK(same_thread);
}

TEST_CASE("parallel_for: many short regions in a row (wake, join, reuse)") {
    ThreadSettings settings(2, 1);
    std::vector<int64_t> sums(2000);
    for (std::size_t r = 0; r < sums.size(); ++r) {
        std::atomic<int64_t> s{0};
        parallel_for(16, 1 << 20, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) s.fetch_add(i + static_cast<int64_t>(r));
        });
        sums[r] = s.load();
    }
    for (std::size_t r = 0; r < sums.size(); ++r) CHECK(sums[r] == 120 + 16 * static_cast<int64_t>(r));
}

TEST_CASE("parallel_for: nested regions run the inner loop serially and finish") {
    ThreadSettings settings(3, 1);
    std::vector<std::atomic<int>> grid(40 * 30);
    for (auto& g : grid) g.store(0);
    parallel_for(40, 1 << 30, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
            parallel_for(30, 1 << 30, [&](int64_t b2, int64_t e2) {
                for (int64_t j = b2; j < e2; ++j) grid[static_cast<std::size_t>(i * 30 + j)].fetch_add(1);
            });
    });
    for (auto& g : grid) CHECK(g.load() == 1);
}

// parallel_tasks hands whole tasks to lanes: a lane is never in use by two
// threads at once (Session keeps a lane's buffers by its index), every task
// runs once, and regions inside a task run on its thread alone.
TEST_CASE("parallel_tasks: every task once, each lane on one thread at a time, nested regions serial") {
    for (int threads : {1, 2, 3}) {
        ThreadSettings settings(threads, 1);
        CAPTURE(threads);
        for (int lanes : {1, 2, 4}) {
            CAPTURE(lanes);
            for (int64_t n : {1, 2, 5, 16}) {
                CAPTURE(n);
                for (int round = 0; round < 50; ++round) {
                    std::vector<std::atomic<int>> count(static_cast<std::size_t>(n)), in_lane(8);
                    for (auto& c : count) c.store(0);
                    for (auto& c : in_lane) c.store(0);
                    std::atomic<int> bad_lane{0}, shared_lane{0}, nested_threads{0};
                    const int offered = parallel_tasks(n, lanes, [&](int64_t t, int lane) {
                        if (lane < 0 || lane >= std::min(lanes, threads)) bad_lane.fetch_add(1);
                        if (in_lane[static_cast<std::size_t>(lane & 7)].fetch_add(1) != 0) shared_lane.fetch_add(1);
                        if (max_threads() != 1) nested_threads.fetch_add(1);
                        int inner_calls = 0;
                        parallel_for(64, int64_t(1) << 40, [&](int64_t, int64_t) { ++inner_calls; });
                        if (inner_calls != 1) nested_threads.fetch_add(1);
                        count[static_cast<std::size_t>(t)].fetch_add(1);
                        in_lane[static_cast<std::size_t>(lane & 7)].fetch_sub(1);
                    });
                    CHECK(offered >= 1);
                    CHECK(offered <= std::min<int64_t>({int64_t(lanes), int64_t(threads), n}));
                    CHECK(bad_lane.load() == 0);
                    CHECK(shared_lane.load() == 0);
                    CHECK(nested_threads.load() == 0);
                    for (auto& c : count) CHECK(c.load() == 1);
                }
            }
        }
    }
    CHECK(parallel_tasks(0, 2, [](int64_t, int) { FAIL("no task to run"); }) == 0);
}

TEST_CASE("parallel_for: callers on several threads at once all get complete results") {
    ThreadSettings settings(2, 1);
    constexpr int callers = 4, rounds = 200;
    std::atomic<int> wrong{0};
    std::vector<std::thread> ts;
    for (int c = 0; c < callers; ++c)
        ts.emplace_back([&, c] {
            for (int r = 0; r < rounds; ++r) {
                std::vector<int> v(257, 0);
                parallel_for(257, 1 << 30, [&](int64_t b, int64_t e) {
                    for (int64_t i = b; i < e; ++i) v[static_cast<std::size_t>(i)] += c + 1;
                });
                for (int x : v)
                    if (x != c + 1) wrong.fetch_add(1);
            }
        });
    for (auto& t : ts) t.join();
    CHECK(wrong.load() == 0);
}

// The chunks a thread ran, in order: its own share [own, own + 4) from the
// front, then what it took of the other share [other, other + 4) from the back.
void check_claim_order(const std::vector<int64_t>& order, int64_t own, int64_t other) {
    std::size_t i = 0;
    for (; i < order.size() && order[i] >= own && order[i] < own + 4; ++i) CHECK(order[i] == own + int64_t(i));
    for (std::size_t j = i; j < order.size(); ++j) CHECK(order[j] == other + 3 - int64_t(j - i));
}

}  // namespace

// Each thread owns a contiguous share of the chunks and starts at its front,
// so a chunk goes to the same core run after run (its caches keep that
// chunk's data); a thread that runs out takes the others' chunks from the
// back. Chunks here take long enough for the worker to arrive; if it does
// not (a loaded machine), the caller runs everything, still in this order.
// While the pool backs off after a stalled join (another process had the
// core: a CTest neighbour), parallel_for runs the whole range in one call on
// the caller; such rounds say nothing about the order and are skipped.
TEST_CASE("parallel_for: each thread starts at the front of its own share, stealing goes from the back") {
#if !defined(SALTED_THREADS)
    MESSAGE("built without threads: parallel_for always runs on the caller");
    return;
#endif
    ThreadSettings settings(2, 1);
    int pooled = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (pooled < 20 && std::chrono::steady_clock::now() < deadline) {
        const std::thread::id me = std::this_thread::get_id();
        std::mutex mu;
        std::vector<int64_t> caller_order, worker_order;
        bool serial_fallback = false;
        parallel_for(8, 1 << 30, [&](int64_t b, int64_t e) {
            std::lock_guard<std::mutex> lock(mu);
            if (e != b + 1) {  // the serial path: one call for everything
                serial_fallback = b == 0 && e == 8;
                return;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(500));
            (std::this_thread::get_id() == me ? caller_order : worker_order).push_back(b);
        });
        if (serial_fallback) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        ++pooled;
        REQUIRE(caller_order.size() + worker_order.size() == 8);
        REQUIRE(!caller_order.empty());
        CHECK(caller_order.front() == 0);
        check_claim_order(caller_order, 0, 4);
        check_claim_order(worker_order, 4, 0);
    }
    if (pooled == 0) MESSAGE("the pool backed off for 5 s (a loaded machine): the claim order was not observed");
}

#if defined(SALTED_THREADS) && defined(__linux__)
// A worker woken after a pause must not land on the caller's CPU (Linux
// looks for idle CPUs only within the waker's cache domain): the pool keeps
// its workers off the CPU the caller ran the last region on.
TEST_CASE("pool: workers may run anywhere the process may, except on the caller's CPU") {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    REQUIRE(sched_getaffinity(0, sizeof(allowed), &allowed) == 0);
    if (CPU_COUNT(&allowed) < 2) {
        MESSAGE("one CPU available: nothing to keep off");
        return;
    }
    ThreadSettings settings(2, 1);
    // The placement is made when a region goes to the pool, not while the
    // pool backs off after a stalled join (a loaded machine): wait for one.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (detail::WorkerPool::instance().avoided_cpu() < 0 && std::chrono::steady_clock::now() < deadline) {
        parallel_for(64, 1 << 30, [](int64_t, int64_t) {});
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (detail::WorkerPool::instance().avoided_cpu() < 0) {
        MESSAGE("the pool backed off for 5 s (a loaded machine): no placement to check");
        return;
    }
    for (int round = 0; round < 3; ++round) {
        parallel_for(64, 1 << 30, [](int64_t, int64_t) {});
        const int avoided = detail::WorkerPool::instance().avoided_cpu();
        REQUIRE(avoided >= 0);
        CHECK(CPU_ISSET(avoided, &allowed));
        // The pool's workers, by name (under qemu-user the process has
        // the emulator's threads too).
        const pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
        int workers = 0;
        DIR* dir = opendir("/proc/self/task");
        REQUIRE(dir != nullptr);
        while (dirent* e = readdir(dir)) {
            const pid_t tid = static_cast<pid_t>(std::atoi(e->d_name));
            if (tid <= 0 || tid == self) continue;
            char name[32] = {};
            const std::string comm = "/proc/self/task/" + std::string(e->d_name) + "/comm";
            if (FILE* f = std::fopen(comm.c_str(), "r")) {
                if (!std::fgets(name, sizeof(name), f)) name[0] = 0;
                std::fclose(f);
            }
            if (std::string(name).rfind(detail::WorkerPool::worker_name, 0) != 0) continue;
            cpu_set_t mask;
            CPU_ZERO(&mask);
            if (sched_getaffinity(tid, sizeof(mask), &mask) != 0) continue;  // exited meanwhile
            ++workers;
            CHECK_FALSE(CPU_ISSET(avoided, &mask));
            CPU_SET(avoided, &mask);
            CHECK(CPU_EQUAL(&mask, &allowed));  // and nothing else is taken away
        }
        closedir(dir);
        CHECK(workers >= 1);
    }
}
#endif

// The back-off after stalled joins, on a made-up clock: regions of 1 ms
// whose caller did 0.5 ms itself; a stall is a 4 ms wait beyond that (a
// worker preempted for a scheduler slice).
TEST_CASE("pool back-off: doubles while stalls cost more than the pool ran since, resets once paid for") {
    using B = detail::StallBackoff;
    using ms = std::chrono::milliseconds;
    using us = std::chrono::microseconds;
    B b;
    B::Clock::time_point now{};
    auto clean = [&] {  // the worker joined in time
        CHECK(!b.off(now));
        b.joined(now, now + us(500), now + us(1000));
        now += ms(1);
    };
    auto stall = [&] {
        CHECK(!b.off(now));
        b.joined(now, now + us(500), now + us(5000));
        now += ms(5);
    };
    auto sit_out = [&] {  // regions stay on the caller until the pause ends
        CHECK(b.off(now));
        now += b.pause();
        CHECK(!b.off(now));
    };
    CHECK(!b.off(now));
    clean();
    CHECK(b.pause() == B::Clock::duration::zero());
    stall();  // the first: the shortest pause
    CHECK(b.pause() == B::pause_min);
    sit_out();
    // Another stall after 5 ms of pooled regions (less than 10 x 4 ms): twice as long.
    for (int i = 0; i < 5; ++i) clean();
    stall();
    CHECK(b.pause() == 2 * B::pause_min);
    sit_out();
    for (int i = 0; i < 10; ++i) {  // a core held by another process: the pause grows to its cap
        stall();
        sit_out();
    }
    CHECK(b.pause() == B::pause_max);
    // 40 ms of pooled regions paid for a 4 ms stall: the next one starts over.
    for (int i = 0; i < 40; ++i) clean();
    CHECK(b.pause() == B::pause_max);  // clean regions alone do not shorten it
    stall();
    CHECK(b.pause() == B::pause_min);
    sit_out();
    // A join within the allowance is not a stall.
    b.joined(now, now + us(500), now + us(1000) + B::stall_allowance);
    CHECK(!b.off(now + us(1)));
}

TEST_CASE("max_threads follows set_num_threads") {
    ThreadSettings settings(3, default_parallel_min_flops);
#if defined(SALTED_THREADS)
    CHECK(max_threads() == 3);
    set_num_threads(1);
    CHECK(max_threads() == 1);
#else
    CHECK(max_threads() == 1);
#endif
}
