// Drawing salts. The salt is the client's secret: the whole privacy argument
// (PAPER.md) rests on the cloud being unable to predict it, so salts come from
// the operating system's CSPRNG and never from a seeded PRNG, whose state an
// observer of a few outputs could recover. Tests inject a deterministic
// SaltSource instead; production code uses the default, os_salt_source().
//
// Salts are uniform in [0, C) by rejection sampling: taking a 32-bit word
// modulo C would favour small salts whenever C does not divide 2^32.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "salted/core/result.hpp"

#if defined(__linux__) && defined(__has_include)
#if __has_include(<sys/random.h>)
#include <sys/random.h>
#define SALTED_HAVE_GETRANDOM 1
#endif
#endif

namespace salted {
namespace salt {

constexpr int64_t max_classes = int64_t(1) << 31;  // salts and labels fit an int32 tensor

// Where random bytes come from. Implementations must be safe to call from the
// thread that owns them; os_salt_source() is safe from any thread.
class SaltSource {
public:
    virtual ~SaltSource() = default;
    // Fills out[0, n) with independent, uniformly distributed bytes.
    virtual Status fill(uint8_t* out, std::size_t n) = 0;
};

namespace detail {

// /dev/urandom: the fallback when the kernel predates getrandom (Linux < 3.17)
// or the platform lacks it. Checked to be a character device so a plain file
// planted at that path (e.g. in a chroot) is not mistaken for a CSPRNG.
inline Status urandom_bytes(uint8_t* out, std::size_t n) {
    const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(Errc::io_error, "salt: /dev/urandom: cannot open: %s", std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
        ::close(fd);
        return make_error(Errc::io_error, "salt: /dev/urandom: expected a character device, found something else");
    }
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = ::read(fd, out + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            const int err = r < 0 ? errno : 0;
            ::close(fd);
            return make_error(Errc::io_error, "salt: /dev/urandom: read %zu of %zu bytes: %s", got, n,
                              err ? std::strerror(err) : "end of file");
        }
        got += std::size_t(r);
    }
    ::close(fd);
    return Status();
}

// getrandom(2) with flags 0: blocks only until the kernel's pool is first
// seeded (early boot), then never. It may return fewer bytes than asked or
// be interrupted by a signal, so it runs in a loop. Sets *unavailable when
// the kernel does not implement it (ENOSYS), for the caller to fall back.
inline Status getrandom_bytes(uint8_t* out, std::size_t n, bool* unavailable) {
    *unavailable = false;
#if defined(SALTED_HAVE_GETRANDOM)
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = ::getrandom(out + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOSYS) {
                *unavailable = true;
                return Status();
            }
            return make_error(Errc::io_error, "salt: getrandom: %s", std::strerror(errno));
        }
        got += std::size_t(r);
    }
    return Status();
#else
    (void)out;
    (void)n;
    *unavailable = true;
    return Status();
#endif
}

inline Status os_random_bytes(uint8_t* out, std::size_t n) {
    if (n == 0) return Status();
    bool unavailable = false;
    SALTED_TRY(getrandom_bytes(out, n, &unavailable));
    if (unavailable) return urandom_bytes(out, n);
    return Status();
}

}  // namespace detail

// The operating system's CSPRNG. Stateless, so one instance serves all threads.
class OsSaltSource final : public SaltSource {
public:
    Status fill(uint8_t* out, std::size_t n) override { return detail::os_random_bytes(out, n); }
};

inline SaltSource& os_salt_source() {
    static OsSaltSource source;
    return source;
}

inline Status check_class_count(int64_t classes, const char* who) {
    if (classes < 1 || classes > max_classes)
        return make_error(Errc::invalid_argument, "%s: classes: expected 1..2^31, found %lld", who,
                          static_cast<long long>(classes));
    return Status();
}

