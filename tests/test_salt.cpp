// Salt drawing (OS CSPRNG, injected sources, rejection sampling, normal
// draws) and de-salting (roll, labels, top-k, softmax after the roll).
#include <doctest/doctest.h>

#include <cmath>
#include <deque>
#include <numeric>
#include <vector>

#include "salted/salt/desalt.hpp"
#include "salted/salt/draw.hpp"

using namespace salted;

constexpr double kTwoPi = 6.283185307179586476925286766559;

namespace {

// Replays a fixed list of 32-bit words (little-endian), then fails.
class WordSource : public salt::SaltSource {
public:
    explicit WordSource(std::vector<uint32_t> words) {
        for (uint32_t w : words)
            for (int k = 0; k < 4; ++k) bytes_.push_back(uint8_t(w >> (8 * k)));
    }
    Status fill(uint8_t* out, std::size_t n) override {
        if (n > bytes_.size()) return make_error(Errc::io_error, "WordSource: exhausted");
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = bytes_.front();
            bytes_.pop_front();
        }
        requested += n;
        return Status();
    }
    std::size_t remaining() const { return bytes_.size(); }
    std::size_t requested = 0;

private:
    std::deque<uint8_t> bytes_;
};

class ConstantSource : public salt::SaltSource {
public:
    explicit ConstantSource(uint8_t b) : b_(b) {}
    Status fill(uint8_t* out, std::size_t n) override {
        for (std::size_t i = 0; i < n; ++i) out[i] = b_;
        return Status();
    }

private:
    uint8_t b_;
};

class FailingSource : public salt::SaltSource {
public:
    Status fill(uint8_t*, std::size_t) override { return make_error(Errc::io_error, "FailingSource: no entropy"); }
};

// Pearson chi-square of observed counts against a uniform expectation.
double chi_square_uniform(const std::vector<int64_t>& counts, double total) {
    const double expected = total / double(counts.size());
    double chi = 0;
    for (int64_t c : counts) chi += (double(c) - expected) * (double(c) - expected) / expected;
    return chi;
}

}  // namespace

TEST_CASE("OS salts are in range and roughly uniform") {
    // Critical values at p = 1e-9 (so a false failure is practically impossible):
    // chi2(1) 37.3, chi2(9) 61.4, chi2(12) 68.0.
    struct Case { int64_t classes; double critical; };
    for (Case cs : {Case{2, 37.3}, Case{10, 61.4}, Case{13, 68.0}}) {
        const std::size_t n = 130000;
        std::vector<int64_t> salts(n, -1);
        REQUIRE(salt::draw_salts(cs.classes, salts.data(), n).ok());
        std::vector<int64_t> counts(std::size_t(cs.classes), 0);
        for (int64_t s : salts) {
            REQUIRE(s >= 0);
            REQUIRE(s < cs.classes);
            ++counts[std::size_t(s)];
        }
        CAPTURE(cs.classes);
        CHECK(chi_square_uniform(counts, double(n)) < cs.critical);
    }
    // Large C: every draw in range, mean near C/2 (std of the mean ~ C/sqrt(12 n)).
    const int64_t big = salt::max_classes;
    std::vector<int64_t> salts(20000);
    REQUIRE(salt::draw_salts(big, salts.data(), salts.size()).ok());
    double mean = 0;
    for (int64_t s : salts) {
        CHECK(s >= 0);
        CHECK(s < big);
        mean += double(s) / double(salts.size());
    }
    CHECK(std::fabs(mean / double(big) - 0.5) < 0.02);  // ~10 standard errors
    auto one = salt::draw_salt(1);
    REQUIRE(one.ok());
    CHECK(*one == 0);
}

