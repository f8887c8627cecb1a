// core_latency: the round trip of one cache line between two CPUs, in ns.
//
// Why: on the cloud guests here the two vCPUs move between host cores.
// Sometimes they share a last-level cache (a round trip of ~120 ns) and
// sometimes not (~400-500 ns), and minutes apart the same build runs
// WideResNet-16-4 at batch 1 on 2 threads in 1.50 or 1.6-1.95 ms (1 thread:
// ~2.1-2.4 ms). bench/compare records this figure before each group, so a
// table says which kind of placement its 2-thread rows had.
//
// Usage: core_latency [--handoff] [CPU_A CPU_B] (default: the first two
// CPUs this process may use). Prints the median of 5 rounds of 20000 round
// trips, or "none" with one CPU. Exit status 0 either way; 2 on bad
// arguments.
//
// --handoff: what data crossing between the two cores costs a batch-1
// layer. CPU A computes c = a + b on 256 KiB arrays (64 Ki floats, a
// WideResNet 64x32x32 activation) in five states of the caches, median of
// 31 rounds each, in us:
//   local               a, b, c last written by A
//   input from B        a last written by B (A reads lines B holds dirty)
//   output last B's     c last written by B (A writes lines B holds dirty)
//   output read by B    c written by A, then read by B (A writes lines
//                       both hold: each store waits for B's copy to go)
//   ... split with B    the same, A and B each adding half
// On the Zen 5 guest (2026-12-07): 3.5-4.9, 6.5, 6.4, 10.1 and 5.9 us at a
// 200-380 ns round trip; 4.0, 10.7, 11.0, 39.8 and 21.6 us at ~470 ns (the
// same measurement in a first, stand-alone harness). Writing over what the
// other core has read is the costly case, and at batch 1 it is the common
// one: a layer's input is read by both threads, and its buffer is written
// again by a later layer (or the next run).
#include <atomic>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
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

// --handoff (see the top). B runs commands from A: spin-waiting on `order`.
constexpr int handoff_floats = 1 << 16;
alignas(64) float ha[handoff_floats], hb[handoff_floats], hc[handoff_floats];
std::atomic<int> order{0}, finished{0};

enum Command { write_a = 1, write_c, read_c, add_upper_half, quit };

void add_range(int lo, int hi) {
    for (int i = lo; i < hi; ++i) hc[i] = ha[i] + hb[i];
}

void run_command(int command) {
    switch (command) {
        case write_a:
            for (int i = 0; i < handoff_floats; ++i) ha[i] = 1.0f;
            break;
        case write_c:
            for (int i = 0; i < handoff_floats; ++i) hc[i] = 3.0f;
            break;
        case read_c: {
            volatile float sink = 0;
            for (int i = 0; i < handoff_floats; i += 16) sink = sink + hc[i];
            break;
        }
        case add_upper_half:
            add_range(handoff_floats / 2, handoff_floats);
            break;
    }
}

int handoff(int a, int b) {
    std::thread other([b] {
        pin(b);
        for (int seen = 0;;) {
            int next;
            while ((next = order.load(std::memory_order_acquire)) == seen) {
            }
            seen = next;
            if ((next & 0xff) == quit) return;
            run_command(next & 0xff);
            finished.fetch_add(1, std::memory_order_release);
        }
    });
    pin(a);
    int sequence = 0;
    auto start = [&](int command) {  // returns the count to wait past
        const int before = finished.load(std::memory_order_acquire);
        order.store((++sequence << 8) | command, std::memory_order_release);
        return before;
    };
    auto wait = [&](int before) {
        while (finished.load(std::memory_order_acquire) == before) {
        }
    };
    const char* names[] = {"local", "input from B", "output last B's", "output read by B",
                           "output read by B, split with B"};
    for (int state = 0; state < 5; ++state) {
        std::vector<double> us;
        for (int round = 0; round < 31; ++round) {
            for (int i = 0; i < handoff_floats; ++i) ha[i] = 1.0f, hb[i] = 2.0f, hc[i] = 3.0f;
            if (state == 1) wait(start(write_a));
            if (state == 2) wait(start(write_c));
            if (state >= 3) wait(start(read_c));
            const auto t0 = std::chrono::steady_clock::now();
            if (state == 4) {
                const int before = start(add_upper_half);
                add_range(0, handoff_floats / 2);
                wait(before);
            } else {
                add_range(0, handoff_floats);
            }
            us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(us.begin(), us.end());
        std::printf("%-32s %6.1f us\n", names[state], us[us.size() / 2]);
    }
    start(quit);
    other.join();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const bool handoff_mode = argc > 1 && std::string(argv[1]) == "--handoff";
    if (handoff_mode) {
        --argc;
        ++argv;
    }
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
        std::fprintf(stderr, "usage: core_latency [--handoff] [CPU_A CPU_B]\n");
        return 2;
    } else {
        for (int c = 0; c < CPU_SETSIZE && b < 0; ++c)
            if (CPU_ISSET(c, &allowed)) (a < 0 ? a : b) = c;
        if (b < 0) {
            std::printf("none\n");
            return 0;
        }
    }
    if (handoff_mode) return handoff(a, b);
    std::vector<double> rounds;
    for (int r = 0; r < 5; ++r) rounds.push_back(round_trip_ns(a, b, 20000));
    std::sort(rounds.begin(), rounds.end());
    std::printf("%.0f\n", rounds[rounds.size() / 2]);
    return 0;
}
