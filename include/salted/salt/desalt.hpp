// De-salting: turning the salted network's outputs back into class scores.
// The network is trained so that class c scores at index (c + s) mod C, so
// the client, who alone knows s, reads class c's score at that index: a
// cyclic left roll of each logit row by its salt. After the roll the row is
// an ordinary logit vector, so argmax, top-k and softmax apply unchanged
// (softmax commutes with any permutation of its inputs).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace salt {

inline Status check_salt(int64_t s, int64_t classes, const char* who, int64_t row) {
    if (s < 0 || s >= classes)
        return make_error(Errc::out_of_range, "%s: salts[%lld]: expected 0..%lld, found %lld", who,
                          static_cast<long long>(row), static_cast<long long>(classes - 1), static_cast<long long>(s));
    return Status();
}

namespace detail {

inline Status check_logits(ConstTensorView logits, const int64_t* salts, const char* who) {
    if (logits.shape.rank() != 2)
        return make_error(Errc::shape_mismatch, "%s: logits: expected rank 2 [N, C], found %s", who,
                          logits.shape.str().c_str());
    SALTED_TRY(logits.shape.validate());
    if (!logits.data) return make_error(Errc::invalid_argument, "%s: logits: expected data, found null", who);
    if (!salts) return make_error(Errc::invalid_argument, "%s: salts: expected %lld salts, found null", who,
                                  static_cast<long long>(logits.shape[0]));
    for (int64_t n = 0; n < logits.shape[0]; ++n) SALTED_TRY(check_salt(salts[n], logits.shape[1], who, n));
    return Status();
}

inline Status check_desalt_output(ConstTensorView logits, TensorView out) {
    if (out.shape != logits.shape)
        return make_error(Errc::shape_mismatch, "desalt_logits: out: expected %s, found %s",
                          logits.shape.str().c_str(), out.shape.str().c_str());
    if (!out.data) return make_error(Errc::invalid_argument, "desalt_logits: out: expected data, found null");
    const float* a = logits.data;
    const float* b = out.data;
    const int64_t n = logits.numel();
    if (a != b && a < b + n && b < a + n)
        return make_error(Errc::invalid_argument,
                          "desalt_logits: out: expected the same buffer as logits or a disjoint one, found a partial overlap");
    return Status();
}

}  // namespace detail

// out[n, c] = logits[n, (c + salts[n]) mod C] for logits [N, C]. out may be
// logits itself (rolled in place) or a disjoint buffer.
inline Status desalt_logits(ConstTensorView logits, const int64_t* salts, TensorView out) {
    SALTED_TRY(detail::check_logits(logits, salts, "desalt_logits"));
    SALTED_TRY(detail::check_desalt_output(logits, out));
    const int64_t rows = logits.shape[0], classes = logits.shape[1];
    for (int64_t n = 0; n < rows; ++n) {
        const float* in = logits.data + n * classes;
        float* o = out.data + n * classes;
        const int64_t s = salts[n];
        if (in == o) {
            std::rotate(o, o + s, o + classes);  // left roll by s
        } else {
            std::memcpy(o, in + s, std::size_t(classes - s) * sizeof(float));
            std::memcpy(o + (classes - s), in, std::size_t(s) * sizeof(float));
        }
    }
    return Status();
}

// The true class from the salted arg-max: (salted_argmax - s) mod C, in [0, C).
inline Result<int64_t> desalted_label(int64_t salted_argmax, int64_t s, int64_t classes) {
    if (classes < 1)
        return make_error(Errc::invalid_argument, "desalted_label: classes: expected >= 1, found %lld",
                          static_cast<long long>(classes));
    if (salted_argmax < 0 || salted_argmax >= classes)
        return make_error(Errc::out_of_range, "desalted_label: argmax: expected 0..%lld, found %lld",
                          static_cast<long long>(classes - 1), static_cast<long long>(salted_argmax));
    SALTED_TRY(check_salt(s, classes, "desalted_label", 0));
    const int64_t d = salted_argmax - s;  // in (-C, C)
    return d < 0 ? d + classes : d;
}

// Orders class indices best first: higher score first, NaN after every
// number, ties broken by the lower index. A strict total order, so sorting
// with it is deterministic even with NaN in the row.
struct BetterScore {
    const float* row;
    bool operator()(int64_t i, int64_t j) const {
        const float a = row[i], b = row[j];
        const bool na = std::isnan(a), nb = std::isnan(b);
        if (na != nb) return nb;
        if (!na && a != b) return a > b;
        return i < j;
    }
};

// Index of the largest score (the first one on ties; NaN never wins unless
// the whole row is NaN, then 0). n must be >= 1.
inline int64_t argmax(const float* row, int64_t n) {
    BetterScore better{row};
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (better(i, best)) best = i;
    return best;
}

// The k best indices of row[0, n), best first, ties by lower index.
inline Result<std::vector<int64_t>> top_k(const float* row, int64_t n, int64_t k) {
    if (!row) return make_error(Errc::invalid_argument, "top_k: row: expected data, found null");
    if (n < 1) return make_error(Errc::invalid_argument, "top_k: n: expected >= 1, found %lld", static_cast<long long>(n));
    if (k < 1 || k > n)
        return make_error(Errc::invalid_argument, "top_k: k: expected 1..%lld, found %lld", static_cast<long long>(n),
                          static_cast<long long>(k));
    std::vector<int64_t> idx(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[std::size_t(i)] = i;
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), BetterScore{row});
    idx.resize(std::size_t(k));
    return idx;
}

// Class labels straight from salted logits [N, C]: labels[n] is the class
// whose de-salted score is highest. Equivalent to desalt_logits + argmax,
// without writing the rolled rows.
inline Status desalted_labels(ConstTensorView logits, const int64_t* salts, int64_t* labels) {
    SALTED_TRY(detail::check_logits(logits, salts, "desalted_labels"));
    if (!labels) return make_error(Errc::invalid_argument, "desalted_labels: labels: expected memory, found null");
    const int64_t rows = logits.shape[0], classes = logits.shape[1];
    for (int64_t n = 0; n < rows; ++n) {
        // argmax over the de-salted order, so ties resolve to the lower class
        // (not the lower salted index), exactly as after desalt_logits.
        const float* in = logits.data + n * classes;
        const int64_t s = salts[n];
        int64_t best = 0;
        for (int64_t c = 1; c < classes; ++c) {
            const int64_t ic = (c + s) % classes, ib = (best + s) % classes;
            const float a = in[ic], b = in[ib];
            const bool na = std::isnan(a), nb = std::isnan(b);
            if ((na != nb && nb) || (!na && !nb && a > b)) best = c;
        }
        labels[n] = best;
    }
    return Status();
}

namespace ref {
// The definition, element by element; what the tests hold the fast path to.
inline Status desalt_logits(ConstTensorView logits, const int64_t* salts, TensorView out) {
    SALTED_TRY(detail::check_logits(logits, salts, "desalt_logits"));
    if (out.shape != logits.shape || !out.data || out.data == logits.data)
        return make_error(Errc::invalid_argument, "ref::desalt_logits: out: expected a separate [N, C] buffer");
    const int64_t rows = logits.shape[0], classes = logits.shape[1];
    for (int64_t n = 0; n < rows; ++n)
        for (int64_t c = 0; c < classes; ++c)
            out.data[n * classes + c] = logits.data[n * classes + (c + salts[n]) % classes];
    return Status();
}
}  // namespace ref

}  // namespace salt
}  // namespace salted
