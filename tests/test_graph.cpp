// The graph runtime's Model: instantiation of the fixture models (tests/data,
// written from PyTorch), shape inference, cut points, load-time verification,
// and rejection of malformed files: every truncation, every byte inverted,
// hand-edited headers (unknown op, weights that do not fit, bad attributes,
// the salt in the wrong place), each an error naming what is wrong.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "salted/graph/model.hpp"
#include "salted/io/npy.hpp"

using namespace salted;
using graph::Model;

namespace {

std::string data_dir() {
    std::string here = __FILE__;
    return here.substr(0, here.find_last_of('/')) + "/data";
}

std::vector<unsigned char> fixture(const char* name) {
    auto bytes = io::read_file_bytes(data_dir() + "/" + name);
    REQUIRE_MESSAGE(bytes.ok(), bytes.message());
    return std::move(bytes).value();
}

uint64_t le64(const std::vector<unsigned char>& b, std::size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | b[at + i];
    return v;
}
void put_le64(std::vector<unsigned char>& b, std::size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) b[at + i] = static_cast<unsigned char>(v >> (8 * i));
}

// Replaces the first occurrence of `from` in the JSON header and re-frames
// the file (header length and data offset follow the new header).
std::vector<unsigned char> edited(const std::vector<unsigned char>& file, const std::string& from,
                                  const std::string& to) {
    const uint64_t hlen = le64(file, 16), doff = le64(file, 24);
    std::string header(reinterpret_cast<const char*>(file.data()) + 40, hlen);
    const auto at = header.find(from);
    REQUIRE_MESSAGE(at != std::string::npos, "fixture header lacks: " << from);
    header.replace(at, from.size(), to);
    const uint64_t new_doff = (40 + header.size() + 63) / 64 * 64;
    std::vector<unsigned char> out(new_doff, ' ');
    std::memcpy(out.data(), file.data(), 40);
    put_le64(out, 16, header.size());
    put_le64(out, 24, new_doff);
    std::memcpy(out.data() + 40, header.data(), header.size());
    out.insert(out.end(), file.begin() + static_cast<long>(doff), file.end());
    return out;
}

std::string load_error(const std::vector<unsigned char>& file, graph::LoadOptions opt = graph::LoadOptions()) {
    auto m = Model::parse(file.data(), file.size(), opt);
    CHECK_MESSAGE(!m.ok(), "corrupt file accepted");
    return m.ok() ? std::string() : m.message();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const char* const fixtures[] = {"tiny_lenet_cnn_salt.salted", "tiny_lenet_fc_salt.salted"};

}  // namespace

TEST_CASE("model: the CNN-salt fixture instantiates with inferred shapes, params and FLOPs") {
    auto m = Model::load(data_dir() + "/tiny_lenet_cnn_salt.salted");
    REQUIRE_MESSAGE(m.ok(), m.message());
    CHECK(m->node_count() == 11);
    CHECK(m->salted());
    CHECK(m->salt().kind == io::SaltKind::cnn);
    CHECK(m->node(2).op == "cnn_salt_concat");
    CHECK(m->topology().salt_node == 2);
    CHECK(m->value(m->topology().salt_value).name == "salt");
    // conv1: 1 -> 4, k5 on 28x28 -> 24x24; the salt adds 5 maps of 24x24.
    CHECK(m->value(m->node(1).output).shape == Shape{1, 4, 24, 24});
    CHECK(m->value(m->node(2).output).shape == Shape{1, 9, 24, 24});
    CHECK(m->value(m->topology().outputs[0]).shape == Shape{1, 10});
    CHECK(m->value_shape(m->topology().outputs[0], 7) == Shape{7, 10});
    // Parameters are the weight tensors' elements; FLOPs of conv1 = 2 * out * k.
    int64_t weights = 0;
    for (const io::TensorEntry& t : m->file().tensors()) weights += t.shape.numel();
    CHECK(m->parameter_count() == weights);
    CHECK(m->node(1).flops == 2 * (4 * 24 * 24) * (1 * 5 * 5));
    CHECK(m->node(1).params == 4 * 25 + 4);
}

