// `salted eval`: accuracy of a model on an IDX image set (Fashion-MNIST's
// t10k files, plain or .gz), as the client sees it (de-salted) and as the
// server would guess it (arg-max of the salted logits, no salt).
//
// Salts come from the OS CSPRNG, one per image, unless --salts S.npy gives
// them (and, for an FC salt, --salt-vectors V.npy the exact salt vectors),
// so a run can be reproduced. Prints accuracies, the confusion matrix of the
// de-salted labels (rows: true class) and throughput; --json for scripts.
#include <unistd.h>
#include <zlib.h>

#include <chrono>

#include "common.hpp"
#include "salted/io/idx.hpp"

namespace salted_cli {

namespace {

// The file bytes, inflated when the name ends in .gz (gzread also passes a
// plain file through, but the name says what we expect).
Result<std::vector<uint8_t>> read_maybe_gz(const std::string& path) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) return make_error(Errc::io_error, "%s: cannot open for reading", path.c_str());
    std::vector<uint8_t> out;
    uint8_t buf[1 << 16];
    for (;;) {
        const int n = gzread(f, buf, sizeof(buf));
        if (n < 0) {
            int code = 0;
            std::string why = gzerror(f, &code);
            gzclose(f);
            return make_error(Errc::parse_error, "%s: cannot inflate (%s)", path.c_str(), why.c_str());
        }
        if (n == 0) break;
        out.insert(out.end(), buf, buf + n);
        if (out.size() > (std::size_t(1) << 32)) {
            gzclose(f);
            return make_error(Errc::unsupported, "%s: expected at most 4 GiB, found more", path.c_str());
        }
    }
    gzclose(f);
    return out;
}

// DIR/NAME, or DIR/NAME.gz when only that exists.
Result<io::IdxArray> read_idx_in(const std::string& dir, const std::string& name) {
    std::string path = dir + "/" + name;
    if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
        std::fclose(f);
    } else {
        path += ".gz";
    }
    SALTED_ASSIGN(auto bytes, read_maybe_gz(path));
    return io::parse_idx(bytes.data(), bytes.size(), path);
}

}  // namespace

