// Cut-tensor frames: CRC32C, f16 conversion, encode/decode round trips, and
// every way a frame can be malformed (truncated, corrupted, forged headers
// with a valid checksum, frames for another model or cut), plus fd streams.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#include "salted/io/checksum.hpp"
#include "salted/io/f16.hpp"
#include "salted/io/frame.hpp"
#include "salted/io/frame_stream.hpp"

using namespace salted;
using io::FrameDtype;

namespace {

// Small deterministic generator for test data (xorshift64*); not a salt source.
struct TestRng {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    float uniform(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) / float(1 << 24); }
};

uint32_t bits_of(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}
float float_of(uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}

io::ModelId make_model_id(uint8_t seed) {
    io::ModelId id;
    for (std::size_t i = 0; i < id.size(); ++i) id[i] = uint8_t(seed * 31 + i * 7);
    return id;
}

io::FrameInfo make_info(FrameDtype dtype = FrameDtype::f32, std::string name = "block2.relu") {
    io::FrameInfo info;
    info.model_id = make_model_id(3);
    info.cut_id = 7;
    info.cut_name = std::move(name);
    info.dtype = dtype;
    return info;
}

Tensor make_tensor(const Shape& shape, uint64_t seed = 1) {
    Tensor t = Tensor::empty(shape).value();
    TestRng rng;
    rng.s ^= seed;
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.uniform(-8.0f, 8.0f);
    return t;
}

// Recomputes the trailing CRC32C, so a test can forge a header that passes the
// checksum and must be caught by field validation instead.
void reseal(std::vector<uint8_t>& f) {
    const uint32_t c = io::crc32c(f.data(), f.size() - 4);
    for (int i = 0; i < 4; ++i) f[f.size() - 4 + i] = uint8_t(c >> (8 * i));
}

void put_u64(std::vector<uint8_t>& f, std::size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) f[at + i] = uint8_t(v >> (8 * i));
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("crc32c: check value, fast paths against the bitwise twin, chaining") {
    const char* check = "123456789";
    CHECK(io::crc32c(check, 9) == 0xE3069283u);
    CHECK(io::ref::crc32c(check, 9) == 0xE3069283u);
    CHECK(io::detail::crc32c_table_driven(check, 9, 0) == 0xE3069283u);
    CHECK(io::crc32c(nullptr, 0) == 0u);
    // 32 zero bytes: test vector from RFC 3720 (iSCSI), B.4.
    const std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF);
    CHECK(io::crc32c(zeros.data(), 32) == 0x8A9136AAu);
    CHECK(io::crc32c(ones.data(), 32) == 0x62A8AB43u);

    TestRng rng;
    std::vector<uint8_t> buf(600);
    for (auto& b : buf) b = uint8_t(rng.next());
    for (std::size_t offset = 0; offset < 8; ++offset) {
        for (std::size_t n = 0; n + offset <= 300; ++n) {
            const uint32_t want = io::ref::crc32c(buf.data() + offset, n);
            CHECK(io::crc32c(buf.data() + offset, n) == want);
            CHECK(io::detail::crc32c_table_driven(buf.data() + offset, n, 0) == want);
        }
    }
    for (std::size_t split = 0; split <= 600; split += 37) {
        const uint32_t whole = io::crc32c(buf.data(), buf.size());
        CHECK(io::crc32c(buf.data() + split, buf.size() - split, io::crc32c(buf.data(), split)) == whole);
    }
}

