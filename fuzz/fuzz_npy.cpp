// libFuzzer target: io::parse_npy on arbitrary bytes. An accepted array must
// convert to float (and to integers exactly when its dtype is an integer),
// and a float32 array must survive encode_npy -> parse_npy unchanged.
// fuzz-max-len: 4096
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "salted/io/npy.hpp"

using namespace salted;

namespace {
[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_npy: invariant broken: %s\n", what);
    std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    auto r = io::parse_npy(data, size, "fuzz");
    if (!r.ok()) {
        if (r.message().empty()) fail("empty error message");
        return 0;
    }
    const io::NpyArray& a = r.value();
    if (a.bytes.size() != std::size_t(a.numel()) * (a.dtype == io::NpyDtype::f32 || a.dtype == io::NpyDtype::i32 ? 4 : 8))
        fail("payload size disagrees with shape and dtype");
    auto t = a.to_tensor();
    if (!t.ok()) fail("accepted array does not convert to float");
    const bool integer = a.dtype == io::NpyDtype::i32 || a.dtype == io::NpyDtype::i64;
    if (a.to_ints().ok() != integer) fail("to_ints accepts exactly the integer dtypes");
    if (a.dtype == io::NpyDtype::f32) {
        auto bytes = io::encode_npy(t->view());
        auto back = io::parse_npy(bytes.data(), bytes.size(), "fuzz-reencoded");
        if (!back.ok()) fail("re-encoded array does not parse");
        if (back->shape != a.shape) fail("shape changed on re-encode");
        if (back->bytes != a.bytes) fail("payload changed on re-encode");
    }
    return 0;
}
