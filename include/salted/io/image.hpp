// Images (PNG, and whatever else stb_image reads) as model inputs.
//
// OPTIONAL header: it declares its decoder through <stb/stb_image.h>
// (Debian libstb-dev) but does not compile stb itself, so that a program
// holds stb's implementation exactly once. A program that includes this
// header must compile, in ONE of its .cpp files:
//
//     #define STB_IMAGE_IMPLEMENTATION
//     #include <stb/stb_image.h>
//
// (the `salted` program does so in tools/salted/stb_image_impl.cpp).
// Without it, linking fails on stbi_load_from_memory: a loud, early error.
#pragma once

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include <stb/stb_image.h>

#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"
#include "salted/core/tensor.hpp"
#include "salted/io/npy.hpp"

namespace salted {
namespace io {

// Decoded pixels, interleaved (HWC), 8 bits per channel.
struct Image {
    int width = 0, height = 0, channels = 0;
    std::vector<uint8_t> pixels;
};

// `what` names the source (a path) in error messages.
inline Result<Image> decode_image(const uint8_t* data, std::size_t size, const std::string& what = "image") {
    if (!data || size == 0) return make_error(Errc::parse_error, "%s: expected image bytes, found none", what.c_str());
    if (size > static_cast<std::size_t>(INT_MAX))
        return make_error(Errc::unsupported, "%s: expected at most 2 GiB, found %zu bytes", what.c_str(), size);
    Image img;
    // 0 requested channels: keep the file's own, so a colour image given to
    // a grayscale model is reported instead of silently converted.
    stbi_uc* px = stbi_load_from_memory(data, static_cast<int>(size), &img.width, &img.height, &img.channels, 0);
    if (!px) {
        const char* why = stbi_failure_reason();
        return make_error(Errc::parse_error, "%s: cannot decode the image (%s)", what.c_str(), why ? why : "unknown");
    }
    img.pixels.assign(px, px + std::size_t(img.width) * std::size_t(img.height) * std::size_t(img.channels));
    stbi_image_free(px);
    return img;
}

inline Result<Image> read_image(const std::string& path) {
    SALTED_ASSIGN(auto bytes, read_file_bytes(path));
    return decode_image(bytes.data(), bytes.size(), path);
}

// One batch item [1, C, H, W] for a model whose input is `input` ([N, C, H,
// W]; N is ignored): pixels scaled to [0, 1] as x / 255, and nothing else:
// any normalisation belongs to the model itself.
inline Result<Tensor> image_to_input(const Image& img, const Shape& input, const std::string& what = "image") {
    if (input.rank() != 4)
        return make_error(Errc::shape_mismatch, "%s: the model input is %s, expected [N, C, H, W] for an image",
                          what.c_str(), input.str().c_str());
    const int64_t c = input[1], h = input[2], w = input[3];
    if (img.channels != c)
        return make_error(Errc::shape_mismatch, "%s: channels: expected %lld (%s), found %d", what.c_str(),
                          static_cast<long long>(c), c == 1 ? "grayscale" : c == 3 ? "RGB" : "the model's input",
                          img.channels);
    if (img.height != h || img.width != w)
        return make_error(Errc::shape_mismatch, "%s: size: expected %lldx%lld (WxH), found %dx%d", what.c_str(),
                          static_cast<long long>(w), static_cast<long long>(h), img.width, img.height);
    if (img.pixels.size() != static_cast<std::size_t>(c * h * w))
        return make_error(Errc::parse_error, "%s: pixels: expected %lld bytes, found %zu", what.c_str(),
                          static_cast<long long>(c * h * w), img.pixels.size());
    SALTED_ASSIGN(Tensor t, Tensor::empty(Shape{1, c, h, w}));
    for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t y = 0; y < h; ++y)
            for (int64_t x = 0; x < w; ++x)
                t[(ch * h + y) * w + x] = static_cast<float>(img.pixels[static_cast<std::size_t>((y * w + x) * c + ch)]) / 255.0f;
    return t;
}

}  // namespace io
}  // namespace salted