TEST_CASE("f16: known encodings, round to nearest even") {
    struct Case { float x; uint16_t h; };
    const Case cases[] = {
        {1.0f, 0x3C00}, {-2.0f, 0xC000}, {65504.0f, 0x7BFF}, {65519.99f, 0x7BFF}, {65520.0f, 0x7C00},
        {std::ldexp(1.0f, -24), 0x0001}, {std::ldexp(1.0f, -25), 0x0000}, {std::ldexp(1.5f, -25), 0x0001},
        {std::ldexp(3.0f, -25), 0x0002}, {std::ldexp(5.0f, -25), 0x0002},
        {std::ldexp(1.0f, -14), 0x0400}, {std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25), 0x0400},
        {0.1f, 0x2E66}, {1.0f / 3.0f, 0x3555}, {1.0f + std::ldexp(1.0f, -11), 0x3C00},
        {1.0f + 3 * std::ldexp(1.0f, -11), 0x3C02}, {-0.0f, 0x8000}, {INFINITY, 0x7C00}, {-INFINITY, 0xFC00},
        {1e30f, 0x7C00}, {-1e-30f, 0x8000},
    };
    for (const Case& c : cases) {
        CAPTURE(c.x);
        CHECK(io::f32_to_f16(c.x) == c.h);
        CHECK(io::ref::f32_to_f16(c.x) == c.h);
        uint16_t fast;
        io::f32_to_f16_n(&c.x, &fast, 1);
        CHECK(fast == c.h);
    }
    CHECK((io::f32_to_f16(std::nanf("")) & 0x7C00) == 0x7C00);
    CHECK((io::f32_to_f16(std::nanf("")) & 0x03FF) != 0);
    CHECK(io::f16_overflows(65520.0f));
    CHECK(!io::f16_overflows(65519.0f));
    CHECK(!io::f16_overflows(INFINITY));
}

TEST_CASE("f16 -> f32 is exact for all 65536 halves, and f32 -> f16 inverts it") {
    std::vector<uint16_t> all(65536);
    for (uint32_t h = 0; h < 65536; ++h) all[h] = uint16_t(h);
    std::vector<float> wide(65536);
    io::f16_to_f32_n(all.data(), wide.data(), all.size());
    std::vector<uint16_t> back(65536);
    io::f32_to_f16_n(wide.data(), back.data(), wide.size());
    int mismatches = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float scalar = io::f16_to_f32(uint16_t(h));
        const float ref = io::ref::f16_to_f32(uint16_t(h));
        const bool nan = ((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF) != 0;
        if (nan) {
            mismatches += !(std::isnan(scalar) && std::isnan(ref) && std::isnan(wide[h]) && std::isnan(float_of(bits_of(scalar))));
            mismatches += (back[h] & 0x7C00) != 0x7C00 || (back[h] & 0x3FF) == 0;
            mismatches += (io::f32_to_f16(scalar) & 0x7E00) != 0x7E00;  // comes back as a quiet NaN
            continue;
        }
        mismatches += bits_of(scalar) != bits_of(ref);
        mismatches += bits_of(wide[h]) != bits_of(scalar);
        mismatches += io::f32_to_f16(scalar) != h;
        mismatches += back[h] != h;
    }
    CHECK(mismatches == 0);
}

TEST_CASE("f32 -> f16: bit-level, F16C and arithmetic paths agree, error within the documented bound") {
    // Every float whose low 13 bits are a rounding edge (exact, just below,
    // at and just above the tie), for all sign/exponent/high-mantissa values.
    const uint32_t lows[] = {0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF};
    std::vector<float> xs;
    xs.reserve(6u << 19);
    for (uint32_t high = 0; high < (1u << 19); ++high)
        for (uint32_t low : lows) xs.push_back(float_of((high << 13) | low));
    std::vector<uint16_t> vec(xs.size());
    io::f32_to_f16_n(xs.data(), vec.data(), xs.size());
    int mismatches = 0, bound_violations = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const float x = xs[i];
        const uint16_t h = io::f32_to_f16(x);
        if (std::isnan(x)) {
            mismatches += h != vec[i] || (h & 0x7E00) != 0x7E00;
            continue;
        }
        mismatches += h != io::ref::f32_to_f16(x);
        mismatches += h != vec[i];
        if (std::isfinite(x) && !io::f16_overflows(x)) {
            const double err = std::fabs(double(io::f16_to_f32(h)) - double(x));
            const double bound = std::max(std::fabs(double(x)) * std::ldexp(1.0, -11), std::ldexp(1.0, -25));
            bound_violations += err > bound;
        } else if (std::isfinite(x)) {
            mismatches += (h & 0x7FFF) != 0x7C00;  // overflow goes to infinity
        }
    }
    CHECK(mismatches == 0);
    CHECK(bound_violations == 0);
}