TEST_CASE("both OS paths (getrandom and /dev/urandom) deliver bytes") {
    for (int path = 0; path < 2; ++path) {
        std::vector<uint8_t> a(4096, 0), b(4096, 0);
        if (path == 0) {
            bool unavailable = true;
            REQUIRE(salt::detail::getrandom_bytes(a.data(), a.size(), &unavailable).ok());
            REQUIRE(salt::detail::getrandom_bytes(b.data(), b.size(), &unavailable).ok());
            if (unavailable) continue;  // kernel without getrandom: nothing to compare here
        } else {
            REQUIRE(salt::detail::urandom_bytes(a.data(), a.size()).ok());
            REQUIRE(salt::detail::urandom_bytes(b.data(), b.size()).ok());
        }
        CAPTURE(path);
        CHECK(a != b);  // equal 4 KiB draws: probability 2^-32768
        // Byte mean of uniform bytes is 127.5 with std 73.9/sqrt(4096) = 1.15.
        const double mean = std::accumulate(a.begin(), a.end(), 0.0) / double(a.size());
        CHECK(std::fabs(mean - 127.5) < 8.0);
    }
}

TEST_CASE("an injected source determines the salts; rejection avoids modulo bias") {
    // C = 10: words below 4294967290 (= 429496729 * 10) are accepted.
    WordSource src({7, 23, 4294967289u, 1000000001u});
    std::vector<int64_t> s(4);
    REQUIRE(salt::draw_salts(10, s.data(), 4, src).ok());
    CHECK(s == std::vector<int64_t>{7, 3, 9, 1});

    // 4294967290..4294967295 would make 0..5 more likely than 6..9: rejected and skipped.
    WordSource skip({4294967290u, 4294967295u, 4294967294u, 42});
    auto one = salt::draw_salt(10, skip);
    REQUIRE(one.ok());
    CHECK(*one == 2);
    CHECK(skip.remaining() == 0);

    // C = 3: 2^32 mod 3 = 1, so only 0xFFFFFFFF is rejected.
    WordSource three({0xFFFFFFFFu, 0xFFFFFFFEu});
    auto t = salt::draw_salt(3, three);
    REQUIRE(t.ok());
    CHECK(*t == int64_t(0xFFFFFFFEu % 3));

    // C = 2^31 divides 2^32: nothing is rejected.
    WordSource pow2({0xFFFFFFFFu});
    auto p = salt::draw_salt(salt::max_classes, pow2);
    REQUIRE(p.ok());
    CHECK(*p == int64_t(0x7FFFFFFF));

    // Drawing one salt reads only 4 bytes from the source.
    WordSource frugal({5, 6, 7});
    REQUIRE(salt::draw_salt(10, frugal).ok());
    CHECK(frugal.requested == 4);
}

TEST_CASE("salt drawing errors") {
    int64_t s = 0;
    CHECK(salt::draw_salts(0, &s, 1).code() == Errc::invalid_argument);
    CHECK(salt::draw_salts(-5, &s, 1).code() == Errc::invalid_argument);
    CHECK(salt::draw_salts(salt::max_classes + 1, &s, 1).code() == Errc::invalid_argument);
    CHECK(salt::draw_salts(10, nullptr, 1).code() == Errc::invalid_argument);
    CHECK(salt::draw_salts(10, nullptr, 0).ok());
    FailingSource failing;
    auto f = salt::draw_salt(10, failing);
    CHECK(f.code() == Errc::io_error);
    CHECK(f.message().find("no entropy") != std::string::npos);
    // A stuck source (all 0xFF, always in the rejected range for C = 10) is
    // reported instead of looping forever.
    ConstantSource stuck(0xFF);
    auto r = salt::draw_salt(10, stuck);
    CHECK(r.code() == Errc::io_error);
    CHECK(r.message().find("not random") != std::string::npos);
    float z;
    CHECK(salt::draw_standard_normal(nullptr, 3).code() == Errc::invalid_argument);
    CHECK(salt::draw_standard_normal(&z, 1, failing).code() == Errc::io_error);
}

