// libFuzzer target: the JSON parser behind the model header (io/json.hpp) on
// arbitrary bytes. Invariants beyond "no crash, no sanitizer report": a
// rejected document has a message; an accepted one is accepted again, and
// with a nesting limit of 1 anything that nests is rejected.
// fuzz-max-len: 4096
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "salted/io/json.hpp"

using namespace salted;

namespace {
[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_json: invariant broken: %s\n", what);
    std::abort();
}

bool nests(const json::Value& v) {
    if (v.is_array())
        for (std::size_t i = 0; i < v.size(); ++i)
            if (v.array()[i].is_array() || v.array()[i].is_object()) return true;
    if (v.is_object())
        for (const json::Member& m : v.object())
            if (m.value.is_array() || m.value.is_object()) return true;
    return false;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    const char* text = reinterpret_cast<const char*>(data);
    auto r = json::parse(text, size);
    if (!r.ok()) {
        if (r.message().empty()) fail("an error without a message");
        return 0;
    }
    (void)r->describe();
    if (!json::parse(text, size).ok()) fail("the same bytes parse once and fail once");
    json::Limits flat;
    flat.max_depth = 1;
    auto f = json::parse(text, size, flat);
    if (f.ok() && nests(*r)) fail("max_depth 1 accepted a nested document");
    return 0;
}