TEST_CASE("frame round trip: f32 is bit exact for every rank") {
    const Shape shapes[] = {{5}, {1, 10}, {2, 3, 4}, {1, 32, 14, 14}, {2, 1, 3, 1, 2}, {1, 2, 1, 3, 1, 2}};
    for (const Shape& shape : shapes) {
        Tensor t = make_tensor(shape, uint64_t(shape.numel()));
        t[0] = float_of(0x7FC01234u);  // a NaN with a payload survives bit for bit
        if (t.numel() > 1) t[1] = -0.0f;
        for (const char* name : {"", "conv2.out", "x"}) {
            auto info = make_info(FrameDtype::f32, name);
            auto bytes = io::encode_frame(t.view(), info);
            REQUIRE(bytes.ok());
            auto size = io::encoded_frame_bytes(shape, FrameDtype::f32, std::strlen(name));
            REQUIRE(size.ok());
            CHECK(bytes->size() == *size);
            io::FrameExpectation expect;
            expect.model_id = info.model_id;
            expect.cut_id = info.cut_id;
            expect.cut_name = std::string(name);
            auto f = io::decode_frame(*bytes, expect);
            REQUIRE(f.ok());
            CHECK(f->info.model_id == info.model_id);
            CHECK(f->info.cut_id == 7u);
            CHECK(f->info.cut_name == name);
            CHECK(f->info.dtype == FrameDtype::f32);
            CHECK(f->tensor.shape() == shape);
            CHECK(std::memcmp(f->tensor.data(), t.data(), std::size_t(t.numel()) * 4) == 0);
        }
    }
}

TEST_CASE("frame layout is the documented one, byte for byte") {
    const float v[2] = {1.0f, -2.0f};
    io::FrameInfo info = make_info(FrameDtype::f32, "ab");
    info.cut_id = 0x01020304;
    auto bytes = io::encode_frame(ConstTensorView(v, {1, 2}), info);
    REQUIRE(bytes.ok());
    const std::vector<uint8_t>& b = *bytes;
    REQUIRE(b.size() == 48 + 16 + 2 + 8 + 8 + 4);
    CHECK(std::memcmp(b.data(), "SLTF", 4) == 0);
    CHECK(b[4] == 1);
    CHECK(b[5] == 0);
    CHECK(b[6] == 1);  // f32
    CHECK(b[7] == 2);  // rank
    CHECK(b[8] == 4);  // cut_id little-endian
    CHECK(b[11] == 1);
    CHECK(b[12] == 2);  // name_len
    CHECK(std::memcmp(b.data() + 16, info.model_id.data(), 32) == 0);
    CHECK(b[48] == 1);  // dims[0] = 1
    CHECK(b[56] == 2);  // dims[1] = 2
    CHECK(b[64] == 'a');
    CHECK(b[65] == 'b');
    CHECK(b[66] == 8);  // payload_bytes
    const uint8_t one_le[4] = {0x00, 0x00, 0x80, 0x3F};
    CHECK(std::memcmp(b.data() + 74, one_le, 4) == 0);
    const uint32_t crc = io::crc32c(b.data(), b.size() - 4);
    CHECK(b[b.size() - 4] == uint8_t(crc));
    CHECK(b[b.size() - 1] == uint8_t(crc >> 24));
}