TEST_CASE("standard normal draws: moments and tail mass") {
    const std::size_t n = 200001;  // odd: the last pair is half used
    std::vector<float> z(n, std::nanf(""));
    REQUIRE(salt::draw_standard_normal(z.data(), n).ok());
    double sum = 0, sq = 0;
    std::size_t within_one = 0, beyond_three = 0;
    for (float v : z) {
        REQUIRE(std::isfinite(v));
        sum += v;
        sq += double(v) * v;
        within_one += std::fabs(v) < 1.0f;
        beyond_three += std::fabs(v) > 3.0f;
    }
    const double mean = sum / double(n);
    const double sd = std::sqrt(sq / double(n) - mean * mean);
    // Standard errors: mean 0.0022, sd 0.0016, P(|z|<1) 0.0010, P(|z|>3) 0.00012.
    CHECK(std::fabs(mean) < 0.015);
    CHECK(std::fabs(sd - 1.0) < 0.012);
    CHECK(std::fabs(double(within_one) / double(n) - 0.682689) < 0.007);
    CHECK(std::fabs(double(beyond_three) / double(n) - 0.0026998) < 0.0009);
}

TEST_CASE("standard normal draws follow Box-Muller on 53-bit uniforms") {
    // Two pairs of 64-bit words; the top 53 bits of each become a uniform.
    const uint64_t a = uint64_t(1) << 63;   // u1 = (2^52 + 1) / 2^53
    const uint64_t b = uint64_t(1) << 62;   // u2 = 1/4
    const uint64_t c = 0;                   // u1 = 2^-53: the deepest tail, still finite
    const uint64_t d = 0;                   // u2 = 0
    WordSource src({uint32_t(a), uint32_t(a >> 32), uint32_t(b), uint32_t(b >> 32),
                    uint32_t(c), uint32_t(c >> 32), uint32_t(d), uint32_t(d >> 32)});
    float z[3];
    REQUIRE(salt::draw_standard_normal(z, 3, src).ok());
    const double u1 = (std::ldexp(1.0, 52) + 1) / std::ldexp(1.0, 53);
    const double r = std::sqrt(-2 * std::log(u1));
    CHECK(z[0] == float(r * std::cos(kTwoPi * 0.25)));
    CHECK(z[1] == float(r * std::sin(kTwoPi * 0.25)));
    CHECK(z[2] == doctest::Approx(std::sqrt(-2 * std::log(std::ldexp(1.0, -53)))).epsilon(1e-6));
    CHECK(z[2] > 8.5f);
    CHECK(src.remaining() == 0);
}

TEST_CASE("desalt_logits rolls each row by its own salt") {
    for (int64_t classes : {1, 2, 10, 13, 100}) {
        const int64_t rows = 7;
        auto logits = Tensor::empty({rows, classes});
        auto fast = Tensor::empty({rows, classes});
        auto ref = Tensor::empty({rows, classes});
        REQUIRE(logits.ok());
        for (int64_t i = 0; i < logits->numel(); ++i) (*logits)[i] = std::sin(0.37f * float(i)) * 5.0f;
        std::vector<int64_t> salts(rows);
        for (int64_t n = 0; n < rows; ++n) salts[std::size_t(n)] = (n * 5 + 3) % classes;
        REQUIRE(salt::desalt_logits(logits->view(), salts.data(), fast->view()).ok());
        REQUIRE(salt::ref::desalt_logits(logits->view(), salts.data(), ref->view()).ok());
        for (int64_t n = 0; n < rows; ++n)
            for (int64_t c = 0; c < classes; ++c) {
                // the naive formula, written out once more
                const float want = (*logits)[n * classes + (c + salts[std::size_t(n)]) % classes];
                CHECK((*fast)[n * classes + c] == want);
                CHECK((*ref)[n * classes + c] == want);
            }
        // In place gives the same result.
        auto inplace = logits->clone();
        REQUIRE(inplace.ok());
        REQUIRE(salt::desalt_logits(inplace->view(), salts.data(), inplace->view()).ok());
        for (int64_t i = 0; i < inplace->numel(); ++i) CHECK((*inplace)[i] == (*ref)[i]);
    }
}

