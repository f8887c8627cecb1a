// Sessions, the buffer planner and the Head/Tail facade on the fixture models:
// the planned run equals the unplanned one bit for bit and PyTorch's test
// vector within tolerance; head + tail at every cut equals the whole model
// bit for bit; steady-state runs allocate nothing; planned buffers of values
// alive at the same time never overlap; bad inputs are errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "salted/graph/model.hpp"
#include "salted/graph/planner.hpp"
#include "salted/graph/session.hpp"
#include "salted/graph/verify.hpp"
#include "salted/io/frame.hpp"
#include "salted/split.hpp"

// Counts every operator new in this program, to prove steady-state runs
// allocate nothing. (GCC cannot see that the replaced new is malloc.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
static std::atomic<long> g_allocations{0};
void* operator new(std::size_t n) {
    ++g_allocations;
    if (void* p = std::malloc(n ? n : 1)) return p;
    std::abort();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace salted;
using graph::Model;
using graph::Session;

namespace {

std::string data_dir() {
    std::string here = __FILE__;
    return here.substr(0, here.find_last_of('/')) + "/data";
}

Model load(const char* name, bool fold_salt = true, bool batch_invariant = false) {
    graph::LoadOptions opts;
    opts.fold_salt = fold_salt;
    opts.batch_invariant = batch_invariant;
    auto m = Model::load(data_dir() + "/" + name, opts);
    REQUIRE_MESSAGE(m.ok(), m.message());
    return std::move(m).value();
}

bool bit_equal(ConstTensorView a, ConstTensorView b) {
    return a.shape == b.shape && std::memcmp(a.data, b.data, static_cast<std::size_t>(a.numel()) * 4) == 0;
}

// Equal up to float rounding: the salt fold sums in another order.
bool close(ConstTensorView a, ConstTensorView b) {
    if (a.shape != b.shape) return false;
    float scale = 1.0f;
    for (int64_t i = 0; i < b.numel(); ++i) scale = std::max(scale, std::fabs(b.data[i]));
    for (int64_t i = 0; i < a.numel(); ++i)
        if (!(std::fabs(a.data[i] - b.data[i]) <= 1e-5f * scale)) return false;
    return true;
}

// Deterministic bytes for tests (production uses the OS CSPRNG).
class CountingSource final : public salt::SaltSource {
public:
    Status fill(uint8_t* out, std::size_t n) override {
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(state_ = state_ * 1103515245u + 12345u);
        return Status();
    }

private:
    uint32_t state_ = 7;
};

// Random inputs for a batch: data uniform in [0, 1), salts in [0, C).
struct Batch {
    Tensor x, salt;
    std::vector<int64_t> salts;
};
Batch random_batch(const Model& m, int64_t n, unsigned seed) {
    Batch b;
    std::mt19937 rng(seed);
    Shape xs = m.value_shape(m.topology().inputs[0], n);
    b.x = std::move(Tensor::empty(xs)).value();
    for (int64_t i = 0; i < b.x.numel(); ++i) b.x[i] = std::uniform_real_distribution<float>(0, 1)(rng);
    for (int64_t i = 0; i < n; ++i) b.salts.push_back(static_cast<int64_t>(rng() % m.salt().classes));
    CountingSource src;
    auto s = split::salt_tensor(m, b.salts, src);
    REQUIRE_MESSAGE(s.ok(), s.message());
    b.salt = std::move(s).value();
    return b;
}

const char* const fixtures[] = {"tiny_lenet_cnn_salt.salted", "tiny_lenet_fc_salt.salted",
                                "tiny_wrn_cnn_salt.salted"};

}  // namespace

// run_unplanned() never folds the salt, so the planned run equals it bit for
// bit only with folding off; folded, the sums run in another order and the
// two agree to float rounding.
TEST_CASE("session: the whole model matches the test vector and the unplanned run bit for bit") {
    for (const char* name : fixtures)
        for (bool fold : {false, true}) {
            CAPTURE(std::string(name));
            CAPTURE(fold);
            Model m = load(name, fold);
            std::vector<ConstTensorView> in;
            for (const io::TensorEntry& t : m.file().test_vector().inputs) in.push_back(t.view());
            auto s = Session::whole(m);
            REQUIRE(s.ok());
            auto y = s->run(in);
            REQUIRE_MESSAGE(y.ok(), y.message());
            const graph::Agreement a = graph::compare_outputs(*y, m.file().test_vector().outputs[0].view());
            CHECK_MESSAGE(a.ok(), "max|diff| " << a.max_diff);
            auto ref = graph::run_unplanned(m, in);
            REQUIRE(ref.ok());
            if (m.salt_fold()) {
                CHECK(close(*y, (*ref)[0].view()));
            } else {
                CHECK(bit_equal(*y, (*ref)[0].view()));
            }
            // Reuse is invisible: planned buffers are smaller than one per value.
            std::size_t every_value = 0;
            for (int i = 0; i < m.node_count(); ++i)
                every_value += static_cast<std::size_t>(s->plan()->shapes[static_cast<std::size_t>(m.node(i).output)].numel());
            CHECK(s->plan()->arena_floats < every_value);
        }
}

// A split run is the whole run, bit for bit, at every cut. The one exception
// is a cut between the salt concat and the conv it feeds (an unsafe cut):
// the whole run folds the two (graph/salt_folding.hpp), the split cannot, so
// there the results agree to float rounding; with folding off, bit for bit.
TEST_CASE("session: head + tail at every cut equals the whole model bit for bit") {
    for (const char* name : fixtures)
        for (bool fold : {true, false}) {
            CAPTURE(std::string(name));
            CAPTURE(fold);
            Model m = load(name, fold);
            const graph::SaltFold* f = m.salt_fold();
            if (std::string(name) != "tiny_lenet_fc_salt.salted") CHECK((f != nullptr) == fold);
            for (int64_t batch : {1, 3}) {
                Batch b = random_batch(m, batch, 11u + static_cast<unsigned>(batch));
                auto whole = Session::whole(m);
                REQUIRE(whole.ok());
                auto y = whole->run({b.x.view(), b.salt.view()});
                REQUIRE_MESSAGE(y.ok(), y.message());
                for (const graph::CutPoint& cut : m.cuts()) {
                    CAPTURE(cut.name);
                    auto head = split::Head::create(m, cut, true);
                    auto tail = split::Tail::create(m, cut, true);
                    REQUIRE(head.ok());
                    REQUIRE(tail.ok());
                    auto z = head->run(b.x.view(), b.salt.view());
                    REQUIRE_MESSAGE(z.ok(), z.message());
                    CHECK(z->shape == m.value_shape(cut.value, batch));
                    // Through the wire format, as between two processes.
                    auto bytes = io::encode_frame(*z, head->frame_info());
                    REQUIRE(bytes.ok());
                    auto frame = io::decode_frame(*bytes, tail->frame_expectation());
                    REQUIRE_MESSAGE(frame.ok(), frame.message());
                    auto out = tail->needs_salt() ? tail->run(frame->tensor.view(), b.salt.view())
                                                  : tail->run(frame->tensor.view());
                    REQUIRE_MESSAGE(out.ok(), out.message());
                    const bool splits_fold = f && (cut.value == m.node(f->concat).output ||
                                                   (f->through >= 0 && cut.value == m.node(f->through).output));
                    if (splits_fold) {
                        CHECK(close(*out, *y));
                    } else {
                        CHECK(bit_equal(*out, *y));
                    }
                }
            }
        }
}

// A device keeping only the head's kernels and a server keeping only the
// tail's, each from its own load, give the whole run bit for bit, hold
// fewer kernel bytes, and refuse what they released with a clear error.
TEST_CASE("keep_only: a head-only and a tail-only model split exactly; released nodes are errors") {
    for (const char* name : fixtures) {
        CAPTURE(std::string(name));
        Model whole_model = load(name);
        Batch b = random_batch(whole_model, 2, 5u);
        auto whole = Session::whole(whole_model);
        REQUIRE(whole.ok());
        auto y = whole->run({b.x.view(), b.salt.view()});
        REQUIRE_MESSAGE(y.ok(), y.message());
        const int n = whole_model.node_count();
        int safe_cuts = 0;
        for (const graph::CutPoint& cut : whole_model.cuts()) {
            if (!cut.safe()) continue;
            ++safe_cuts;
            CAPTURE(cut.name);
            Model device = load(name), server = load(name);
            REQUIRE(device.keep_only(0, cut.position).ok());
            REQUIRE(server.keep_only(cut.position, n).ok());
            CHECK(device.kept_from() == 0);
            CHECK(device.kept_to() == cut.position);
            CHECK(device.kernel_bytes() + server.kernel_bytes() <= whole_model.kernel_bytes());
            auto head = split::Head::create(device, cut);
            auto tail = split::Tail::create(server, cut);
            REQUIRE_MESSAGE(head.ok(), head.message());
            REQUIRE_MESSAGE(tail.ok(), tail.message());
            auto z = head->run(b.x.view(), b.salt.view());
            REQUIRE_MESSAGE(z.ok(), z.message());
            auto out = tail->run(*z);
            REQUIRE_MESSAGE(out.ok(), out.message());
            CHECK(bit_equal(*out, *y));

            // The released side: no Session, no whole run, no widening.
            if (cut.position < n) {  // (a cut after the last node leaves the tail empty)
                auto no_tail = split::Tail::create(device, cut);
                REQUIRE(!no_tail.ok());
                CHECK(no_tail.message().find("released by Model::keep_only") != std::string::npos);
                auto widen = device.keep_only(0, n);
                REQUIRE(!widen.ok());
                CHECK(widen.message().find("already released") != std::string::npos);
            }
            CHECK(!Session::whole(server).ok());
            std::vector<ConstTensorView> tv;
            for (const io::TensorEntry& t : server.file().test_vector().inputs) tv.push_back(t.view());
            auto replay = graph::run_unplanned(server, tv);
            REQUIRE(!replay.ok());
            CHECK(replay.message().find("its kernels were released") != std::string::npos);
            CHECK(device.keep_only(0, cut.position).ok());  // the same range again: nothing changes
            auto z2 = head->run(b.x.view(), b.salt.view());    // so the head made before it still runs
            REQUIRE_MESSAGE(z2.ok(), z2.message());
            CHECK(Session::create(device, 0, 0).ok());        // an empty range needs no node
        }
        CHECK(safe_cuts > 0);
        // A session made before keep_only() released anything fails at its
        // next run with an error, instead of running freed layers.
        {
            Model early = load(name);
            auto before = Session::whole(early);
            REQUIRE(before.ok());
            REQUIRE(before->run({b.x.view(), b.salt.view()}).ok());
            REQUIRE(early.keep_only(0, n - 1).ok());
            auto stale = before->run({b.x.view(), b.salt.view()});
            REQUIRE(!stale.ok());
            CHECK(stale.message().find("create the session again") != std::string::npos);
        }
        Model m = load(name);
        CHECK(!m.keep_only(-1, 2).ok());
        CHECK(!m.keep_only(3, 2).ok());
        CHECK(!m.keep_only(0, n + 1).ok());
        CHECK(m.keep_only(0, n).ok());
        CHECK(m.kernel_bytes() == whole_model.kernel_bytes());
    }
}

// LeNet: the concat feeds one conv. WideResNet: it feeds a BatchNorm-ReLU,
// which feeds the block's 3x3 conv and its 1x1 shortcut.
TEST_CASE("salt folding: the folded model agrees with the model as written") {
    struct Case {
        const char* name;
        std::size_t convs;
        bool through;
    };
    for (const Case& k : {Case{"tiny_lenet_cnn_salt.salted", 1, false}, Case{"tiny_wrn_cnn_salt.salted", 2, true}}) {
        CAPTURE(std::string(k.name));
        Model folded = load(k.name, true), plain = load(k.name, false);
        const graph::SaltFold* f = folded.salt_fold();
        REQUIRE(f != nullptr);
        CHECK(plain.salt_fold() == nullptr);
        CHECK(folded.node(f->concat).op == "cnn_salt_concat");
        REQUIRE(f->convs.size() == k.convs);
        for (int c : f->convs) CHECK(folded.node(c).op == "conv2d");
        CHECK((f->through >= 0) == k.through);
        if (k.through) CHECK(folded.node(f->through).op == "batch_norm");
        for (int64_t batch : {1, 4, 10}) {
            Batch b = random_batch(folded, batch, 5u + static_cast<unsigned>(batch));
            auto s1 = Session::whole(folded);
            auto s2 = Session::whole(plain);
            REQUIRE(s1.ok());
            REQUIRE(s2.ok());
            auto y1 = s1->run({b.x.view(), b.salt.view()});
            auto y2 = s2->run({b.x.view(), b.salt.view()});
            REQUIRE_MESSAGE(y1.ok(), y1.message());
            REQUIRE(y2.ok());
            CHECK(close(*y1, *y2));
            // The concat's output is never computed: one step fewer, no buffer.
            const graph::Plan& p1 = *s1->plan();
            CHECK(p1.steps.size() + 1 == s2->plan()->steps.size());
            CHECK(p1.offsets[static_cast<std::size_t>(folded.node(f->concat).output)] == -1);
            // The batch_norm runs on the activation channels only.
            if (k.through) {
                const int act = folded.node(f->concat).inputs[0];
                const int bn_out = folded.node(f->through).output;
                CHECK(p1.shapes[static_cast<std::size_t>(bn_out)][1] == p1.shapes[static_cast<std::size_t>(act)][1]);
                CHECK(p1.shapes[static_cast<std::size_t>(bn_out)][1] <
                      s2->plan()->shapes[static_cast<std::size_t>(bn_out)][1]);
            }
        }
        // Every salt value gets its own table row: changing only the salt changes the output.
        Batch b = random_batch(folded, 2, 3);
        b.salt.data()[0] = 0.0f;
        b.salt.data()[1] = 1.0f;
        std::memcpy(b.x.data() + b.x.shape().numel() / 2, b.x.data(),
                    static_cast<std::size_t>(b.x.shape().numel() / 2) * 4);
        auto s1 = Session::whole(folded);
        auto s2 = Session::whole(plain);
        auto y1 = s1->run({b.x.view(), b.salt.view()});
        auto y2 = s2->run({b.x.view(), b.salt.view()});
        REQUIRE(y1.ok());
        REQUIRE(y2.ok());
        CHECK(close(*y1, *y2));
        const int64_t c = y1->shape[1];
        CHECK(std::memcmp(y1->data, y1->data + c, static_cast<std::size_t>(c) * 4) != 0);
    }
}

TEST_CASE("session: steady-state runs allocate nothing, at any batch size seen before") {
    Model m = load("tiny_lenet_cnn_salt.salted");
    Batch b2 = random_batch(m, 2, 1), b5 = random_batch(m, 5, 2);
    auto s = Session::whole(m);
    REQUIRE(s.ok());
    const std::vector<ConstTensorView> in2{b2.x.view(), b2.salt.view()}, in5{b5.x.view(), b5.salt.view()};
    REQUIRE(s->run(in2).ok());
    REQUIRE(s->run(in5).ok());
    const long before = g_allocations.load();
    for (int k = 0; k < 3; ++k) {
        auto y2 = s->run(in2);
        auto y5 = s->run(in5);
        CHECK(y2.ok());
        CHECK(y5.ok());
    }
    CHECK(g_allocations.load() == before);
}

// Micro-batches (Session::set_micro_batch) run the range on a few items at a
// time; items are independent, so in a batch-invariant model the result is
// the one-shot run's, bit for bit, whatever the slice and the remainder.
TEST_CASE("session: micro-batched runs equal the one-shot run bit for bit") {
    for (const char* name : fixtures) {
        CAPTURE(std::string(name));
        Model m = load(name, true, true);
        Batch b = random_batch(m, 7, 21);
        const std::vector<ConstTensorView> in{b.x.view(), b.salt.view()};
        auto whole = Session::whole(m);
        REQUIRE(whole.ok());
        whole->set_micro_batch(1000);
        CHECK(whole->slice_size(7) == 7);
        CHECK(whole->micro_batches(7) == 1);
        auto y = whole->run(in);
        REQUIRE_MESSAGE(y.ok(), y.message());
        for (int64_t slice : {1, 2, 3, 6, 7, 0}) {
            CAPTURE(slice);
            auto s = Session::whole(m);
            REQUIRE(s.ok());
            s->set_micro_batch(slice);
            if (slice > 0) CHECK(s->slice_size(7) == slice);
            if (slice > 0) CHECK(s->micro_batches(7) == (7 + slice - 1) / slice);
            CHECK(s->micro_batches(1) == 1);
            auto z = s->run(in);
            REQUIRE_MESSAGE(z.ok(), z.message());
            CHECK(bit_equal(*z, *y));
            // Head + tail in micro-batches too (the first cut).
            if (m.cuts().empty()) continue;
            const graph::CutPoint& cut = m.cuts()[0];
            auto head = Session::create(m, 0, cut.position), tail = Session::create(m, cut.position, m.node_count());
            REQUIRE(head.ok());
            REQUIRE(tail.ok());
            head->set_micro_batch(slice);
            tail->set_micro_batch(slice);
            auto zc = head->run(in);
            REQUIRE_MESSAGE(zc.ok(), zc.message());
            std::vector<ConstTensorView> tin;
            for (int v : tail->input_values()) tin.push_back(v == cut.value ? *zc : in[m.value(v).is_salt ? 1 : 0]);
            auto out = tail->run(tin);
            REQUIRE_MESSAGE(out.ok(), out.message());
            CHECK(out->shape == y->shape);
        }
    }
}

// By default a layer may pick its kernel by batch size (the tiny WideResNet's
// 8x8 layers: F(2x2) Winograd at batch 1, F(4x4) from 2 on): items then
// agree across slice sizes to float rounding.
TEST_CASE("session: without batch invariance, micro-batches agree to rounding") {
    for (const char* name : fixtures) {
        CAPTURE(std::string(name));
        Model m = load(name);
        // Only the WideResNet has 8x8 3x3 layers: F(2x2) weights there, on top of F(4x4)'s.
        const bool wrn = std::string(name).find("wrn") != std::string::npos;
        CHECK((m.kernel_bytes() > load(name, true, true).kernel_bytes()) == wrn);
        Batch b = random_batch(m, 7, 22);
        const std::vector<ConstTensorView> in{b.x.view(), b.salt.view()};
        auto whole = Session::whole(m);
        REQUIRE(whole.ok());
        whole->set_micro_batch(1000);
        auto y = whole->run(in);
        REQUIRE_MESSAGE(y.ok(), y.message());
        for (int64_t slice : {1, 2, 3}) {
            CAPTURE(slice);
            auto s = Session::whole(m);
            REQUIRE(s.ok());
            s->set_micro_batch(slice);
            auto z = s->run(in);
            REQUIRE_MESSAGE(z.ok(), z.message());
            REQUIRE(z->shape == y->shape);
            double scale = 1, worst = 0;
            for (int64_t i = 0; i < y->numel(); ++i) {
                scale = std::max(scale, double(std::fabs(y->data[i])));
                worst = std::max(worst, double(std::fabs(z->data[i] - y->data[i])));
            }
            CHECK(worst <= 1e-5 * scale);
        }
    }
}

TEST_CASE("session: micro-batched runs allocate nothing after the first, and name the items of an error") {
    Model m = load("tiny_lenet_cnn_salt.salted");
    Batch b7 = random_batch(m, 7, 3), b5 = random_batch(m, 5, 4);
    auto s = Session::whole(m);
    REQUIRE(s.ok());
    s->set_micro_batch(3);
    const std::vector<ConstTensorView> in7{b7.x.view(), b7.salt.view()}, in5{b5.x.view(), b5.salt.view()};
    REQUIRE(s->run(in7).ok());
    REQUIRE(s->run(in5).ok());
    const long before = g_allocations.load();
    for (int k = 0; k < 3; ++k) {
        CHECK(s->run(in7).ok());
        CHECK(s->run(in5).ok());
    }
    CHECK(g_allocations.load() == before);
    CHECK(s->memory_bytes() > 0);
    // 7 items in micro-batches of at most 3: [0, 1], [2, 3], [4, 6]; item 4 is the third's first.
    Tensor salt = std::move(Tensor::copy_of(b7.salt.view())).value();
    salt[4] = 10.0f;
    auto r = s->run({b7.x.view(), salt.view()});
    CHECK(!r.ok());
    CHECK(r.message().find("salt[0]") != std::string::npos);
    CHECK(r.message().find("(in items 4..6 of the batch)") != std::string::npos);
    CHECK(s->run(in7).ok());
}

// With threads, micro-batches run side by side on lanes (one per thread,
// each with its own buffers). The cut does not depend on the thread count
// and a lane's kernels run on its thread alone, so the result is the
// one-thread run's bit for bit, even where kernels depend on the batch size.
TEST_CASE("session: micro-batches on two threads' lanes equal one thread, allocate nothing, name the first bad items") {
    struct Threads {
        explicit Threads(int n) { set_num_threads(n); }
        ~Threads() { set_num_threads(0); }
    };
    for (const char* name : fixtures) {
        CAPTURE(std::string(name));
        Model m = load(name);
        Batch b = random_batch(m, 9, 23);
        const std::vector<ConstTensorView> in{b.x.view(), b.salt.view()};
        Tensor want;
        {
            Threads one(1);
            auto s = Session::whole(m);
            REQUIRE(s.ok());
            s->set_micro_batch(2);  // 9 items: micro-batches of 1, 2, 2, 2, 2
            auto y = s->run(in);
            REQUIRE_MESSAGE(y.ok(), y.message());
            CHECK(s->last_run_lanes() == 1);
            want = std::move(Tensor::copy_of(*y)).value();
        }
        Threads two(2);
        auto s = Session::whole(m);
        REQUIRE(s.ok());
        s->set_micro_batch(2);
        s->set_adaptive_threads(false);
        REQUIRE(s->run(in).ok());
        // The pool backs off after a stalled join (a loaded machine: up to a
        // second at a time), and the run then takes one lane: keep running
        // until a few runs had two, or give up on a machine that busy.
        const long before = g_allocations.load();
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        int on_two = 0;
        bool equal = true;
        for (int k = 0; k < 20 || (on_two < 3 && std::chrono::steady_clock::now() < deadline); ++k) {
            auto y = s->run(in);
            if (!y.ok()) FAIL(y.message());  // not REQUIRE: doctest -s allocates to report successes
            equal = equal && bit_equal(*y, want.view());
            on_two += s->last_run_lanes() == 2;
            if (k >= 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        CHECK(g_allocations.load() == before);
        CHECK(equal);
        if (on_two == 0) MESSAGE("the pool backed off for 10 s (a loaded machine): no run had two lanes");
        // Bad salts in the third micro-batch (items 3, 4) and the fifth (7, 8):
        // the error names the third's items, as a run on one thread would.
        // (Only the CNN salt is an index a run checks; the FC salt is a vector.)
        if (std::string(name).find("cnn_salt") == std::string::npos) continue;
        Tensor salt = std::move(Tensor::copy_of(b.salt.view())).value();
        const int64_t per_item = salt.numel() / 9;
        salt[4 * per_item] = 1e6f;
        salt[8 * per_item] = 1e6f;
        for (int k = 0; k < 5; ++k) {
            auto r = s->run({b.x.view(), salt.view()});
            REQUIRE(!r.ok());
            CHECK_MESSAGE(r.message().find("(in items 3..4 of the batch)") != std::string::npos, r.message());
        }
        auto again = s->run(in);
        REQUIRE(again.ok());
        CHECK(bit_equal(*again, want.view()));
    }
}

namespace {
// Runs a ThreadChoice through its warm-up and probe, asking it each time
// which mode the run uses: pool(i) / serial(i) give the i-th run's time in
// that mode. Checks the probe's order: blocks of probe_block, pool first.
template <class Pool, class Serial>
void probe_with(graph::ThreadChoice& c, Pool pool, Serial serial) {
    using graph::ThreadChoice;
    for (int i = 0; i < ThreadChoice::warmup_runs; ++i) {
        REQUIRE(!c.next_serial());
        c.record(1.0);  // not counted: the first runs plan and start threads
    }
    int pools = 0, serials = 0;
    for (int i = 0; i < 2 * ThreadChoice::probe_runs; ++i) {
        REQUIRE(!c.decided());
        const bool alone = c.next_serial();
        REQUIRE(alone == ((i / ThreadChoice::probe_block) % 2 == 1));
        c.record(alone ? serial(serials++) : pool(pools++));
    }
    REQUIRE(pools == ThreadChoice::probe_runs);
    REQUIRE(c.decided());
}
}  // namespace

TEST_CASE("thread choice: keeps the pool only when it is faster, and probes again") {
    using graph::ThreadChoice;
    auto probe = [](ThreadChoice& c, double pool, double serial) {
        probe_with(c, [=](int i) { return pool + 1e-6 * i; }, [=](int i) { return serial - 1e-6 * i; });
    };
    ThreadChoice faster_pool;
    probe(faster_pool, 0.003, 0.005);
    CHECK(!faster_pool.serial());
    CHECK(!faster_pool.next_serial());
    ThreadChoice slower_pool;
    probe(slower_pool, 0.006, 0.005);
    CHECK(slower_pool.next_serial());
    ThreadChoice tie;  // within 5 %: one thread
    probe(tie, 0.0048, 0.005);
    CHECK(tie.next_serial());
    ThreadChoice clear_win;  // 7 % faster: the pool
    probe(clear_win, 0.00465, 0.005);
    CHECK(!clear_win.next_serial());
    // After reprobe_every decided runs, both are timed again.
    for (int64_t i = 0; i < ThreadChoice::reprobe_every; ++i) {
        CHECK(slower_pool.decided());
        slower_pool.record(0.005);
    }
    CHECK(!slower_pool.decided());
    probe(slower_pool, 0.002, 0.005);
    CHECK(!slower_pool.next_serial());

    // A pool that is fast only when its worker gets the other core: 3 fast
    // runs of 8 do not make it the faster one (the median decides).
    ThreadChoice bimodal;
    probe_with(bimodal, [](int i) { return i < 3 ? 0.001 : 0.006; }, [](int) { return 0.004; });
    CHECK(bimodal.next_serial());

    // Both modes' blocks are spread over the probe: a machine that turns
    // 30 % slower halfway slows both, and does not decide for the pool.
    ThreadChoice drift;
    int run = 0;
    auto slow_later = [&run](double t) { return (run++ < ThreadChoice::probe_runs ? 1.0 : 1.3) * t; };
    probe_with(drift, [&](int) { return slow_later(0.005); }, [&](int) { return slow_later(0.005); });
    CHECK(drift.next_serial());
}

TEST_CASE("thread choice: probes again early when the chosen mode slows down, not on noise") {
    using graph::ThreadChoice;
    auto decide_pool = [](ThreadChoice& c) {
        probe_with(c, [](int) { return 0.003; }, [](int) { return 0.005; });
        REQUIRE(!c.next_serial());
    };
    // 17 % slower (noise, a little load): kept until the periodic probe.
    ThreadChoice steady;
    decide_pool(steady);
    for (int64_t i = 0; i + 1 < ThreadChoice::reprobe_every; ++i) {
        steady.record(0.0035);
        REQUIRE(steady.decided());
    }
    // 50 % slower (another process took the second core): probed again as
    // soon as a whole look sees it, but not before min_runs_between runs.
    ThreadChoice loaded;
    decide_pool(loaded);
    int64_t runs = 0;
    while (loaded.decided() && runs < ThreadChoice::reprobe_every) {
        loaded.record(runs < 20 ? 0.003 : 0.0045);
        ++runs;
    }
    CHECK(!loaded.decided());
    CHECK(runs == ThreadChoice::min_runs_between);
    // The new probe sees one thread as faster now.
    probe_with(loaded, [](int) { return 0.0045; }, [](int) { return 0.004; });
    CHECK(loaded.next_serial());
}

TEST_CASE("session: adaptive threads change neither results nor allocations") {
    Model m = load("tiny_lenet_cnn_salt.salted");
    Batch b = random_batch(m, 4, 8);
    const std::vector<ConstTensorView> in{b.x.view(), b.salt.view()};
    set_num_threads(2);
    auto fixed = Session::whole(m), adaptive = Session::whole(m);
    REQUIRE(fixed.ok());
    REQUIRE(adaptive.ok());
    fixed->set_adaptive_threads(false);
    auto want = fixed->run(in);
    REQUIRE(want.ok());
    Tensor y = std::move(Tensor::copy_of(*want)).value();
    REQUIRE(adaptive->run(in).ok());
    const long before = g_allocations.load();
    bool saw_serial = false, saw_pool = false;
    for (int i = 0; i < 2 * graph::ThreadChoice::probe_runs + graph::ThreadChoice::warmup_runs + 4; ++i) {
        (adaptive->runs_serially(4) ? saw_serial : saw_pool) = true;
        auto z = adaptive->run(in);
        REQUIRE(z.ok());
        CHECK(bit_equal(*z, y.view()));
    }
    CHECK(g_allocations.load() == before);
    if (configured_threads() >= 2) {  // a build with threads
        CHECK(saw_serial);                // the probe ran both ways
        CHECK(saw_pool);
        CHECK(!fixed->runs_serially(4));
    }
    set_num_threads(0);
}

TEST_CASE("planner: values alive at the same time never share bytes") {
    for (const char* name : fixtures)
        for (bool fold : {true, false}) {
            Model m = load(name, fold);
            const int n = m.node_count();
            for (int from = 0; from <= n; ++from)
                for (int to = from; to <= n; ++to) {
                    auto p = graph::plan_range(m, from, to, 3);
                    REQUIRE(p.ok());
                    const auto& steps = p->steps;
                    for (std::size_t i = 0; i < steps.size(); ++i)
                        for (std::size_t j = i + 1; j < steps.size(); ++j) {
                            const int vi = steps[i].output, vj = steps[j].output;
                            // vi is alive at step j if step j or a later one reads it, or it is a range output.
                            bool alive = std::find(p->outputs.begin(), p->outputs.end(), vi) != p->outputs.end();
                            for (std::size_t k = j; k < steps.size(); ++k)
                                for (int v : steps[k].inputs) alive = alive || v == vi;
                            if (!alive) continue;
                            const int64_t ai = p->offsets[static_cast<std::size_t>(vi)],
                                          aj = p->offsets[static_cast<std::size_t>(vj)];
                            const int64_t si = p->shapes[static_cast<std::size_t>(vi)].numel(),
                                          sj = p->shapes[static_cast<std::size_t>(vj)].numel();
                            CHECK((ai + si <= aj || aj + sj <= ai));
                            CHECK(ai % 16 == 0);
                            CHECK(ai >= 0);
                        }
                }
        }
}

TEST_CASE("session: one model, sessions on two threads agree") {
    Model m = load("tiny_lenet_fc_salt.salted");
    Batch b = random_batch(m, 4, 3);
    std::vector<Tensor> results(2);
    auto work = [&](int k) {
        auto s = Session::whole(m);
        if (!s.ok()) return;
        for (int rep = 0; rep < 20; ++rep) {
            auto y = s->run({b.x.view(), b.salt.view()});
            if (y.ok() && rep == 19) results[static_cast<std::size_t>(k)] = std::move(Tensor::copy_of(*y)).value();
        }
    };
    std::thread t0(work, 0), t1(work, 1);
    t0.join();
    t1.join();
    REQUIRE(!results[0].empty_storage());
    REQUIRE(!results[1].empty_storage());
    CHECK(bit_equal(results[0].view(), results[1].view()));
}

TEST_CASE("session: bad ranges and inputs are errors naming the input") {
    Model m = load("tiny_lenet_cnn_salt.salted");
    CHECK(Session::create(m, 3, 2).code() == Errc::out_of_range);
    CHECK(Session::create(m, -1, 2).code() == Errc::out_of_range);
    CHECK(Session::create(m, 0, 12).code() == Errc::out_of_range);
    auto s = Session::whole(m);
    REQUIRE(s.ok());
    Batch b = random_batch(m, 2, 5);
    auto r = s->run({b.x.view()});
    CHECK(!r.ok());
    CHECK(r.message().find("expected 2 (x, salt), found 1") != std::string::npos);
    Tensor wrong = std::move(Tensor::zeros(Shape{2, 1, 28, 27})).value();
    r = s->run({wrong.view(), b.salt.view()});
    CHECK(r.code() == Errc::shape_mismatch);
    CHECK(r.message().find("input 'x': expected shape [2, 1, 28, 28], found [2, 1, 28, 27]") != std::string::npos);
    Tensor salt3 = std::move(Tensor::zeros(Shape{3, 1, 1, 1})).value();
    r = s->run({b.x.view(), salt3.view()});
    CHECK(r.message().find("input 'salt'") != std::string::npos);
    // A salt that is not an integer in [0, C) stops the run at the salt node.
    for (float bad : {10.0f, -1.0f, 2.5f}) {
        Tensor salt = std::move(Tensor::zeros(Shape{2, 1, 1, 1})).value();
        salt[1] = bad;
        r = s->run({b.x.view(), salt.view()});
        CHECK(!r.ok());
        CHECK(r.message().find("node 'salt.Concat' (cnn_salt_concat): cnn_salt_concat: salt[1]") != std::string::npos);
    }
    // A failed run leaves the session usable.
    CHECK(s->run({b.x.view(), b.salt.view()}).ok());
}

TEST_CASE("split: unsafe cuts are refused unless forced; the frame identifies model and cut") {
    Model m = load("tiny_lenet_cnn_salt.salted");
    for (const graph::CutPoint& cut : m.cuts()) {
        CAPTURE(cut.name);
        auto head = split::Head::create(m, cut);
        auto tail = split::Tail::create(m, cut);
        CHECK(head.ok() == cut.safe());
        CHECK(tail.ok() == cut.safe());
        if (!cut.safe()) {
            CHECK(head.message().find("unsafe") != std::string::npos);
            CHECK(head.message().find("the first safe cut is 4 (after:conv2.Conv)") != std::string::npos);
        }
        CHECK(split::Head::create(m, cut, true).ok());
    }
    const graph::CutPoint& cut = m.cuts()[5];
    auto head = split::Head::create(m, cut);
    REQUIRE(head.ok());
    const io::FrameInfo info = head->frame_info();
    CHECK(info.cut_id == 5);
    CHECK(info.cut_name == "after:MaxPool");
    CHECK(std::memcmp(info.model_id.data(), m.model_id().data(), 32) == 0);
    // A frame of another cut, or another model, is refused by the tail.
    Batch b = random_batch(m, 1, 9);
    auto z = head->run(b.x.view(), b.salt.view());
    REQUIRE(z.ok());
    auto bytes = io::encode_frame(*z, info);
    REQUIRE(bytes.ok());
    auto other_tail = split::Tail::create(m, m.cuts()[6]);
    REQUIRE(other_tail.ok());
    CHECK(io::decode_frame(*bytes, other_tail->frame_expectation()).code() == Errc::verify_failed);
    Model fc = load("tiny_lenet_fc_salt.salted");
    CHECK(io::decode_frame(*bytes, split::frame_expectation(fc, fc.cuts()[5])).code() == Errc::verify_failed);
    // The tail at a safe cut never takes the salt.
    auto tail = split::Tail::create(m, cut);
    REQUIRE(tail.ok());
    CHECK(!tail->needs_salt());
    CHECK(!tail->run(*z, b.salt.view()).ok());
}

TEST_CASE("split: salt tensors for CNN and FC salts") {
    Model cnn = load("tiny_lenet_cnn_salt.salted");
    Model fc = load("tiny_lenet_fc_salt.salted");
    CountingSource src;
    auto t = split::salt_tensor(cnn, {3, 0, 9}, src);
    REQUIRE(t.ok());
    CHECK(t->shape() == Shape{3, 1, 1, 1});
    CHECK((*t)[0] == 3.0f);
    CHECK((*t)[2] == 9.0f);
    CHECK(split::salt_tensor(cnn, {10}, src).code() == Errc::out_of_range);
    CHECK(!split::salt_tensor(cnn, {}, src).ok());
    auto v = split::salt_tensor(fc, {4, 7}, src);
    REQUIRE(v.ok());
    CHECK(v->shape() == Shape{2, 10});
    // The peak of row n sits at its salt (mean 2.5 vs <= 0.5, std 0.05).
    for (int64_t n = 0; n < 2; ++n) {
        int64_t best = 0;
        for (int64_t c = 1; c < 10; ++c)
            if ((*v)[n * 10 + c] > (*v)[n * 10 + best]) best = c;
        CHECK(best == (n == 0 ? 4 : 7));
    }
    auto drawn = split::draw_salts(cnn, 6);
    REQUIRE(drawn.ok());
    CHECK(drawn->size() == 6);
    for (int64_t s : *drawn) CHECK((s >= 0 && s < 10));
}