TEST_CASE("frame round trip: f16 within the documented bound, half the payload") {
    Tensor t = make_tensor({2, 8, 5, 7});
    t[0] = 65504.0f;
    t[1] = -1e-7f;          // subnormal in f16
    t[2] = 3e-9f;           // below half the smallest subnormal: becomes 0
    t[3] = INFINITY;
    t[4] = std::nanf("");
    auto info = make_info(FrameDtype::f16);
    auto bytes = io::encode_frame(t.view(), info);
    REQUIRE(bytes.ok());
    auto f32_size = io::encoded_frame_bytes(t.shape(), FrameDtype::f32, info.cut_name.size());
    REQUIRE(f32_size.ok());
    CHECK(bytes->size() == *f32_size - std::size_t(t.numel()) * 2);
    auto f = io::decode_frame(*bytes);
    REQUIRE(f.ok());
    CHECK(f->info.dtype == FrameDtype::f16);
    CHECK(f->tensor.shape() == t.shape());
    for (int64_t i = 0; i < t.numel(); ++i) {
        const float x = t[i], y = f->tensor[i];
        CAPTURE(i);
        if (std::isnan(x)) {
            CHECK(std::isnan(y));
        } else if (std::isinf(x)) {
            CHECK(y == x);
        } else {
            const double bound = std::max(std::fabs(double(x)) * std::ldexp(1.0, -11), std::ldexp(1.0, -25));
            CHECK(std::fabs(double(y) - double(x)) <= bound);
        }
    }
    CHECK(f->tensor[0] == 65504.0f);
    CHECK(f->tensor[2] == 0.0f);
    // Encoding a decoded f16 frame again reproduces the same bytes.
    auto again = io::encode_frame(f->tensor.view(), f->info);
    REQUIRE(again.ok());
    CHECK(*again == *bytes);
}

TEST_CASE("encode reuses the caller's buffer") {
    Tensor t = make_tensor({1, 4, 3, 3});
    std::vector<uint8_t> buf;
    REQUIRE(io::encode_frame(t.view(), make_info(), buf).ok());
    const uint8_t* first = buf.data();
    const std::size_t size = buf.size();
    t[0] = 1.5f;
    REQUIRE(io::encode_frame(t.view(), make_info(), buf).ok());
    CHECK(buf.data() == first);
    CHECK(buf.size() == size);
    auto f = io::decode_frame(buf);
    REQUIRE(f.ok());
    CHECK(f->tensor[0] == 1.5f);
}

TEST_CASE("every truncation of a frame is an error") {
    for (FrameDtype dt : {FrameDtype::f32, FrameDtype::f16}) {
        Tensor t = make_tensor({2, 3, 2});
        auto bytes = io::encode_frame(t.view(), make_info(dt));
        REQUIRE(bytes.ok());
        for (std::size_t n = 0; n < bytes->size(); ++n) {
            auto r = io::decode_frame(bytes->data(), n);
            CAPTURE(n);
            CHECK(!r.ok());
            CHECK(r.code() == Errc::parse_error);
            CHECK(contains(r.message(), "truncated"));
        }
        CHECK(io::decode_frame(nullptr, 0).code() == Errc::parse_error);
        CHECK(io::decode_frame(nullptr, 10).code() == Errc::invalid_argument);
        // ... and so is anything after its end.
        auto longer = *bytes;
        longer.push_back(0);
        auto r = io::decode_frame(longer);
        CHECK(r.code() == Errc::parse_error);
        CHECK(contains(r.message(), "frame: length: expected"));
    }
}

TEST_CASE("every corrupted byte and every flipped bit is detected") {
    Tensor t = make_tensor({1, 3, 2, 2});
    auto bytes = io::encode_frame(t.view(), make_info(FrameDtype::f32, "c"));
    REQUIRE(bytes.ok());
    REQUIRE(io::decode_frame(*bytes).ok());
    int undetected = 0;
    for (std::size_t i = 0; i < bytes->size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            auto bad = *bytes;
            bad[i] ^= uint8_t(1u << bit);
            undetected += io::decode_frame(bad).ok();
        }
        for (uint8_t mask : {0xFF, 0x55, 0x80 | 0x01}) {
            auto bad = *bytes;
            bad[i] ^= mask;
            undetected += io::decode_frame(bad).ok();
        }
    }
    CHECK(undetected == 0);
    // A payload-only flip is caught by the checksum specifically.
    auto bad = *bytes;
    bad[bad.size() - 6] ^= 0x10;
    auto r = io::decode_frame(bad);
    CHECK(r.code() == Errc::verify_failed);
    CHECK(contains(r.message(), "frame: checksum: expected crc32c"));
}