TEST_CASE("label recovery for every salt and every class") {
    for (int64_t classes : {2, 10, 13}) {
        for (int64_t label = 0; label < classes; ++label) {
            for (int64_t s = 0; s < classes; ++s) {
                // What a trained salted network emits: the peak at (label + s) mod C.
                auto logits = Tensor::empty({1, classes});
                REQUIRE(logits.ok());
                for (int64_t c = 0; c < classes; ++c) (*logits)[c] = -0.1f * float(c);
                const int64_t peak = (label + s) % classes;
                (*logits)[peak] = 10.0f;
                CAPTURE(classes);
                CAPTURE(label);
                CAPTURE(s);
                const int64_t salted_argmax = salt::argmax(logits->data(), classes);
                CHECK(salted_argmax == peak);
                auto l = salt::desalted_label(salted_argmax, s, classes);
                REQUIRE(l.ok());
                CHECK(*l == label);
                int64_t from_batch = -1;
                REQUIRE(salt::desalted_labels(logits->view(), &s, &from_batch).ok());
                CHECK(from_batch == label);
                auto rolled = Tensor::empty({1, classes});
                REQUIRE(salt::desalt_logits(logits->view(), &s, rolled->view()).ok());
                CHECK(salt::argmax(rolled->data(), classes) == label);
            }
        }
    }
}

TEST_CASE("desalted_labels resolves ties like desalt_logits + argmax") {
    // Equal scores at salted indices 1 and 3 with s = 2: classes 3 and 1.
    // After the roll, class 1 comes first, so it must win.
    const float row[5] = {0, 9, 0, 9, 0};
    const int64_t s = 2;
    int64_t label = -1;
    REQUIRE(salt::desalted_labels(ConstTensorView(row, {1, 5}), &s, &label).ok());
    float rolled[5];
    REQUIRE(salt::desalt_logits(ConstTensorView(row, {1, 5}), &s, TensorView(rolled, {1, 5})).ok());
    CHECK(label == 1);
    CHECK(salt::argmax(rolled, 5) == 1);
}

TEST_CASE("top_k: best first, ties by lower index, NaN last") {
    const float row[8] = {0.5f, 2.0f, -1.0f, 2.0f, 7.0f, 0.5f, std::nanf(""), -3.0f};
    auto t3 = salt::top_k(row, 8, 3);
    REQUIRE(t3.ok());
    CHECK(*t3 == std::vector<int64_t>{4, 1, 3});
    auto all = salt::top_k(row, 8, 8);
    REQUIRE(all.ok());
    CHECK(*all == std::vector<int64_t>{4, 1, 3, 0, 5, 2, 7, 6});
    CHECK(salt::argmax(row, 8) == 4);
    const float nans[3] = {std::nanf(""), std::nanf(""), std::nanf("")};
    CHECK(salt::argmax(nans, 3) == 0);
    const float ties[4] = {1, 1, 1, 1};
    auto t = salt::top_k(ties, 4, 4);
    REQUIRE(t.ok());
    CHECK(*t == std::vector<int64_t>{0, 1, 2, 3});

    // top-k of a de-salted row names classes directly.
    const float salted_row[5] = {0.1f, 0.9f, 0.3f, 0.8f, 0.2f};
    const int64_t s = 3;
    float rolled[5];
    REQUIRE(salt::desalt_logits(ConstTensorView(salted_row, {1, 5}), &s, TensorView(rolled, {1, 5})).ok());
    auto classes = salt::top_k(rolled, 5, 2);
    REQUIRE(classes.ok());
    // salted indices 1 (0.9) and 3 (0.8) are classes (1-3) mod 5 = 3 and 0.
    CHECK(*classes == std::vector<int64_t>{3, 0});

    CHECK(salt::top_k(row, 8, 0).code() == Errc::invalid_argument);
    CHECK(salt::top_k(row, 8, 9).code() == Errc::invalid_argument);
    CHECK(salt::top_k(row, 0, 1).code() == Errc::invalid_argument);
    CHECK(salt::top_k(nullptr, 8, 1).code() == Errc::invalid_argument);
}

