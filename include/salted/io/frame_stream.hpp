// Frames over a file descriptor (pipe, socket, file): one frame after
// another, no extra framing, since every frame states its own length.
// Reading sizes the frame from its header and refuses to allocate more than
// the caller's limit, so a hostile or corrupt peer cannot make a server
// reserve gigabytes with a 60-byte header. POSIX only.
//
// Writing to a socket whose peer has gone raises SIGPIPE by default; a server
// should ignore SIGPIPE (or use MSG_NOSIGNAL sockets) to get the EPIPE error.
#pragma once

#include <cerrno>
#include <cstring>
#include <unistd.h>

#include "salted/io/frame.hpp"

namespace salted {
namespace io {

namespace detail {

// Reads exactly n bytes, retrying on EINTR and short reads.
inline Status read_exact(int fd, uint8_t* p, std::size_t n, const char* what, std::size_t frame_offset) {
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = ::read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            return make_error(Errc::io_error, "frame: stream: reading the %s: %s", what, std::strerror(errno));
        }
        if (r == 0)
            return make_error(Errc::io_error, "frame: stream: end of stream in the %s after %zu bytes of the frame",
                              what, frame_offset + got);
        got += std::size_t(r);
    }
    return Status();
}

}  // namespace detail

// Writes all of `bytes` (one encoded frame), retrying on EINTR and short writes.
inline Status write_frame(int fd, const std::vector<uint8_t>& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t r = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            return make_error(Errc::io_error, "frame: stream: write after %zu of %zu bytes: %s", done, bytes.size(),
                              std::strerror(errno));
        }
        done += std::size_t(r);
    }
    return Status();
}

// Reads the bytes of one frame, validating the header before reading (and
// allocating for) the payload. Fails with io_error at end of stream.
inline Status read_frame_bytes(int fd, std::size_t max_frame_bytes, std::vector<uint8_t>& out) {
    out.resize(frame_fixed_bytes);
    SALTED_TRY(detail::read_exact(fd, out.data(), frame_fixed_bytes, "fixed header", 0));
    FrameHeader scratch;
    SALTED_ASSIGN(const std::size_t header_bytes, detail::parse_fixed_header(out.data(), out.size(), scratch));
    out.resize(header_bytes);
    SALTED_TRY(detail::read_exact(fd, out.data() + frame_fixed_bytes, header_bytes - frame_fixed_bytes,
                                  "dims/cut_name/payload_bytes", frame_fixed_bytes));
    SALTED_ASSIGN(const FrameHeader h, parse_frame_header(out.data(), out.size()));
    const uint64_t total = h.total_bytes();
    if (total > max_frame_bytes)
        return make_error(Errc::out_of_range, "frame: length: expected at most %zu bytes (the reader's limit), found %llu",
                          max_frame_bytes, static_cast<unsigned long long>(total));
    out.resize(std::size_t(total));
    return detail::read_exact(fd, out.data() + header_bytes, std::size_t(total) - header_bytes, "payload/checksum",
                              header_bytes);
}

inline Result<Frame> read_frame(int fd, std::size_t max_frame_bytes, const FrameExpectation& expect = {}) {
    std::vector<uint8_t> bytes;
    SALTED_TRY(read_frame_bytes(fd, max_frame_bytes, bytes));
    return decode_frame(bytes.data(), bytes.size(), expect);
}

}  // namespace io
}  // namespace salted
