// Split inference, the facade: a Head runs the model up to a cut point on the
// device and produces the cut tensor Z (plus its frame); a Tail runs the rest
// in the cloud from Z. The same binary can be either (docs/SPLIT.md).
//
//   auto model = graph::Model::load("lenet.salted");       // verifies hash + test vector
//   auto cut = model->find_cut("after:conv2.Conv");
//   auto head = split::Head::create(*model, **cut);         // refuses an unsafe cut
//   auto salts = split::draw_salts(*model, batch);          // the client's secret
//   auto salt = split::salt_tensor(*model, *salts);         // CNN: [N,1,1,1]; FC: drawn vectors [N,C]
//   auto z = head->run(x, salt->view());
//   auto frame = io::encode_frame(*z, head->frame_info());
//   ... on the server: decode_frame(bytes, tail.frame_expectation()), tail.run(frame.tensor.view())
//   ... back on the client: salt::desalt_logits(y, salts, out)
//
// The salt never crosses the cut: the head consumes it; the tail needs it
// only at an unsafe cut placed before the salt enters, which is refused
// unless forced.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"
#include "salted/graph/model.hpp"
#include "salted/graph/session.hpp"
#include "salted/io/frame.hpp"
#include "salted/salt/draw.hpp"
#include "salted/salt/fc_salt_vector.hpp"

namespace salted {
namespace split {

// Draws one salt per batch row from the OS CSPRNG (or `source`).
inline Result<std::vector<int64_t>> draw_salts(const graph::Model& m, int64_t batch,
                                               salt::SaltSource& source = salt::os_salt_source()) {
    if (!m.salted()) return make_error(Errc::invalid_argument, "salt: the model is not salted");
    if (batch < 1) return make_error(Errc::invalid_argument, "salt: batch: expected >= 1, found %lld",
                                     static_cast<long long>(batch));
    std::vector<int64_t> salts(static_cast<std::size_t>(batch));
    SALTED_TRY(salt::draw_salts(m.salt().classes, salts.data(), salts.size(), source));
    return salts;
}

// The model's salt input for these salts: CNN salt -> [N, 1, 1, 1] floats;
// FC salt -> salt vectors [N, C], means from the salts plus noise drawn from
// `source` (the CSPRNG by default).
inline Result<Tensor> salt_tensor(const graph::Model& m, const std::vector<int64_t>& salts,
                                  salt::SaltSource& source = salt::os_salt_source()) {
    const io::SaltSpec& spec = m.salt();
    const int64_t batch = static_cast<int64_t>(salts.size());
    if (spec.kind == io::SaltKind::none) return make_error(Errc::invalid_argument, "salt: the model is not salted");
    if (batch < 1) return make_error(Errc::invalid_argument, "salt: salts: expected one per row, found none");
    for (std::size_t i = 0; i < salts.size(); ++i)
        if (salts[i] < 0 || salts[i] >= spec.classes)
            return make_error(Errc::out_of_range, "salt: salts[%zu]: expected 0..%lld, found %lld", i,
                              static_cast<long long>(spec.classes - 1), static_cast<long long>(salts[i]));
    if (spec.kind == io::SaltKind::cnn) {
        SALTED_ASSIGN(Tensor t, Tensor::empty(Shape{batch, 1, 1, 1}));
        for (int64_t i = 0; i < batch; ++i) t[i] = static_cast<float>(salts[static_cast<std::size_t>(i)]);
        return t;
    }
    if (spec.classes > (int64_t(1) << 24))
        return make_error(Errc::unsupported, "salt: classes: expected at most 2^24 for an FC salt, found %lld",
                          static_cast<long long>(spec.classes));
    SALTED_ASSIGN(Tensor t, Tensor::empty(Shape{batch, spec.classes}));
    SALTED_TRY(salt::draw_standard_normal(t.data(), static_cast<std::size_t>(t.numel()), source));
    SALTED_TRY(salt::fc_salt_vectors(salts.data(), batch, static_cast<int>(spec.classes), t.data(), t.view()));
    return t;
}

// The frame header fields of a cut: model id = weights SHA-256, cut id and name.
inline io::FrameInfo frame_info(const graph::Model& m, const graph::CutPoint& cut) {
    io::FrameInfo info;
    std::memcpy(info.model_id.data(), m.model_id().data(), info.model_id.size());
    info.cut_id = static_cast<uint32_t>(cut.id);
    // Frames carry at most 64 printable ASCII bytes of name; a longer or
    // exotic node name is left out (the id still identifies the cut).
    bool printable = cut.name.size() <= io::frame_max_name_bytes;
    for (char ch : cut.name) printable = printable && ch >= 0x20 && ch <= 0x7E;
    if (printable) info.cut_name = cut.name;
    return info;
}

inline io::FrameExpectation frame_expectation(const graph::Model& m, const graph::CutPoint& cut) {
    const io::FrameInfo info = frame_info(m, cut);
    io::FrameExpectation e;
    e.model_id = info.model_id;
    e.cut_id = info.cut_id;
    e.cut_name = info.cut_name;
    return e;
}

inline Status check_cut_allowed(const graph::Model& m, const graph::CutPoint& cut, bool allow_unsafe) {
    if (cut.safe() || allow_unsafe) return Status();
    std::string first_safe = "none";
    for (const graph::CutPoint& c : m.cuts())
        if (c.safe()) {
            first_safe = std::to_string(c.id) + " (" + c.name + ")";
            break;
        }
    return make_error(Errc::invalid_argument,
                      "cut '%.80s' (id %d): unsafe for this salted model: %s; the first safe cut is %.100s "
                      "(force an unsafe one with --unsafe-cut)",
                      cut.name.c_str(), cut.id,
                      cut.tail_needs_salt ? "the salt enters after it, so the cloud would need the salt itself"
                                          : "the cut tensor still carries the salt channels unmixed (no conv or dense layer has combined them yet)",
                      first_safe.c_str());
}

// The device side: graph inputs (data, salt) -> the cut tensor.
class Head {
public:
    static Result<Head> create(const graph::Model& m, const graph::CutPoint& cut, bool allow_unsafe = false) {
        SALTED_TRY(check_cut_allowed(m, cut, allow_unsafe));
        Head h;
        h.model_ = &m;
        h.cut_ = cut;
        SALTED_ASSIGN(h.session_, graph::Session::create(m, 0, cut.position));
        return h;
    }
    const graph::CutPoint& cut() const { return cut_; }
    io::FrameInfo frame_info() const { return split::frame_info(*model_, cut_); }

