// libFuzzer target: decode_frame (and the fd reader) on arbitrary bytes.
// Invariants checked beyond "no crash, no sanitizer report":
//  - a rejected frame has an error message naming the frame;
//  - an accepted frame re-encodes to the same bytes (f32 exactly; f16 to
//    the same header and the same values, NaN payloads aside);
//  - an accepted frame passes its own expectation and fails a different cut id;
//  - reading the same bytes from a pipe agrees with decoding them in memory.
// Most mutations break the CRC, so each input is also tried with its
// checksum recomputed, letting the fuzzer reach the field validation behind it.
// fuzz-max-len: 4096
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <vector>

#include "salted/io/frame.hpp"
#include "salted/io/frame_stream.hpp"

using namespace salted;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_frame: invariant broken: %s\n", what);
    std::abort();
}

bool same_value(float a, float b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    uint32_t x, y;
    std::memcpy(&x, &a, 4);
    std::memcpy(&y, &b, 4);
    return x == y;
}

void check_decode(const uint8_t* data, std::size_t size) {
    auto r = io::decode_frame(data, size);
    if (!r.ok()) {
        if (r.message().compare(0, 7, "frame: ") != 0) fail("error message does not start with 'frame: '");
        return;
    }
    const io::Frame& f = r.value();
    auto h = io::parse_frame_header(data, size);
    if (!h.ok() || h->total_bytes() != size) fail("header of an accepted frame disagrees with its size");

    auto again = io::encode_frame(f.tensor.view(), f.info);
    if (!again.ok()) fail("an accepted frame does not re-encode");
    if (again->size() != size) fail("re-encoded size differs");
    if (f.info.dtype == io::FrameDtype::f32) {
        if (std::memcmp(again->data(), data, size) != 0) fail("f32 frame does not re-encode to the same bytes");
    } else {
        if (std::memcmp(again->data(), data, h->header_bytes) != 0) fail("f16 frame header changed on re-encode");
        auto back = io::decode_frame(*again);
        if (!back.ok()) fail("re-encoded f16 frame does not decode");
        for (int64_t i = 0; i < f.tensor.numel(); ++i)
            if (!same_value(f.tensor[i], back->tensor[i])) fail("f16 values changed on re-encode");
    }

    io::FrameExpectation same;
    same.model_id = f.info.model_id;
    same.cut_id = f.info.cut_id;
    same.cut_name = f.info.cut_name;
    if (!io::decode_frame(data, size, same).ok()) fail("frame fails its own expectation");
    io::FrameExpectation other;
    other.cut_id = f.info.cut_id + 1;
    if (io::decode_frame(data, size, other).code() != Errc::verify_failed) fail("wrong cut id accepted");
}

void check_stream(const uint8_t* data, std::size_t size) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    // Inputs are at most max_len (4 KiB), below the pipe's 64 KiB buffer, so
    // writing everything before reading cannot block.
    const bool written = io::write_frame(fds[1], std::vector<uint8_t>(data, data + size)).ok();
    ::close(fds[1]);
    if (written) {
        auto r = io::read_frame(fds[0], 1 << 20);
        if (r.ok()) {
            auto h = io::parse_frame_header(data, size);
            if (!h.ok() || !io::decode_frame(data, std::size_t(h->total_bytes())).ok())
                fail("stream reader accepted a frame the memory decoder rejects");
        }
    }
    ::close(fds[0]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    check_decode(data, size);
    if (size >= 4) {
        std::vector<uint8_t> sealed(data, data + size);
        const uint32_t c = io::crc32c(sealed.data(), size - 4);
        for (int i = 0; i < 4; ++i) sealed[size - 4 + i] = uint8_t(c >> (8 * i));
        check_decode(sealed.data(), size);
        check_stream(sealed.data(), size);
    }
    return 0;
}