TEST_CASE("a frame for another model, cut or cut name is refused") {
    Tensor t = make_tensor({1, 6});
    auto info = make_info();
    auto bytes = io::encode_frame(t.view(), info);
    REQUIRE(bytes.ok());
    io::FrameExpectation other_model;
    other_model.model_id = make_model_id(4);
    auto r = io::decode_frame(*bytes, other_model);
    CHECK(r.code() == Errc::verify_failed);
    CHECK(contains(r.message(), "frame: model_id: expected "));
    CHECK(contains(r.message(), io::model_id_hex(info.model_id).c_str()));
    io::FrameExpectation other_cut;
    other_cut.cut_id = 8;
    r = io::decode_frame(*bytes, other_cut);
    CHECK(r.code() == Errc::verify_failed);
    CHECK(r.message() == "frame: cut_id: expected 8, found 7");
    io::FrameExpectation other_name;
    other_name.cut_name = std::string("block3.relu");
    r = io::decode_frame(*bytes, other_name);
    CHECK(r.code() == Errc::verify_failed);
    CHECK(r.message() == "frame: cut_name: expected 'block3.relu', found 'block2.relu'");
    io::FrameExpectation right;
    right.model_id = info.model_id;
    right.cut_id = 7;
    CHECK(io::decode_frame(*bytes, right).ok());
    CHECK(io::model_id_hex(io::ModelId{}) == std::string(64, '0'));
}

TEST_CASE("forged headers with a valid checksum are rejected, naming the field") {
    // Shape [2, 3], name "ab": dims at 48 and 56, name at 64, payload_bytes at 66.
    Tensor t = make_tensor({2, 3});
    auto good = io::encode_frame(t.view(), make_info(FrameDtype::f32, "ab"));
    REQUIRE(good.ok());
    REQUIRE(io::decode_frame(*good).ok());

    struct Forgery {
        const char* what;
        void (*edit)(std::vector<uint8_t>&);
        Errc code;
        const char* message;
    };
    const Forgery forgeries[] = {
        {"magic", [](std::vector<uint8_t>& f) { f[3] = 'X'; }, Errc::parse_error,
         "frame: magic: expected 53 4c 54 46 ('SLTF'), found 53 4c 54 58"},
        {"version 2", [](std::vector<uint8_t>& f) { f[4] = 2; }, Errc::unsupported, "frame: version: expected 1, found 2"},
        {"version high byte", [](std::vector<uint8_t>& f) { f[5] = 1; }, Errc::unsupported,
         "frame: version: expected 1, found 257"},
        {"dtype 0", [](std::vector<uint8_t>& f) { f[6] = 0; }, Errc::parse_error,
         "frame: dtype: expected 1 (f32) or 2 (f16), found 0"},
        {"dtype int8", [](std::vector<uint8_t>& f) { f[6] = 3; }, Errc::unsupported,
         "frame: dtype: expected 1 (f32) or 2 (f16), found 3 (int8, reserved)"},
        {"dtype 200", [](std::vector<uint8_t>& f) { f[6] = 200; }, Errc::parse_error,
         "frame: dtype: expected 1 (f32) or 2 (f16), found 200"},
        {"dtype f16 on an f32 payload", [](std::vector<uint8_t>& f) { f[6] = 2; }, Errc::parse_error,
         "frame: payload_bytes: expected 12 (6 elements x 2 bytes f16), found 24"},
        {"rank 0", [](std::vector<uint8_t>& f) { f[7] = 0; }, Errc::parse_error, "frame: rank: expected 1..6, found 0"},
        {"rank 7", [](std::vector<uint8_t>& f) { f[7] = 7; }, Errc::parse_error, "frame: rank: expected 1..6, found 7"},
        {"rank 255", [](std::vector<uint8_t>& f) { f[7] = 255; }, Errc::parse_error,
         "frame: rank: expected 1..6, found 255"},
        {"name_len 65", [](std::vector<uint8_t>& f) { f[12] = 65; }, Errc::parse_error,
         "frame: name_len: expected 0..64, found 65"},
        {"reserved", [](std::vector<uint8_t>& f) { f[14] = 1; }, Errc::parse_error,
         "frame: reserved: expected 00 00 00, found 00 01 00"},
        {"dims[0] = 0", [](std::vector<uint8_t>& f) { put_u64(f, 48, 0); }, Errc::parse_error,
         "frame: dims[0]: expected 1..2^40, found 0"},
        {"dims[1] = 2^40 + 1", [](std::vector<uint8_t>& f) { put_u64(f, 56, (uint64_t(1) << 40) + 1); },
         Errc::parse_error, "frame: dims[1]: expected 1..2^40, found 1099511627777"},
        {"dims[1] = 2^64 - 1", [](std::vector<uint8_t>& f) { put_u64(f, 56, ~uint64_t(0)); }, Errc::parse_error,
         "frame: dims[1]: expected 1..2^40, found 18446744073709551615"},
        {"dims product overflow", [](std::vector<uint8_t>& f) { put_u64(f, 48, uint64_t(1) << 30); put_u64(f, 56, uint64_t(1) << 30); },
         Errc::parse_error, "frame: dims: expected at most 2^40 elements, found more at dims[1]"},
        {"dims[1] = 4 (payload too short)", [](std::vector<uint8_t>& f) { put_u64(f, 56, 4); }, Errc::parse_error,
         "frame: payload_bytes: expected 32 (8 elements x 4 bytes f32), found 24"},
        {"cut_name control byte", [](std::vector<uint8_t>& f) { f[65] = '\n'; }, Errc::parse_error,
         "frame: cut_name: expected printable ASCII, found byte 0x0a at 1"},
        {"cut_name high byte", [](std::vector<uint8_t>& f) { f[64] = 0xC3; }, Errc::parse_error,
         "frame: cut_name: expected printable ASCII, found byte 0xc3 at 0"},
        {"payload_bytes", [](std::vector<uint8_t>& f) { put_u64(f, 66, 20); }, Errc::parse_error,
         "frame: payload_bytes: expected 24 (6 elements x 4 bytes f32), found 20"},
        {"payload_bytes huge", [](std::vector<uint8_t>& f) { put_u64(f, 66, ~uint64_t(0)); }, Errc::parse_error,
         "frame: payload_bytes: expected 24 (6 elements x 4 bytes f32), found 18446744073709551615"},
    };
    for (const Forgery& forgery : forgeries) {
        CAPTURE(forgery.what);
        auto bad = *good;
        forgery.edit(bad);
        reseal(bad);
        auto r = io::decode_frame(bad);
        REQUIRE(!r.ok());
        CHECK(r.code() == forgery.code);
        CHECK(r.message() == forgery.message);
    }

    // A consistent header claiming a huge tensor is refused for its length,
    // before anything of that size is allocated.
    auto huge = *good;
    put_u64(huge, 48, uint64_t(1) << 20);
    put_u64(huge, 56, uint64_t(1) << 20);
    put_u64(huge, 66, uint64_t(1) << 42);
    reseal(huge);
    auto r = io::decode_frame(huge);
    CHECK(r.code() == Errc::parse_error);
    CHECK(contains(r.message(), "frame: truncated: expected 4398046511182 bytes"));
    // A reduced rank shifts the fields; still an error, never a misread.
    auto shrunk = *good;
    shrunk[7] = 1;
    reseal(shrunk);
    CHECK(!io::decode_frame(shrunk).ok());
}