    // `inputs` are the model's graph inputs in file order (data, then the
    // salt tensor for a salted model; see salt_tensor()).
    Result<ConstTensorView> run(const std::vector<ConstTensorView>& inputs) { return session_.run(inputs); }
    Result<ConstTensorView> run(ConstTensorView x, ConstTensorView salt) {
        if (!model_->salted()) return make_error(Errc::invalid_argument, "head: the model is not salted: pass x only");
        return run(ordered(x, salt));
    }
    Result<ConstTensorView> run(ConstTensorView x) { return run(std::vector<ConstTensorView>{x}); }

private:
    std::vector<ConstTensorView> ordered(ConstTensorView x, ConstTensorView salt) const {
        std::vector<ConstTensorView> in;
        for (int v : model_->topology().inputs) in.push_back(model_->value(v).is_salt ? salt : x);
        return in;
    }

    const graph::Model* model_ = nullptr;
    graph::CutPoint cut_;
    graph::Session session_;
};

// The cloud side: the cut tensor -> the model's (salted) outputs.
class Tail {
public:
    static Result<Tail> create(const graph::Model& m, const graph::CutPoint& cut, bool allow_unsafe = false) {
        SALTED_TRY(check_cut_allowed(m, cut, allow_unsafe));
        Tail t;
        t.model_ = &m;
        t.cut_ = cut;
        SALTED_ASSIGN(t.session_, graph::Session::create(m, cut.position, m.node_count()));
        return t;
    }
    const graph::CutPoint& cut() const { return cut_; }
    io::FrameExpectation frame_expectation() const { return split::frame_expectation(*model_, cut_); }
    // True at an unsafe cut before the salt's entry: run() then takes the salt too.
    bool needs_salt() const { return cut_.tail_needs_salt; }

    Result<ConstTensorView> run(ConstTensorView z) {
        if (needs_salt())
            return make_error(Errc::invalid_argument,
                              "tail: cut '%.80s' comes before the salt enters: the tail needs the salt too",
                              cut_.name.c_str());
        return session_.run(std::vector<ConstTensorView>{z});
    }
    // Only for an unsafe cut before the salt's entry.
    Result<ConstTensorView> run(ConstTensorView z, ConstTensorView salt) {
        if (!needs_salt()) return make_error(Errc::invalid_argument, "tail: cut '%.80s' does not take the salt",
                                             cut_.name.c_str());
        std::vector<ConstTensorView> in;
        for (int v : session_.input_values()) in.push_back(model_->value(v).is_salt ? salt : z);
        return session_.run(in);
    }

private:
    const graph::Model* model_ = nullptr;
    graph::CutPoint cut_;
    graph::Session session_;
};

}  // namespace split
}  // namespace salted