// Fills out[0, n) with salts uniform in [0, classes).
inline Status draw_salts(int64_t classes, int64_t* out, std::size_t n, SaltSource& source = os_salt_source()) {
    SALTED_TRY(check_class_count(classes, "draw_salts"));
    if (n == 0) return Status();
    if (!out) return make_error(Errc::invalid_argument, "draw_salts: out: expected memory for %zu salts, found null", n);
    // Accept a 32-bit word only below the largest multiple of `classes`
    // that fits in 2^32; each accepted word is then equally likely mod classes.
    const uint64_t c = uint64_t(classes);
    const uint64_t accept_below = (uint64_t(1) << 32) / c * c;
    // A rejection happens with probability < 1/2, so 128 in a row means the
    // source is broken (constant output), not unlucky (p < 2^-128).
    constexpr int max_rejections_in_a_row = 128;
    uint8_t buf[256];
    std::size_t used = sizeof(buf);
    int rejections = 0;
    for (std::size_t i = 0; i < n;) {
        if (used == sizeof(buf)) {
            // Ask only for what is likely needed, so drawing one salt costs 4 bytes.
            const std::size_t want = std::min(sizeof(buf), 4 * (n - i));
            used = sizeof(buf) - want;
            SALTED_TRY(source.fill(buf + used, want));
        }
        uint32_t w = 0;
        for (unsigned k = 0; k < 4; ++k) w |= uint32_t(buf[used + k]) << (8 * k);
        used += 4;
        if (w >= accept_below) {
            if (++rejections >= max_rejections_in_a_row)
                return make_error(Errc::io_error,
                                  "draw_salts: random source returned %d rejected words in a row; it is not random",
                                  rejections);
            continue;
        }
        rejections = 0;
        out[i++] = int64_t(w % c);
    }
    return Status();
}

inline Result<int64_t> draw_salt(int64_t classes, SaltSource& source = os_salt_source()) {
    int64_t s = 0;
    SALTED_TRY(draw_salts(classes, &s, 1, source));
    return s;
}

// Fills out[0, n) with independent N(0, 1) samples (the noise of the FC salt
// vector), by Box-Muller from the same CSPRNG.
//
// Uniforms are 53-bit doubles, not 24-bit floats: with u1 = k / 2^24 the
// largest possible |z| is sqrt(-2 ln 2^-24) = 5.8 and the tail beyond ~4
// sigma is visibly quantised; with 53 bits it reaches 8.6 sigma on a fine
// grid. u1 lies in (0, 1] so log(u1) is finite. The result is rounded to
// float once, at the end.
inline Status draw_standard_normal(float* out, std::size_t n, SaltSource& source = os_salt_source()) {
    if (n == 0) return Status();
    if (!out) return make_error(Errc::invalid_argument, "draw_standard_normal: out: expected memory, found null");
    const double two_pi = 6.283185307179586476925286766559;
    const double scale = 1.0 / 9007199254740992.0;  // 2^-53
    uint8_t buf[256];                               // 16 pairs of 53-bit draws per refill
    for (std::size_t i = 0; i < n;) {
        const std::size_t pairs = std::min<std::size_t>((n - i + 1) / 2, sizeof(buf) / 16);
        SALTED_TRY(source.fill(buf, pairs * 16));
        for (std::size_t p = 0; p < pairs; ++p) {
            uint64_t a = 0, b = 0;
            for (unsigned k = 0; k < 8; ++k) {
                a |= uint64_t(buf[16 * p + k]) << (8 * k);
                b |= uint64_t(buf[16 * p + 8 + k]) << (8 * k);
            }
            const double u1 = double((a >> 11) + 1) * scale;  // (0, 1]
            const double u2 = double(b >> 11) * scale;        // [0, 1)
            const double r = std::sqrt(-2.0 * std::log(u1));
            out[i++] = float(r * std::cos(two_pi * u2));
            if (i < n) out[i++] = float(r * std::sin(two_pi * u2));
        }
    }
    return Status();
}

}  // namespace salt
}  // namespace salted
