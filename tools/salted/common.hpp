// Shared pieces of the `salted` program: argument parsing, failures, model
// loading, salts and tensors from files. Every command file includes this;
// main.cpp dispatches (the command list is in main.cpp's comment).
#pragma once

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/graph/model.hpp"
#include "salted/graph/session.hpp"
#include "salted/io/frame.hpp"
#include "salted/io/npy.hpp"
#include "salted/salt/desalt.hpp"
#include "salted/split.hpp"

namespace salted_cli {

using namespace salted;

// A failure on its way to main(): message and exit status.
struct Failure {
    int status = 0;
    std::string message;
};

inline Failure usage(const std::string& what) { return Failure{2, what + " (see `salted --help`)"}; }
inline Failure fail(const std::string& what) { return Failure{1, what}; }
inline Failure fail(const Error& e) { return Failure{1, e.message}; }

struct Args {
    std::string command, model;
    std::map<std::string, std::string> values;  // --key value
    std::map<std::string, bool> flags;          // --flag
    std::vector<std::string> inputs;            // every --input, in order (`client` takes several)
    bool has(const std::string& k) const { return values.count(k) != 0; }
    std::string get(const std::string& k) const {
        auto it = values.find(k);
        return it == values.end() ? std::string() : it->second;
    }
    bool flag(const std::string& k) const { return flags.count(k) != 0; }
};

inline const char* const value_options[] = {"--input", "--output", "--salt", "--salt-vector", "--cut", "--threads",
                                     "--top", "--frame-dtype", "--save-salt",
                                            "--listen", "--max-body", "--server", "--data", "--limit",
                                            "--batch", "--salts", "--salt-vectors", "--iters", "--warmup", "--micro-batch"};
inline const char* const flag_options[] = {"--unsafe-cut", "--no-verify", "--desalt", "--json",
                                           "--server-view", "--layers", "--fixed-threads", "--batch-invariant"};

inline Failure parse_args(int argc, char** argv, Args& a) {
    if (argc < 2) return usage("missing command");
    a.command = argv[1];
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        bool known = false;
        for (const char* o : value_options)
            if (arg == o) {
                if (i + 1 >= argc) return usage("option " + arg + " needs a value");
                const bool repeatable = arg == "--input" && a.command == "client";
                if (a.values.count(arg) && !repeatable) return usage("option " + arg + " given twice");
                a.values[arg] = argv[++i];
                if (arg == "--input") a.inputs.push_back(a.values[arg]);
                known = true;
            }
        for (const char* o : flag_options)
            if (arg == o) {
                a.flags[arg] = true;
                known = true;
            }
        if (known) continue;
        if (arg.size() > 1 && arg[0] == '-') return usage("unknown option '" + arg + "'");
        if (!a.model.empty()) return usage("unexpected argument '" + arg + "'");
        a.model = arg;
    }
    return Failure();
}

// Options a command accepts; anything else given is a usage error, so a
// mistyped or misplaced option never silently does nothing.
inline Failure check_options(const Args& a, std::vector<std::string> allowed) {
    allowed.push_back("--threads");
    auto ok = [&](const std::string& k) {
        for (const std::string& o : allowed)
            if (o == k) return true;
        return false;
    };
    for (const auto& kv : a.values)
        if (!ok(kv.first)) return usage("option " + kv.first + " does not apply to `salted " + a.command + "`");
    for (const auto& kv : a.flags)
        if (!ok(kv.first)) return usage("option " + kv.first + " does not apply to `salted " + a.command + "`");
    return Failure();
}

// check_options for a command that loads a model: load_model() also reads
// --no-verify and --batch-invariant.
inline Failure check_model_command_options(const Args& a, std::vector<std::string> allowed) {
    allowed.push_back("--no-verify");
    allowed.push_back("--batch-invariant");
    return check_options(a, std::move(allowed));
}

inline Failure require(const Args& a, const char* option) {
    if (!a.has(option)) return usage(std::string("`salted ") + a.command + "` needs " + option);
    return Failure();
}

inline bool parse_int(const std::string& s, long long lo, long long hi, long long& out) {
    if (s.empty() || s.size() > 20) return false;
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno != 0 || end != s.c_str() + s.size() || v < lo || v > hi) return false;
    out = v;
    return true;
}

// --salt: one integer for every row, or a .npy of per-row integers (an
// integer array, or floats holding integers as `salted --save-salt` writes).
inline Result<std::vector<int64_t>> read_salts(const std::string& spec, int64_t rows, int64_t classes) {
    long long one = 0;
    std::vector<int64_t> salts;
    if (parse_int(spec, -(1LL << 40), 1LL << 40, one)) {
        salts.assign(static_cast<std::size_t>(rows), one);
    } else {
        SALTED_ASSIGN(io::NpyArray arr, io::read_npy(spec));
        if (arr.dtype == io::NpyDtype::i32 || arr.dtype == io::NpyDtype::i64) {
            SALTED_ASSIGN(salts, arr.to_ints());
        } else {
            SALTED_ASSIGN(Tensor t, arr.to_tensor());
            for (int64_t i = 0; i < t.numel(); ++i) {
                const float v = t[i];
                if (!(v == static_cast<float>(static_cast<int64_t>(v)) && v > -1e9f && v < 1e9f))
                    return make_error(Errc::invalid_argument, "%s: salts[%lld]: expected an integer, found %g",
                                      spec.c_str(), static_cast<long long>(i), static_cast<double>(v));
                salts.push_back(static_cast<int64_t>(v));
            }
        }
        if (static_cast<int64_t>(salts.size()) != rows)
            return make_error(Errc::shape_mismatch, "%s: expected %lld salts (one per row), found %zu", spec.c_str(),
                              static_cast<long long>(rows), salts.size());
    }
    for (std::size_t i = 0; i < salts.size(); ++i)
        if (salts[i] < 0 || salts[i] >= classes)
            return make_error(Errc::out_of_range, "--salt: row %zu: expected a salt in 0..%lld, found %lld", i,
                              static_cast<long long>(classes - 1), static_cast<long long>(salts[i]));
    return salts;
}

