// Image inputs (salted/io/image.hpp): a PNG written here decodes to the
// model's [1, C, H, W] layout with x / 255; wrong size, channels or bytes
// are errors that say so.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "salted/io/image.hpp"

// This test is the one translation unit of its program that compiles stb
// (after the header above included its declarations).
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

using namespace salted;

namespace {

void append(void* ctx, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(ctx);
    out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

std::vector<uint8_t> png(int w, int h, int channels) {
    std::vector<uint8_t> px(static_cast<std::size_t>(w * h * channels));
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37) % 256);
    std::vector<uint8_t> out;
    REQUIRE(stbi_write_png_to_func(append, &out, w, h, channels, px.data(), w * channels) != 0);
    return out;
}

}  // namespace

TEST_CASE("image: a 28x28 grayscale PNG becomes [1, 1, 28, 28] in [0, 1]") {
    const auto bytes = png(28, 28, 1);
    auto img = io::decode_image(bytes.data(), bytes.size(), "digit.png");
    REQUIRE(img.ok());
    CHECK(img->width == 28);
    CHECK(img->height == 28);
    CHECK(img->channels == 1);
    auto t = io::image_to_input(*img, Shape{1, 1, 28, 28}, "digit.png");
    REQUIRE(t.ok());
    CHECK(t->shape() == Shape{1, 1, 28, 28});
    for (int64_t i = 0; i < t->numel(); ++i)
        CHECK((*t)[i] == static_cast<float>((i * 37) % 256) / 255.0f);
}

TEST_CASE("image: RGB goes channel-first") {
    const auto bytes = png(4, 3, 3);
    auto img = io::decode_image(bytes.data(), bytes.size());
    REQUIRE(img.ok());
    auto t = io::image_to_input(*img, Shape{1, 3, 3, 4});
    REQUIRE(t.ok());
    // pixel (y=1, x=2), channel 2 is interleaved byte (1*4+2)*3+2 = 20.
    CHECK((*t)[(2 * 3 + 1) * 4 + 2] == static_cast<float>((20 * 37) % 256) / 255.0f);
}

TEST_CASE("image: wrong size, channels, model input or bytes are errors") {
    const auto gray = png(28, 28, 1);
    auto img = io::decode_image(gray.data(), gray.size(), "a.png");
    REQUIRE(img.ok());
    auto size = io::image_to_input(*img, Shape{1, 1, 32, 32}, "a.png");
    REQUIRE_FALSE(size.ok());
    CHECK(size.message().find("size: expected 32x32") != std::string::npos);
    CHECK(size.message().find("found 28x28") != std::string::npos);
    auto chans = io::image_to_input(*img, Shape{1, 3, 28, 28}, "a.png");
    REQUIRE_FALSE(chans.ok());
    CHECK(chans.message().find("channels: expected 3") != std::string::npos);
    auto flat = io::image_to_input(*img, Shape{1, 784}, "a.png");
    REQUIRE_FALSE(flat.ok());
    CHECK(flat.message().find("[N, C, H, W]") != std::string::npos);

    const auto rgb = png(28, 28, 3);
    auto colour = io::decode_image(rgb.data(), rgb.size(), "c.png");
    REQUIRE(colour.ok());
    auto r = io::image_to_input(*colour, Shape{1, 1, 28, 28}, "c.png");
    REQUIRE_FALSE(r.ok());
    CHECK(r.message().find("expected 1 (grayscale), found 3") != std::string::npos);

    const std::vector<uint8_t> junk = {'n', 'o', 't', ' ', 'p', 'n', 'g'};
    auto bad = io::decode_image(junk.data(), junk.size(), "junk.png");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.message().find("junk.png: cannot decode") != std::string::npos);
    std::vector<uint8_t> truncated(gray.begin(), gray.begin() + 40);
    CHECK_FALSE(io::decode_image(truncated.data(), truncated.size()).ok());
    CHECK_FALSE(io::decode_image(nullptr, 0).ok());
    auto missing = io::read_image("no/such.png");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.message().find("no/such.png") != std::string::npos);
}