TEST_CASE("model: cut points of the CNN-salt fixture") {
    auto m = Model::load(data_dir() + "/tiny_lenet_cnn_salt.salted");
    REQUIRE_MESSAGE(m.ok(), m.message());
    const auto& cuts = m->cuts();
    // A chain: every position 0..n is a cut.
    REQUIRE(cuts.size() == 12);
    double total = static_cast<double>(m->flops_per_item()) / 1e6;
    for (std::size_t i = 0; i < cuts.size(); ++i) {
        const graph::CutPoint& c = cuts[i];
        CHECK(c.id == static_cast<int>(i));
        CHECK(c.position == static_cast<int>(i));
        CHECK(c.bytes == c.shape.numel() * 4);
        CHECK(c.head_mflops + c.tail_mflops == doctest::Approx(total));
        // salt.Concat is node 2, its consumer conv2 node 3: cuts 0..3 unsafe.
        CHECK(c.safe() == (c.position >= 4));
        CHECK(c.tail_needs_salt == (c.position <= 2));
    }
    CHECK(cuts[0].name == "input:x");
    CHECK(cuts[3].name == "after:salt.Concat");
    CHECK(cuts[3].shape == Shape{1, 9, 24, 24});
    CHECK(cuts[4].name == "after:conv2.Conv");
    CHECK(cuts[0].head_mflops == 0.0);
    CHECK(cuts[11].tail_mflops == doctest::Approx(0.0));
    // find_cut takes an id or a name.
    auto by_name = m->find_cut("after:MaxPool");
    REQUIRE(by_name.ok());
    CHECK((*by_name)->id == 5);
    auto by_id = m->find_cut("7");
    REQUIRE(by_id.ok());
    CHECK((*by_id)->name == "after:MaxPool_1");
    for (const char* bad : {"12", "-1", "", "after:nothing", "99999999999999999999"}) {
        auto r = m->find_cut(bad);
        CHECK(!r.ok());
        CHECK(contains(r.message(), "cut: expected a cut id 0..11"));
    }
}

TEST_CASE("model: the FC-salt cut is safe only after the dense layer that reads the salt vector") {
    auto m = Model::load(data_dir() + "/tiny_lenet_fc_salt.salted");
    REQUIRE_MESSAGE(m.ok(), m.message());
    CHECK(m->salt().kind == io::SaltKind::fc);
    const int salt_node = m->topology().salt_node;
    CHECK(m->node(salt_node).op == "fc_salt_concat");
    for (const graph::CutPoint& c : m->cuts()) {
        CHECK(c.safe() == (c.position > salt_node + 1));
        CHECK(c.tail_needs_salt == (c.position <= salt_node));
    }
}

TEST_CASE("model: a standard model has only safe cuts") {
    // The FC fixture's topology with the salt node forgotten: the rule then
    // has nothing to protect, and every cut is safe.
    auto file = fixture("tiny_lenet_fc_salt.salted");
    auto m0 = Model::parse(file.data(), file.size());
    REQUIRE(m0.ok());
    graph::Topology t = m0->topology();
    t.salt_node = -1;
    for (const graph::CutPoint& c : graph::find_cut_points(t)) {
        CHECK(c.safe());
        CHECK(!c.tail_needs_salt);
    }
}

TEST_CASE("model: per-channel layers after the salt concat do not count as mixing") {
    // concat -> batch_norm -> conv: the BN output still carries the salt channels.
    graph::Topology t;
    auto value = [&](const char* name, int producer) {
        graph::ValueInfo v;
        v.name = name;
        v.producer = producer;
        v.shape = Shape{1, 4};
        t.values.push_back(v);
        return static_cast<int>(t.values.size()) - 1;
    };
    auto node = [&](const char* name, const char* op, std::vector<int> in) {
        graph::NodeInfo n;
        n.name = name;
        n.op = op;
        n.inputs = in;
        n.flops = 10;
        const int i = static_cast<int>(t.nodes.size());
        for (int v : in) t.values[static_cast<std::size_t>(v)].consumers.push_back(i);
        n.output = value(name, i);
        t.nodes.push_back(n);
        return n.output;
    };
    const int x = value("x", -1), s = value("salt", -1);
    t.values[static_cast<std::size_t>(x)].graph_input = 0;
    t.values[static_cast<std::size_t>(s)].graph_input = 1;
    t.values[static_cast<std::size_t>(s)].is_salt = true;
    t.inputs = {x, s};
    const int c = node("cat", "cnn_salt_concat", {x, s});
    t.salt_value = s;
    t.salt_node = 0;
    const int b = node("bn", "batch_norm", {c});
    const int r = node("relu", "relu", {b});
    const int k = node("conv", "conv2d", {r});
    const int y = node("pool", "max_pool2d", {k});
    t.values[static_cast<std::size_t>(y)].graph_output = 0;
    t.outputs = {y};
    const auto cuts = graph::find_cut_points(t);
    REQUIRE(cuts.size() == 6);  // a chain: positions 0..5, the salt never counted
    for (const graph::CutPoint& cut : cuts) CHECK(cut.safe() == (cut.position >= 4));
}

