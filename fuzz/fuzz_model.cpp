// libFuzzer target: the model loader and the graph runtime on arbitrary bytes
// (seeds: the fixtures in tests/data, linked from fuzz/corpus/fuzz_model/).
// Invariants beyond "no crash, no sanitizer report":
//  - a rejected file has an error message that names the model (prefix "model: ");
//  - with the hashes checked, an accepted file is accepted again unchanged and
//    every prefix of it is rejected (cheap: a few prefixes);
//  - for an accepted model with a test vector and small activations, loaded
//    without salt folding, the planned Session and the unplanned replay agree
//    bit for bit, and at a cut (one per input, picked from its size, to keep
//    runs fast) head + tail equals the whole model bit for bit;
//  - loaded with salt folding (the default), the whole model succeeds or
//    fails with the unfolded one and gives the same shape; when the file's
//    own test vector checks out, the outputs also agree within its tolerance
//    (the fold sums in another order, so not bit for bit).
// The hashes are mostly *not* checked here: nearly every mutation would fail
// them, and the fuzzer should reach the graph checks behind them.
// fuzz-max-len: 65536
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "salted/graph/model.hpp"
#include "salted/graph/session.hpp"
#include "salted/graph/verify.hpp"
#include "salted/split.hpp"

using namespace salted;

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_model: invariant broken: %s\n", what);
    std::abort();
}

bool bit_equal(ConstTensorView a, ConstTensorView b) {
    return a.shape == b.shape && std::memcmp(a.data, b.data, static_cast<std::size_t>(a.numel()) * 4) == 0;
}

// Floats of every value at the test vector's batch: bounds the work and the
// memory a fuzzed graph may ask for before it is run.
int64_t activation_floats(const graph::Model& m, int64_t batch) {
    int64_t total = 0;
    for (const graph::ValueInfo& v : m.topology().values) {
        total += v.shape.numel() * batch;
        if (total > (int64_t(1) << 22)) return total;
    }
    return total;
}

bool small_enough(const graph::Model& m) {
    const io::ModelFile& f = m.file();
    if (!f.has_test_vector()) return false;
    const int64_t batch = f.test_vector().batch;
    return activation_floats(m, batch) <= (int64_t(1) << 20) && m.flops_per_item() * batch <= (int64_t(1) << 27);
}

// `unfolded` was loaded with fold_salt off, `folded` from the same bytes with it on.
void check_fold(const graph::Model& unfolded, const graph::Model& folded) {
    if (!folded.salt_fold()) return;
    const io::ModelFile& f = unfolded.file();
    std::vector<ConstTensorView> in;
    for (const io::TensorEntry& t : f.test_vector().inputs) in.push_back(t.view());
    auto a = graph::Session::whole(unfolded);
    auto b = graph::Session::whole(folded);
    if (!a.ok() || !b.ok()) fail("Session::whole failed on a loaded model");
    auto ya = a->run(in);
    auto yb = b->run(in);
    if (ya.ok() != yb.ok()) fail("folded and unfolded runs disagree on success");
    if (!ya.ok()) return;
    if (ya->shape != yb->shape) fail("folded and unfolded runs give different shapes");
    if (!graph::verify_test_vector(unfolded).ok()) return;  // mutated numbers: no tolerance to hold them to
    if (!graph::compare_outputs(*yb, *ya).ok()) fail("the folded run differs from the unfolded one");
}

void exercise(const graph::Model& m, std::size_t pick) {
    const io::ModelFile& f = m.file();
    if (!small_enough(m)) return;
    std::vector<ConstTensorView> in;
    for (const io::TensorEntry& t : f.test_vector().inputs) in.push_back(t.view());
    auto ref = graph::run_unplanned(m, in);
    auto whole = graph::Session::whole(m);
    if (!whole.ok()) fail("Session::whole failed on a loaded model");
    auto y = whole->run(in);
    if (ref.ok() != y.ok()) fail("planned and unplanned runs disagree on success");
    if (!y.ok()) return;  // e.g. a salt value that is not an integer in [0, C)
    if (!bit_equal(*y, (*ref)[0].view())) fail("planned run differs from the unplanned one");
    Tensor want = std::move(Tensor::copy_of(*y)).value();
    if (m.cuts().empty()) return;
    {
        const graph::CutPoint& cut = m.cuts()[pick % m.cuts().size()];
        auto head = graph::Session::create(m, 0, cut.position);
        auto tail = graph::Session::create(m, cut.position, m.node_count());
        if (!head.ok() || !tail.ok()) fail("a cut's sessions cannot be created");
        auto z = head->run(in);
        if (!z.ok()) fail("head failed where the whole model ran");
        std::vector<ConstTensorView> tin;
        for (int v : tail->input_values()) {
            if (v == cut.value) tin.push_back(*z);
            else if (m.value(v).is_salt) tin.push_back(in[static_cast<std::size_t>(m.value(v).graph_input)]);
            else if (m.value(v).graph_input >= 0) tin.push_back(in[static_cast<std::size_t>(m.value(v).graph_input)]);
            else fail("a tail needs a value that is neither the cut nor an input");
        }
        auto out = tail->run(tin);
        if (!out.ok()) fail("tail failed where the whole model ran");
        if (!bit_equal(*out, want.view())) fail("head + tail differs from the whole model");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    graph::LoadOptions fast;
    fast.verify_hash = false;
    fast.verify_test_vector = false;
    fast.fold_salt = false;
    auto m = graph::Model::parse(data, size, fast);
    if (!m.ok()) {
        if (m.message().compare(0, 7, "model: ") != 0) {
            std::fprintf(stderr, "message: %s\n", m.message().c_str());
            fail("error message does not start with 'model: '");
        }
        return 0;
    }
    exercise(*m, size);
    if (small_enough(*m)) {
        graph::LoadOptions folding = fast;
        folding.fold_salt = true;
        auto mf = graph::Model::parse(data, size, folding);
        if (!mf.ok()) fail("a model that loads unfolded does not load folded");
        check_fold(*m, *mf);
    }
    (void)graph::verify_test_vector(*m);
    // With every check on, a file that loads keeps loading, and its prefixes do not.
    graph::LoadOptions strict;
    auto s = graph::Model::parse(data, size, strict);
    if (s.ok()) {
        for (std::size_t cut : {std::size_t(0), size / 2, size - 1})
            if (graph::Model::parse(data, cut, strict).ok()) fail("a truncated model file was accepted");
    }
    return 0;
}