TEST_CASE("softmax after de-salting equals de-salting after softmax") {
    auto softmax_rows = [](std::vector<float>& v, int64_t rows, int64_t classes) {
        for (int64_t n = 0; n < rows; ++n) {
            float* r = v.data() + n * classes;
            const float m = *std::max_element(r, r + classes);
            double sum = 0;
            for (int64_t c = 0; c < classes; ++c) sum += std::exp(double(r[c] - m));
            for (int64_t c = 0; c < classes; ++c) r[c] = float(std::exp(double(r[c] - m)) / sum);
        }
    };
    const int64_t rows = 4, classes = 13;
    std::vector<float> logits(rows * classes);
    for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = std::cos(1.3f * float(i)) * 4.0f;
    const std::vector<int64_t> salts = {0, 5, 12, 7};
    // path A: roll, then softmax
    std::vector<float> a(logits.size());
    REQUIRE(salt::desalt_logits(ConstTensorView(logits.data(), {rows, classes}), salts.data(),
                                TensorView(a.data(), {rows, classes})).ok());
    softmax_rows(a, rows, classes);
    // path B: softmax, then roll
    std::vector<float> b = logits;
    softmax_rows(b, rows, classes);
    REQUIRE(salt::desalt_logits(ConstTensorView(b.data(), {rows, classes}), salts.data(),
                                TensorView(b.data(), {rows, classes})).ok());
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-6));
    for (int64_t n = 0; n < rows; ++n) {
        double total = 0;
        for (int64_t c = 0; c < classes; ++c) total += a[std::size_t(n * classes + c)];
        CHECK(total == doctest::Approx(1.0).epsilon(1e-5));
    }
}

TEST_CASE("de-salting errors name the field") {
    float buf[6] = {0, 1, 2, 3, 4, 5};
    float out[6];
    int64_t good[2] = {1, 2};
    int64_t bad[2] = {1, 3};
    int64_t negative[2] = {-1, 0};
    ConstTensorView logits(buf, {2, 3});
    auto r = salt::desalt_logits(logits, bad, TensorView(out, {2, 3}));
    CHECK(r.code() == Errc::out_of_range);
    CHECK(r.message() == "desalt_logits: salts[1]: expected 0..2, found 3");
    CHECK(salt::desalt_logits(logits, negative, TensorView(out, {2, 3})).code() == Errc::out_of_range);
    CHECK(salt::desalt_logits(logits, nullptr, TensorView(out, {2, 3})).code() == Errc::invalid_argument);
    CHECK(salt::desalt_logits(ConstTensorView(buf, {6}), good, TensorView(out, {6})).code() == Errc::shape_mismatch);
    CHECK(salt::desalt_logits(logits, good, TensorView(out, {3, 2})).code() == Errc::shape_mismatch);
    CHECK(salt::desalt_logits(logits, good, TensorView(nullptr, {2, 3})).code() == Errc::invalid_argument);
    CHECK(salt::desalt_logits(logits, good, TensorView(buf + 1, {2, 3})).code() == Errc::invalid_argument);  // overlap
    CHECK(salt::desalt_logits(ConstTensorView(nullptr, {2, 3}), good, TensorView(out, {2, 3})).code() ==
          Errc::invalid_argument);
    CHECK(salt::ref::desalt_logits(logits, bad, TensorView(out, {2, 3})).code() == Errc::out_of_range);
    int64_t labels[2];
    CHECK(salt::desalted_labels(logits, bad, labels).code() == Errc::out_of_range);
    CHECK(salt::desalted_labels(logits, good, nullptr).code() == Errc::invalid_argument);

    CHECK(salt::desalted_label(0, 0, 0).code() == Errc::invalid_argument);
    CHECK(salt::desalted_label(3, 0, 3).code() == Errc::out_of_range);
    CHECK(salt::desalted_label(-1, 0, 3).code() == Errc::out_of_range);
    CHECK(salt::desalted_label(1, 3, 3).code() == Errc::out_of_range);
    auto l = salt::desalted_label(0, 2, 3);
    REQUIRE(l.ok());
    CHECK(*l == 1);  // (0 - 2) mod 3, non-negative
}