inline Result<Tensor> read_tensor(const std::string& path) {
    SALTED_ASSIGN(io::NpyArray arr, io::read_npy(path));
    if (arr.dtype != io::NpyDtype::f32)
        return make_error(Errc::invalid_argument, "%s: expected a float32 array ('<f4'), found another dtype",
                          path.c_str());
    if (arr.shape.rank() < 1)
        return make_error(Errc::shape_mismatch, "%s: expected a batch-first array, found a scalar", path.c_str());
    return arr.to_tensor();
}

inline Status save_salts(const std::string& path, const std::vector<int64_t>& salts) {
    std::vector<float> f(salts.begin(), salts.end());
    return io::write_npy(path, ConstTensorView(f.data(), Shape{static_cast<int64_t>(f.size())}));
}

inline void print_salts(const std::vector<int64_t>& salts) {
    std::printf("salts:");
    for (int64_t s : salts) std::printf(" %lld", static_cast<long long>(s));
    std::printf("\n");
}

inline Result<graph::Model> load_model(const Args& a) {
    if (a.model.empty()) return make_error(Errc::invalid_argument, "missing MODEL (a .salted file)");
    graph::LoadOptions opts;
    opts.verify_hash = opts.verify_test_vector = !a.flag("--no-verify");
    opts.batch_invariant = a.flag("--batch-invariant");
    return graph::Model::load(a.model, opts);
}

// The salt inputs of a run or head: the integer salts (given, drawn, or
// unknown when only --salt-vector is given) and the model's salt tensor.
struct SaltInputs {
    std::vector<int64_t> salts;  // empty when unknown
    Tensor tensor;               // empty storage for a standard model
};

inline Result<SaltInputs> salt_inputs(const Args& a, const graph::Model& m, int64_t batch) {
    SaltInputs s;
    if (!m.salted()) {
        if (a.has("--salt") || a.has("--salt-vector"))
            return make_error(Errc::invalid_argument, "%s: the model is not salted: --salt / --salt-vector do not apply",
                              a.model.c_str());
        return s;
    }
    const int64_t classes = m.salt().classes;
    if (a.has("--salt-vector")) {
        if (m.salt().kind != io::SaltKind::fc)
            return make_error(Errc::invalid_argument, "--salt-vector: the model has a CNN salt: pass --salt");
        SALTED_ASSIGN(s.tensor, read_tensor(a.get("--salt-vector")));
        if (s.tensor.shape() != Shape{batch, classes})
            return make_error(Errc::shape_mismatch, "%s: expected salt vectors of shape %s, found %s",
                              a.get("--salt-vector").c_str(), Shape{batch, classes}.str().c_str(),
                              s.tensor.shape().str().c_str());
        if (a.has("--salt")) {
            SALTED_ASSIGN(s.salts, read_salts(a.get("--salt"), batch, classes));
        }
        return s;
    }
    if (a.has("--salt")) {
        SALTED_ASSIGN(s.salts, read_salts(a.get("--salt"), batch, classes));
    } else {
        SALTED_ASSIGN(s.salts, split::draw_salts(m, batch));
        print_salts(s.salts);
    }
    SALTED_ASSIGN(s.tensor, split::salt_tensor(m, s.salts));
    return s;
}

inline std::vector<ConstTensorView> graph_inputs(const graph::Model& m, const Tensor& x, const SaltInputs& s) {
    std::vector<ConstTensorView> in;
    for (int v : m.topology().inputs) in.push_back(m.value(v).is_salt ? s.tensor.view() : x.view());
    return in;
}

inline Failure check_single_data_input(const graph::Model& m, const std::string& path) {
    int data = 0;
    for (int v : m.topology().inputs) data += m.value(v).is_salt ? 0 : 1;
    if (data != 1) return fail(path + ": the program supports models with one data input, this one has " +
                               std::to_string(data));
    return Failure();
}

inline Failure save_salts_if_asked(const Args& a, const SaltInputs& s) {
    if (!a.has("--save-salt")) return Failure();
    if (s.salts.empty()) return fail("--save-salt: the salts are unknown (only --salt-vector was given)");
    Status st = save_salts(a.get("--save-salt"), s.salts);
    return st.ok() ? Failure() : fail(st.error());
}


inline Result<const graph::CutPoint*> cut_of(const Args& a, const graph::Model& m) {
    auto c = m.find_cut(a.get("--cut"));
    if (!c.ok()) return make_error(c.code(), "--cut: %s", c.message().c_str() + (c.message().rfind("cut: ", 0) == 0 ? 5 : 0));
    return c;
}

// Commands that live in their own files (serve.cpp, client.cpp, eval.cpp).
Failure cmd_serve(const Args& a);
Failure cmd_client(const Args& a);
Failure cmd_eval(const Args& a);
Failure cmd_bench(const Args& a);
std::string json_string(const std::string& s);  // main.cpp

}  // namespace salted_cli
