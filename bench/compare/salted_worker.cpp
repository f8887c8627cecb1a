// salted_compare_worker: the salted side of bench/compare (README.md here).
//
//   salted_compare_worker MODEL.salted X.npy [SALT.npy] [--threads T]
//
// Loads the model (hashes and the embedded PyTorch test vector verified),
// reads the fixed inputs, creates one graph::Session for the whole model and
// prints one line `ready {json}`. Then reads commands from stdin, one a line:
//   run N        N timed runs of the whole model; prints `times t1 ... tN` (ms)
//   modes        how each run of the last `run N` ran: prints `modes M1 ... MN`,
//                1 where the session's adaptive thread choice kept the run on
//                the calling thread alone, T (the thread count) where it used
//                the pool
//   output PATH  writes the last run's output as .npy; prints `ok`
//   quit         (or end of input) exits 0
// Any failure prints `error: <one line>`; a failure before `ready` exits 1.
// Public API only: graph::Model::load, graph::Session, set_num_threads.
// OMP_WAIT_POLICY is left to the caller (the orchestrator sets PASSIVE, the
// default of the `salted` program); its value is reported in the ready line.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/graph/model.hpp"
#include "salted/graph/session.hpp"
#include "salted/io/npy.hpp"

namespace {

using namespace salted;

std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}

std::string json_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        if (static_cast<unsigned char>(c) < 0x20) continue;
        o += c;
    }
    return o;
}

int fail_start(const std::string& msg) {
    std::printf("error: %s\n", one_line(msg).c_str());
    std::fflush(stdout);
    return 1;
}

bool parse_count(const std::string& s, long lo, long hi, long& out) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return false;
    out = std::strtol(s.c_str(), nullptr, 10);
    return out >= lo && out <= hi;
}

Result<Tensor> read_tensor(const std::string& path) {
    SALTED_ASSIGN(io::NpyArray a, io::read_npy(path));
    auto t = a.to_tensor();
    if (!t.ok()) return make_error(t.code(), "%s: %s", path.c_str(), t.message().c_str());
    return t;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> pos;
    long threads = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--threads") {
            if (i + 1 >= argc || !parse_count(argv[i + 1], 1, 1024, threads))
                return fail_start("--threads: expected an integer in 1..1024");
            ++i;
        } else if (a.size() > 1 && a[0] == '-') {
            return fail_start("unknown option '" + a + "'");
        } else {
            pos.push_back(a);
        }
    }
    if (pos.size() < 2 || pos.size() > 3)
        return fail_start("usage: salted_compare_worker MODEL.salted X.npy [SALT.npy] [--threads T]");
    set_num_threads(static_cast<int>(threads));

    const auto t0 = std::chrono::steady_clock::now();
    auto model = graph::Model::load(pos[0]);
    if (!model.ok()) return fail_start(model.message());
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    auto x = read_tensor(pos[1]);
    if (!x.ok()) return fail_start(x.message());
    Tensor salt;
    if (pos.size() == 3) {
        auto s = read_tensor(pos[2]);
        if (!s.ok()) return fail_start(s.message());
        salt = std::move(s).value();
    }
    std::vector<ConstTensorView> inputs;
    for (int v : model->topology().inputs) {
        if (model->value(v).is_salt) {
            if (pos.size() != 3) return fail_start(pos[0] + ": the model is salted: pass SALT.npy");
            inputs.push_back(salt.view());
        } else {
            inputs.push_back(x->view());
        }
    }
    if (pos.size() == 3 && !model->salted()) return fail_start(pos[0] + ": the model is not salted: drop SALT.npy");

    auto session = graph::Session::whole(*model);
    if (!session.ok()) return fail_start(session.message());
    // One untimed run checks the inputs and plans the buffers.
    auto first = session->run(inputs);
    if (!first.ok()) return fail_start(first.message());

    const char* wait = std::getenv("OMP_WAIT_POLICY");
#if defined(_OPENMP)
    const bool openmp = true;
#else
    const bool openmp = false;
#endif
#if defined(__AVX512F__)
    const char* isa = "avx512f";
#elif defined(__AVX2__)
    const char* isa = "avx2";
#else
    const char* isa = "baseline";
#endif
    std::printf(
        "ready {\"engine\": \"salted\", \"threads\": %ld, \"max_threads\": %d, \"openmp\": %s, "
        "\"omp_wait_policy\": \"%s\", \"flops_per_item\": %lld, \"nodes\": %d, \"load_ms\": %.3f, "
        "\"compiler\": \"%s\", \"isa\": \"%s\", \"batch\": %lld}\n",
        threads, max_threads(), openmp ? "true" : "false", json_escape(wait ? wait : "(unset)").c_str(),
        static_cast<long long>(model->flops_per_item()), model->node_count(), load_ms,
        json_escape(__VERSION__).c_str(), isa, static_cast<long long>(x->shape()[0]));
    std::fflush(stdout);

    std::string line;
    std::vector<double> times;
    std::vector<int> modes;  // threads each run of the last `run N` could use
    const int64_t batch = x->shape()[0];
    while (std::getline(std::cin, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line == "quit") break;
        if (line.rfind("run ", 0) == 0) {
            long n = 0;
            if (!parse_count(line.substr(4), 1, 100000, n)) {
                std::printf("error: run: expected a count in 1..100000, found '%.40s'\n", line.c_str() + 4);
            } else {
                times.clear();
                modes.clear();
                std::string err;
                for (long i = 0; i < n; ++i) {
                    modes.push_back(session->runs_serially(batch) ? 1 : max_threads());
                    const auto a = std::chrono::steady_clock::now();
                    auto y = session->run(inputs);
                    const auto b = std::chrono::steady_clock::now();
                    if (!y.ok()) {
                        err = y.message();
                        break;
                    }
                    times.push_back(std::chrono::duration<double, std::milli>(b - a).count());
                }
                if (!err.empty()) {
                    std::printf("error: run: %s\n", one_line(err).c_str());
                } else {
                    std::string out = "times";
                    char buf[32];
                    for (double t : times) {
                        std::snprintf(buf, sizeof buf, " %.6f", t);
                        out += buf;
                    }
                    std::printf("%s\n", out.c_str());
                }
            }
        } else if (line == "modes") {
            std::string out = "modes";
            for (int m : modes) out += " " + std::to_string(m);
            std::printf("%s\n", out.c_str());
        } else if (line.rfind("output ", 0) == 0) {
            const auto& outs = session->outputs();
            Status st = outs.empty() ? Status(make_error(Errc::invalid_argument, "no output yet"))
                                     : io::write_npy(line.substr(7), outs[0]);
            if (st.ok()) std::printf("ok\n");
            else std::printf("error: output: %s\n", one_line(st.message()).c_str());
        } else {
            std::printf("error: unknown command '%.60s' (expected run N, modes, output PATH, quit)\n", line.c_str());
        }
        std::fflush(stdout);
    }
    return 0;
}
