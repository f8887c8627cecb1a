// Deterministic test values in [-1, 1): an LCG seeded by (seed, stream).
// The stream keeps each test file's historical sequence (its old private
// copy differed only in that constant), so the tested data did not change
// when the copies became this one helper.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

inline std::vector<float> random_floats(std::size_t n, uint32_t seed, uint32_t stream) {
    std::vector<float> v(n);
    uint32_t s = seed * 2654435761u + stream;
    for (auto& x : v) {
        s = s * 1664525u + 1013904223u;
        x = static_cast<float>(s >> 8) / 8388608.0f - 1.0f;
    }
    return v;
}
