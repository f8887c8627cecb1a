// core_latency: the round trip of one cache line between two CPUs, in ns.
//
// Why: on the cloud guests here the two vCPUs move between host cores.
// Sometimes they share a last-level cache (a round trip of ~120 ns) and
// sometimes not (~400-500 ns), and minutes apart the same build runs
// WideResNet-16-4 at batch 1 on 2 threads in 1.50 or 1.6-1.95 ms (1 thread:
// ~2.1-2.4 ms). bench/compare records this figure before each group, so a
// table says which kind of placement its 2-thread rows had.
//
// Usage: core_latency [CPU_A CPU_B] (default: the first two CPUs this
// process may use). Prints the median of 5 rounds of 20000 round trips, or
// "none" with one CPU. Exit status 0 either way; 2 on bad arguments.
#include <atomic>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>

namespace {

alignas(64) std::atomic<int> ball{0};

bool pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

// Thread A writes odd values and waits for B's next even one: each step
// moves the line to the other core and back.
double round_trip_ns(int a, int b, int trips) {
    ball.store(0);
    std::thread other([&] {
        pin(b);
        for (int i = 0; i < trips; ++i) {
            while (ball.load(std::memory_order_acquire) != 2 * i + 1) {
            }
            ball.store(2 * i + 2, std::memory_order_release);
        }
    });
    pin(a);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < trips; ++i) {
        ball.store(2 * i + 1, std::memory_order_release);
        while (ball.load(std::memory_order_acquire) != 2 * i + 2) {
        }
    }
    const auto t1 = std::chrono::steady_clock::now();
    other.join();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / trips;
}

bool parse_cpu(const char* s, int* out) {
    char* end = nullptr;
    const long v = std::strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0 || v >= CPU_SETSIZE) return false;
    *out = static_cast<int>(v);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    int a = -1, b = -1;
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        std::printf("none\n");
        return 0;
    }
    if (argc == 3) {
        if (!parse_cpu(argv[1], &a) || !parse_cpu(argv[2], &b) || a == b || !CPU_ISSET(a, &allowed) ||
            !CPU_ISSET(b, &allowed)) {
            std::fprintf(stderr, "core_latency: expected two different CPUs this process may use, got '%s' '%s'\n",
                         argv[1], argv[2]);
            return 2;
        }
    } else if (argc != 1) {
        std::fprintf(stderr, "usage: core_latency [CPU_A CPU_B]\n");
        return 2;
    } else {
        for (int c = 0; c < CPU_SETSIZE && b < 0; ++c)
            if (CPU_ISSET(c, &allowed)) (a < 0 ? a : b) = c;
        if (b < 0) {
            std::printf("none\n");
            return 0;
        }
    }
    std::vector<double> rounds;
    for (int r = 0; r < 5; ++r) rounds.push_back(round_trip_ns(a, b, 20000));
    std::sort(rounds.begin(), rounds.end());
    std::printf("%.0f\n", rounds[rounds.size() / 2]);
    return 0;
}
