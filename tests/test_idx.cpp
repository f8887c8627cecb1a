// IDX reader (salted/io/idx.hpp): a valid file, then every malformed or
// truncated variant is an error naming the field, never a crash.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "salted/io/idx.hpp"

using namespace salted;

namespace {

std::vector<uint8_t> idx_bytes(std::vector<uint32_t> dims, uint8_t type = 0x08) {
    std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
    std::size_t n = 1;
    for (uint32_t d : dims) {
        for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
        n *= d;
    }
    for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(i * 7 + 1));
    return b;
}

std::string error_of(const std::vector<uint8_t>& b) {
    auto r = io::parse_idx(b.data(), b.size(), "t.idx");
    REQUIRE_FALSE(r.ok());
    return r.message();
}

}  // namespace

TEST_CASE("idx: a valid image set parses with its dims and bytes") {
    const auto b = idx_bytes({3, 2, 4});
    auto r = io::parse_idx(b.data(), b.size());
    REQUIRE(r.ok());
    CHECK(r->dims == std::vector<int64_t>{3, 2, 4});
    CHECK(r->count() == 3);
    REQUIRE(r->data.size() == 24);
    CHECK(r->data[0] == 1);
    CHECK(r->data[23] == static_cast<uint8_t>(23 * 7 + 1));
}

TEST_CASE("idx: big-endian dims above 255 are read correctly") {
    const auto b = idx_bytes({300});
    auto r = io::parse_idx(b.data(), b.size());
    REQUIRE(r.ok());
    CHECK(r->dims == std::vector<int64_t>{300});
}

TEST_CASE("idx: read_idx reads a file and reports a missing one") {
    const std::string path = "test_idx_tmp.idx";
    const auto b = idx_bytes({5});
    std::FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    std::fwrite(b.data(), 1, b.size(), f);
    std::fclose(f);
    auto r = io::read_idx(path);
    REQUIRE(r.ok());
    CHECK(r->data.size() == 5);
    std::remove(path.c_str());
    auto missing = io::read_idx("no/such/file.idx");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.message().find("no/such/file.idx") != std::string::npos);
}

TEST_CASE("idx: malformed headers are named") {
    CHECK(error_of({}).find("magic") != std::string::npos);
    CHECK(error_of({0, 0, 8}).find("magic") != std::string::npos);
    CHECK(error_of({1, 0, 8, 1, 0, 0, 0, 1, 5}).find("not an IDX") != std::string::npos);
    CHECK(error_of(idx_bytes({2}, 0x0D)).find("type") != std::string::npos);  // float32 set: unsupported
    CHECK(error_of({0, 0, 8, 0}).find("rank") != std::string::npos);
    CHECK(error_of({0, 0, 8, 9}).find("rank") != std::string::npos);
    CHECK(error_of({0, 0, 8, 2, 0, 0, 0, 1}).find("dims") != std::string::npos);  // dims cut short
    CHECK(error_of({0, 0, 8, 1, 0, 0, 0, 0}).find("dims[0]") != std::string::npos);  // a zero dim
    // Dims whose product is astronomically large: refused before any allocation.
    CHECK(error_of({0, 0, 8, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
              .find("2^40") != std::string::npos);
}

TEST_CASE("idx: every truncation and trailing bytes are errors") {
    const auto good = idx_bytes({2, 3, 3});
    for (std::size_t n = 0; n < good.size(); ++n) {
        std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
        auto r = io::parse_idx(cut.data(), cut.size());
        CHECK_FALSE(r.ok());
    }
    auto extra = good;
    extra.push_back(0);
    CHECK(error_of(extra).find("trailing") != std::string::npos);
    const std::vector<uint8_t> short_payload(good.begin(), good.end() - 1);
    CHECK(error_of(short_payload).find("truncated") != std::string::npos);
    CHECK_FALSE(io::parse_idx(nullptr, 4).ok());
}

TEST_CASE("idx: images and labels must belong together") {
    auto ib = idx_bytes({4, 2, 2});
    auto lb = idx_bytes({4});
    for (auto& v : std::vector<uint8_t*>{&lb[8], &lb[9], &lb[10], &lb[11]}) *v = 3;
    auto images = io::parse_idx(ib.data(), ib.size());
    auto labels = io::parse_idx(lb.data(), lb.size());
    REQUIRE(images.ok());
    REQUIRE(labels.ok());
    CHECK(io::check_idx_pair(*images, *labels, 10).ok());
    CHECK(io::check_idx_pair(*images, *labels, 3).message().find("labels[0]") != std::string::npos);
    CHECK(io::check_idx_pair(*labels, *labels, 10).message().find("rank 3") != std::string::npos);
    CHECK(io::check_idx_pair(*images, *images, 10).message().find("rank 1") != std::string::npos);
    auto lb3 = idx_bytes({3});
    auto three = io::parse_idx(lb3.data(), lb3.size());
    REQUIRE(three.ok());
    for (auto& v : three->data) v = 0;
    CHECK(io::check_idx_pair(*images, *three, 10).message().find("one per image") != std::string::npos);
}