TEST_CASE("encode errors name the field") {
    Tensor t = make_tensor({2, 3});
    auto r = io::encode_frame(ConstTensorView(nullptr, {2, 3}), make_info());
    CHECK(r.code() == Errc::invalid_argument);
    float scalar = 1.0f;
    r = io::encode_frame(ConstTensorView(&scalar, Shape{}), make_info());
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(r.message() == "frame: rank: expected 1..6, found 0");
    r = io::encode_frame(ConstTensorView(t.data(), {2, 0}), make_info());
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(contains(r.message(), "frame: tensor: shape [2, 0]: dimension 1: expected > 0, found 0"));
    r = io::encode_frame(t.view(), make_info(FrameDtype::f32, std::string(65, 'a')));
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(r.message() == "frame: cut_name: expected at most 64 bytes, found 65");
    CHECK(io::encode_frame(t.view(), make_info(FrameDtype::f32, std::string(64, 'a'))).ok());
    r = io::encode_frame(t.view(), make_info(FrameDtype::f32, "tab\there"));
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(contains(r.message(), "cut_name: expected printable ASCII"));
    r = io::encode_frame(t.view(), make_info(FrameDtype::i8));
    CHECK(r.code() == Errc::unsupported);
    r = io::encode_frame(t.view(), make_info(FrameDtype(9)));
    CHECK(r.code() == Errc::unsupported);
    t[4] = 70000.0f;
    r = io::encode_frame(t.view(), make_info(FrameDtype::f16));
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(contains(r.message(), "frame: f16: element 4 = 70000 is outside the f16 range"));
    CHECK(io::encode_frame(t.view(), make_info(FrameDtype::f32)).ok());
}

