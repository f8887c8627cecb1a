// The FC salt vector (PAPER.md, "FC salt"): for salt s among C classes,
//   means = roll([1, 2, ..., C], s + 1); means[s] += 4C; means /= 2C
// and every entry has std 1/(2C); the vector is Normal(means, std), drawn
// fresh per query on the client. roll is torch.roll / numpy.roll: element i
// moves to (i + shift) mod C, so means[i] = ((i - s - 1) mod C) + 1 before
// the bump; the bumped entry is means[s] = (C + 4C) / 2C = 2.5, every other
// entry lies in (0, 0.5], so the salt sits at a clear peak.
//
// The noise is the caller's: production draws it from a CSPRNG-seeded
// source elsewhere, tests pass fixed values. These functions only shape it.
#pragma once

#include <cstdint>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace salt {

namespace detail {
inline Status check_fc_salt(const char* op, int64_t s, int64_t num_classes) {
    // Class indices up to 2^24 keep every mean an exactly representable float ratio.
    if (num_classes < 1 || num_classes > (int64_t(1) << 24))
        return make_error(Errc::invalid_argument, "%s: num_classes: expected 1..16777216, found %lld", op,
                          static_cast<long long>(num_classes));
    if (s < 0 || s >= num_classes)
        return make_error(Errc::out_of_range, "%s: salt: expected 0..%lld, found %lld", op,
                          static_cast<long long>(num_classes - 1), static_cast<long long>(s));
    return Status();
}

// Entry i of the means for salt s (s and C already checked).
inline float fc_salt_mean(int64_t i, int64_t s, int64_t c) {
    const int64_t rolled = ((i - s - 1) % c + c) % c + 1;  // roll([1..C], s+1)[i]
    const int64_t value = i == s ? rolled + 4 * c : rolled;
    return static_cast<float>(value) / static_cast<float>(2 * c);
}
}  // namespace detail

// The std of every entry of the FC salt vector: 1 / (2C).
inline float fc_salt_std(int num_classes) { return static_cast<float>(1.0 / (2.0 * num_classes)); }

// Writes the C means for salt s into out[0..C). Computed in float32 as
// PyTorch does (integers, then one division), so the values are bitwise
// those of the formula above.
inline Status fc_salt_means(int s, int num_classes, float* out) {
    SALTED_TRY(detail::check_fc_salt("fc_salt_means", s, num_classes));
    if (out == nullptr) return make_error(Errc::invalid_argument, "fc_salt_means: out: expected a buffer, found null");
    for (int64_t i = 0; i < num_classes; ++i) out[i] = detail::fc_salt_mean(i, s, num_classes);
    return Status();
}

inline Result<std::vector<float>> fc_salt_means(int s, int num_classes) {
    SALTED_TRY(detail::check_fc_salt("fc_salt_means", s, num_classes));
    std::vector<float> means(static_cast<std::size_t>(num_classes));
    SALTED_TRY(fc_salt_means(s, num_classes, means.data()));
    return means;
}

// out[i] = means[i] + std * noise[i], with `noise` standard normal draws
// (C of them). `out` may alias `noise`.
inline Status fc_salt_vector(int s, int num_classes, const float* standard_normal_noise, float* out) {
    SALTED_TRY(detail::check_fc_salt("fc_salt_vector", s, num_classes));
    if (standard_normal_noise == nullptr || out == nullptr)
        return make_error(Errc::invalid_argument, "fc_salt_vector: %s: expected a buffer of %d floats, found null",
                          standard_normal_noise == nullptr ? "standard_normal_noise" : "out", num_classes);
    const float sd = fc_salt_std(num_classes);
    for (int64_t i = 0; i < num_classes; ++i)
        out[i] = detail::fc_salt_mean(i, s, num_classes) + sd * standard_normal_noise[i];
    return Status();
}

// One salt vector per sample: out [N, C] from salts[N] and noise [N, C]
// (row-major, one row of draws per sample).
inline Status fc_salt_vectors(const int64_t* salts, int64_t count, int num_classes, const float* standard_normal_noise,
                              TensorView out) {
    const Shape want{count, num_classes};
    if (out.shape != want)
        return make_error(Errc::shape_mismatch, "fc_salt_vectors: output shape: expected %s, found %s",
                          want.str().c_str(), out.shape.str().c_str());
    if (salts == nullptr || standard_normal_noise == nullptr)
        return make_error(Errc::invalid_argument, "fc_salt_vectors: %s: expected a buffer, found null",
                          salts == nullptr ? "salts" : "standard_normal_noise");
    for (int64_t n = 0; n < count; ++n) {
        if (salts[n] < 0 || salts[n] >= num_classes)
            return make_error(Errc::out_of_range, "fc_salt_vectors: salts[%lld]: expected 0..%d, found %lld",
                              static_cast<long long>(n), num_classes - 1, static_cast<long long>(salts[n]));
        SALTED_TRY(fc_salt_vector(static_cast<int>(salts[n]), num_classes, standard_normal_noise + n * num_classes,
                                  out.data + n * num_classes));
    }
    return Status();
}

}  // namespace salt
}  // namespace salted