TEST_CASE("model: load verifies the hashes and the test vector; both can be skipped") {
    for (const char* name : fixtures) {
        CAPTURE(name);
        auto file = fixture(name);
        auto m = Model::parse(file.data(), file.size());
        REQUIRE_MESSAGE(m.ok(), m.message());
        // Shift one stored PyTorch logit by 1: the hash catches it; without
        // the hash check the replay does, naming the output and the diff.
        const io::TensorEntry& out = m->file().test_vector().outputs[0];
        const uint64_t at = le64(file, 24) + out.begin;
        float v;
        std::memcpy(&v, &file[at], 4);
        v += 1.0f;
        auto bad = file;
        std::memcpy(&bad[at], &v, 4);
        const std::string hash_err = load_error(bad);
        CHECK(contains(hash_err, "test_vector.sha256"));
        graph::LoadOptions no_hash;
        no_hash.verify_hash = false;
        auto r = Model::parse(bad.data(), bad.size(), no_hash);
        REQUIRE(!r.ok());
        CHECK(r.code() == Errc::verify_failed);
        CHECK(contains(r.message(), "test_vector.outputs.'logits': max|diff| 1"));
        CHECK(contains(r.message(), "exceeds the tolerance"));
        graph::LoadOptions none;
        none.verify_hash = false;
        none.verify_test_vector = false;
        CHECK(Model::parse(bad.data(), bad.size(), none).ok());
    }
}

TEST_CASE("model: load errors start with the path") {
    auto r = Model::load(data_dir() + "/no_such_model.salted");
    REQUIRE(!r.ok());
    CHECK(r.code() == Errc::io_error);
    CHECK(contains(r.message(), "no_such_model.salted"));
}

TEST_CASE("model: every truncation of a fixture is an error") {
    for (const char* name : fixtures) {
        CAPTURE(name);
        const auto file = fixture(name);
        std::size_t accepted = 0;
        for (std::size_t n = 0; n < file.size(); ++n) {
            auto m = Model::parse(file.data(), n);
            if (m.ok()) ++accepted;
        }
        CHECK(accepted == 0);
    }
}

TEST_CASE("model: inverting any single byte of a fixture is an error") {
    // XOR 0xFF: in the JSON header it always leaves invalid UTF-8 or an
    // invalid token; in the preamble, padding, weights and test vector the
    // framing checks, the hashes and the zero-padding rule catch it.
    for (const char* name : fixtures) {
        CAPTURE(name);
        auto file = fixture(name);
        std::size_t accepted = 0;
        std::size_t first = 0;
        for (std::size_t i = 0; i < file.size(); ++i) {
            file[i] ^= 0xFF;
            auto m = Model::parse(file.data(), file.size());
            if (m.ok() && accepted++ == 0) first = i;
            file[i] ^= 0xFF;
        }
        CHECK_MESSAGE(accepted == 0, "accepted " << accepted << " flipped files, first at byte " << first);
    }
}