TEST_CASE("frames over a pipe: several in a row, limits, truncated streams") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    Tensor a = make_tensor({1, 4, 3}, 11), b = make_tensor({2, 5}, 12);
    auto fa = io::encode_frame(a.view(), make_info(FrameDtype::f32));
    auto fb = io::encode_frame(b.view(), make_info(FrameDtype::f16, ""));
    REQUIRE(fa.ok());
    REQUIRE(fb.ok());
    REQUIRE(io::write_frame(fds[1], *fa).ok());
    REQUIRE(io::write_frame(fds[1], *fb).ok());
    REQUIRE(io::write_frame(fds[1], *fa).ok());
    auto ra = io::read_frame(fds[0], 1 << 20);
    REQUIRE(ra.ok());
    CHECK(std::memcmp(ra->tensor.data(), a.data(), 48) == 0);
    auto rb = io::read_frame(fds[0], 1 << 20);
    REQUIRE(rb.ok());
    CHECK(rb->info.dtype == FrameDtype::f16);
    CHECK(rb->tensor.shape() == b.shape());
    // The third frame is larger than this reader accepts: refused from its header.
    auto rc = io::read_frame(fds[0], fa->size() - 1);
    CHECK(rc.code() == Errc::out_of_range);
    CHECK(contains(rc.message(), "the reader's limit"));
    ::close(fds[0]);
    ::close(fds[1]);

    // A stream that ends mid-frame, or at the very start.
    REQUIRE(::pipe(fds) == 0);
    std::vector<uint8_t> half(fa->begin(), fa->begin() + std::ptrdiff_t(fa->size() - 10));
    REQUIRE(io::write_frame(fds[1], half).ok());
    ::close(fds[1]);
    auto rd = io::read_frame(fds[0], 1 << 20);
    CHECK(rd.code() == Errc::io_error);
    CHECK(contains(rd.message(), "end of stream in the payload/checksum"));
    auto re = io::read_frame(fds[0], 1 << 20);
    CHECK(re.code() == Errc::io_error);
    CHECK(contains(re.message(), "end of stream in the fixed header after 0 bytes"));
    ::close(fds[0]);

    // A stream that ends inside the variable part of the header.
    REQUIRE(::pipe(fds) == 0);
    std::vector<uint8_t> header_only(fa->begin(), fa->begin() + 60);
    REQUIRE(io::write_frame(fds[1], header_only).ok());
    ::close(fds[1]);
    auto rh = io::read_frame(fds[0], 1 << 20);
    CHECK(rh.code() == Errc::io_error);
    CHECK(contains(rh.message(), "end of stream in the dims/cut_name/payload_bytes after 60 bytes"));
    ::close(fds[0]);

    // Garbage on the stream is refused from the fixed header, nothing more is read.
    REQUIRE(::pipe(fds) == 0);
    std::vector<uint8_t> junk(64, 'J');
    REQUIRE(io::write_frame(fds[1], junk).ok());
    auto rj = io::read_frame(fds[0], 1 << 20);
    CHECK(rj.code() == Errc::parse_error);
    CHECK(contains(rj.message(), "frame: magic"));
    ::close(fds[0]);
    ::close(fds[1]);

    // Expectations apply to streamed frames too.
    REQUIRE(::pipe(fds) == 0);
    REQUIRE(io::write_frame(fds[1], *fa).ok());
    io::FrameExpectation expect;
    expect.cut_id = 99;
    CHECK(io::read_frame(fds[0], 1 << 20, expect).code() == Errc::verify_failed);
    ::close(fds[0]);
    ::close(fds[1]);
}