Failure cmd_eval(const Args& a) {
    if (Failure f = check_model_command_options(a, {"--data", "--limit", "--batch", "--salts", "--salt-vectors",
                                                    "--json"});
        f.status)
        return f;
    if (Failure f = require(a, "--data"); f.status) return f;
    long long limit = 0, bsize = 100;
    if (a.has("--limit") && !parse_int(a.get("--limit"), 1, 1ll << 31, limit))
        return usage("--limit: expected a positive integer, found '" + a.get("--limit") + "'");
    if (a.has("--batch") && !parse_int(a.get("--batch"), 1, 65536, bsize))
        return usage("--batch: expected an integer in 1..65536, found '" + a.get("--batch") + "'");
    if (a.has("--salt-vectors") && !a.has("--salts")) return usage("--salt-vectors needs --salts");
    auto m = load_model(a);
    if (!m.ok()) return fail(m.error());
    if (Failure f = check_single_data_input(*m, a.model); f.status) return f;
    int data_input = -1;
    for (int v : m->topology().inputs)
        if (!m->value(v).is_salt) data_input = v;
    const Shape in_shape = m->value(data_input).shape;
    const Shape out_shape = m->value(m->topology().outputs[0]).shape;
    if (out_shape.rank() != 2) return fail(a.model + ": expected logits [N, C] as output, found " + out_shape.str());
    const int64_t classes = out_shape[1];
    if (m->salted() && m->salt().classes != classes)
        return fail(a.model + ": the salt has " + std::to_string(m->salt().classes) + " classes, the logits " +
                    std::to_string(classes));
    if (!m->salted() && a.has("--salts")) return usage("--salts: the model is not salted");
    if (a.has("--salt-vectors") && m->salt().kind != io::SaltKind::fc)
        return usage("--salt-vectors: the model has no FC salt");

    const std::string dir = a.get("--data");
    auto images = read_idx_in(dir, "t10k-images-idx3-ubyte");
    if (!images.ok()) return fail(images.error());
    auto labels = read_idx_in(dir, "t10k-labels-idx1-ubyte");
    if (!labels.ok()) return fail(labels.error());
    if (Status st = io::check_idx_pair(*images, *labels, classes); !st.ok()) return fail(dir + ": " + st.message());
    if (in_shape.rank() != 4 || in_shape[1] != 1 || in_shape[2] != images->dims[1] || in_shape[3] != images->dims[2])
        return fail(dir + ": images are 1x" + std::to_string(images->dims[1]) + "x" + std::to_string(images->dims[2]) +
                    ", the model takes " + in_shape.str());
    int64_t n = images->count();
    if (limit > 0 && limit < n) n = limit;
    const int64_t pixels = images->dims[1] * images->dims[2];

    std::vector<int64_t> given_salts;
    Tensor given_vectors;
    if (a.has("--salts")) {
        auto arr = io::read_npy(a.get("--salts"));
        if (!arr.ok()) return fail(arr.error());
        auto count = arr->shape.numel();
        auto all = read_salts(a.get("--salts"), count, classes);
        if (!all.ok()) return fail(all.error());
        if (count < n)
            return fail(a.get("--salts") + ": expected at least " + std::to_string(n) + " salts (one per image), found " +
                        std::to_string(count));
        given_salts = std::move(all).value();
    }
    if (a.has("--salt-vectors")) {
        auto v = read_tensor(a.get("--salt-vectors"));
        if (!v.ok()) return fail(v.error());
        if (v->shape().rank() != 2 || v->shape()[1] != classes || v->shape()[0] < n)
            return fail(a.get("--salt-vectors") + ": expected salt vectors [>= " + std::to_string(n) + ", " +
                        std::to_string(classes) + "], found " + v->shape().str());
        given_vectors = std::move(v).value();
    }

    auto session = graph::Session::whole(*m);
    if (!session.ok()) return fail(session.error());
    std::vector<int64_t> confusion(static_cast<std::size_t>(classes * classes), 0);
    int64_t correct = 0, server_correct = 0;
    // A bar only on a terminal (stderr), so logs and --json on stdout stay clean.
    const bool progress = isatty(2) != 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t start = 0; start < n; start += bsize) {
        const int64_t rows = std::min<int64_t>(bsize, n - start);
        auto x = Tensor::empty(Shape{rows, 1, in_shape[2], in_shape[3]});
        if (!x.ok()) return fail(x.error());
        for (int64_t i = 0; i < rows * pixels; ++i)
            (*x)[i] = static_cast<float>(images->data[static_cast<std::size_t>(start * pixels + i)]) / 255.0f;
        SaltInputs s;
        if (m->salted()) {
            if (!given_salts.empty()) {
                s.salts.assign(given_salts.begin() + start, given_salts.begin() + start + rows);
            } else {
                auto d = split::draw_salts(*m, rows);
                if (!d.ok()) return fail(d.error());
                s.salts = std::move(d).value();
            }
            if (given_vectors.numel() > 0) {
                auto t = Tensor::empty(Shape{rows, classes});
                if (!t.ok()) return fail(t.error());
                for (int64_t i = 0; i < rows * classes; ++i) (*t)[i] = given_vectors[start * classes + i];
                s.tensor = std::move(t).value();
            } else {
                auto t = split::salt_tensor(*m, s.salts);
                if (!t.ok()) return fail(t.error());
                s.tensor = std::move(t).value();
            }
        }
        auto y = session->run(graph_inputs(*m, *x, s));
        if (!y.ok()) return fail(y.error());
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t truth = labels->data[static_cast<std::size_t>(start + r)];
            const int64_t seen = salt::argmax(y->data + r * classes, classes);
            int64_t label = seen;
            if (m->salted()) {
                auto l = salt::desalted_label(seen, s.salts[static_cast<std::size_t>(r)], classes);
                if (!l.ok()) return fail(l.error());
                label = *l;
            }
            correct += label == truth;
            server_correct += seen == truth;
            ++confusion[static_cast<std::size_t>(truth * classes + label)];
        }
        if (progress) {
            const int64_t done = start + rows, width = 40, fill = done * width / n;
            std::fprintf(stderr, "\reval [%s%s] %lld/%lld", std::string(static_cast<std::size_t>(fill), '#').c_str(),
                         std::string(static_cast<std::size_t>(width - fill), '.').c_str(), static_cast<long long>(done),
                         static_cast<long long>(n));
        }
    }
    if (progress) std::fprintf(stderr, "\n");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double acc = double(correct) / double(n), server_acc = double(server_correct) / double(n);
    const double ips = seconds > 0 ? double(n) / seconds : 0.0;
    const char* salt_kind = io::salt_kind_name(m->salt().kind);
    if (a.flag("--json")) {
        std::printf("{\"model\": %s, \"salt\": \"%s\", \"images\": %lld, \"accuracy\": %.6f, \"server_view_accuracy\": "
                    "%.6f, \"images_per_second\": %.1f, \"salts\": \"%s\", \"confusion\": [",
                    json_string(a.model).c_str(), salt_kind, static_cast<long long>(n), acc, server_acc, ips,
                    m->salted() ? (a.has("--salts") ? "given" : "csprng") : "none");
        for (int64_t t = 0; t < classes; ++t) {
            std::printf("%s[", t ? ", " : "");
            for (int64_t p = 0; p < classes; ++p)
                std::printf("%s%lld", p ? ", " : "", static_cast<long long>(confusion[static_cast<std::size_t>(t * classes + p)]));
            std::printf("]");
        }
        std::printf("]}\n");
        return Failure();
    }
    std::printf("model: %s (salt: %s)\nimages: %lld from %s\n", a.model.c_str(), salt_kind, static_cast<long long>(n),
                dir.c_str());
    std::printf("accuracy (de-salted, what the client gets): %.2f%% (%lld/%lld)\n", 100 * acc,
                static_cast<long long>(correct), static_cast<long long>(n));
    std::printf("server-view accuracy (arg-max without the salt): %.2f%% (%lld/%lld)\n", 100 * server_acc,
                static_cast<long long>(server_correct), static_cast<long long>(n));
    std::printf("throughput: %.0f images/s (%.2f s, batch %lld)\n", ips, seconds, bsize);
    std::printf("confusion (rows: true class, columns: de-salted label):\n      ");
    for (int64_t p = 0; p < classes; ++p) std::printf(" %5lld", static_cast<long long>(p));
    std::printf("\n");
    for (int64_t t = 0; t < classes; ++t) {
        std::printf("  %3lld ", static_cast<long long>(t));
        for (int64_t p = 0; p < classes; ++p)
            std::printf(" %5lld", static_cast<long long>(confusion[static_cast<std::size_t>(t * classes + p)]));
        std::printf("\n");
    }
    return Failure();
}

}  // namespace salted_cli