TEST_CASE("model: graph-level errors name the node, the field, expected and found") {
    const auto cnn = fixture("tiny_lenet_cnn_salt.salted");
    struct Case {
        const char* from;
        const char* to;
        const char* expect;
    };
    const Case cases[] = {
        {"\"op\":\"conv2d\",\"name\":\"conv1.Conv\"", "\"op\":\"conv9d\",\"name\":\"conv1.Conv\"",
         "node 'conv1.Conv': unknown op 'conv9d'"},
        {"\"in_channels\":1,\"out_channels\":4", "\"in_channels\":1,\"out_channels\":5",
         "node 'conv1.Conv' (conv2d): conv2d: weight shape"},
        {"\"kernel\":[5,5]", "\"kernel\":[5,5,5]", "attribute 'kernel': expected 2 integers, found 3"},
        {"\"kernel\":[5,5]", "\"kernel\":[5,99999999999]", "attribute 'kernel[1]': expected 1..2147483648"},
        {"\"kernel\":[5,5]", "\"kernel\":[5,0]", "attribute 'kernel[1]'"},
        {"\"stride\":[1,1]", "\"stride\":[1,\"x\"]", "attribute 'stride'[1]: expected an integer"},
        {"\"groups\":1", "\"groups\":3", "conv2d: groups"},
        {"\"activation\":{\"kind\":\"relu\"}", "\"activation\":{\"kind\":\"gelu\"}", "attribute 'activation.kind'"},
        {"\"maps\":5,\"size\":[24,24],\"salt_first\"", "\"maps\":5,\"size\":[23,24],\"salt_first\"",
         "node 'salt.Concat' (cnn_salt_concat): cnn_salt: weight shape: expected [1, 5, 23, 24]"},
        {"\"node\":\"salt.Concat\",\"maps\":5,\"size\":[24,24]", "\"node\":\"salt.Concat\",\"maps\":5,\"size\":[24,23]",
         "model: salt: expected 5 maps of 24x24 (node 'salt.Concat'), found 5 maps of 24x23"},
        {"\"kernel\":[2,2],\"stride\":[2,2],\"pad\":[0,0,0,0]", "\"kernel\":[2,2],\"stride\":[2,2],\"pad\":[0,0,2,0]",
         "max_pool2d: pad_bottom"},
        {"\"in_features\":36", "\"in_features\":37", "node 'fc1.Gemm' (dense)"},
        {"\"op\":\"flatten\",\"name\":\"Flatten\",\"inputs\":[\"MaxPool_1\"]",
         "\"op\":\"flatten\",\"name\":\"Flatten\",\"inputs\":[\"MaxPool\"]", "node 'fc1.Gemm' (dense)"},
        {"\"op\":\"flatten\",\"name\":\"Flatten\",\"inputs\":[\"MaxPool_1\"]",
         "\"op\":\"flatten\",\"name\":\"Flatten\",\"inputs\":[\"MaxPool_1\",\"MaxPool_1\"]",
         "node 'Flatten' (flatten): inputs: expected 1, found 2"},
        {"\"inputs\":[\"conv1.Conv\",\"salt\"]", "\"inputs\":[\"salt\",\"conv1.Conv\"]",
         "the salt input 'salt' may only be the second input"},
        {"\"op\":\"flatten\",\"name\":\"Flatten\",\"inputs\":[\"MaxPool_1\"],\"outputs\":[\"Flatten\"],\"attrs\":{\"axis\":1}",
         "\"op\":\"flatten\",\"name\":\"Flatten\",\"inputs\":[\"MaxPool_1\"],\"outputs\":[\"Flatten\"],\"attrs\":{\"axis\":0}",
         "attribute 'axis': expected 1..5, found 0"},
    };
    for (const Case& c : cases) {
        const std::string edit = c.to;
        CAPTURE(edit);
        const std::string err = load_error(edited(cnn, c.from, c.to));
        CHECK_MESSAGE(contains(err, c.expect), err);
    }
}

TEST_CASE("model: a declared output shape that inference contradicts is an error") {
    auto file = fixture("tiny_lenet_fc_salt.salted");
    // fc3 computes 10 logits; declare a model whose test vector is absent and output 11 wide.
    auto e = edited(file, "\"outputs\":[{\"name\":\"logits\",\"shape\":[\"N\",10]}]",
                    "\"outputs\":[{\"name\":\"logits\",\"shape\":[\"N\",11]}]");
    const std::string err = load_error(e);
    CHECK(contains(err, "logits"));
}
