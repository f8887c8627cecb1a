// salted: one program for every side of split inference (docs/SPLIT.md).
//
//   salted info   MODEL [--json]
//   salted run    MODEL --input X.npy [--salt S | --salt-vector V.npy] --output Y.npy [--desalt]
//   salted head   MODEL --cut CUT --input X.npy [--salt S | --salt-vector V.npy] --output Z.frame
//   salted tail   MODEL --cut CUT --input Z.frame --output Y.npy
//   salted desalt --salt S --input Y.npy [--top K] [--output D.npy]
//   salted serve  MODEL --cut CUT --listen HOST:PORT        (serve.cpp: the tail over HTTP)
//   salted client MODEL --cut CUT --server URL --input ...  (client.cpp: head, post, de-salt)
//   salted eval   MODEL --data DIR                          (eval.cpp: accuracy on IDX files)
//   salted bench  MODEL [--batch B] [--iters N] [--layers]  (bench.cpp: timing, per-node profile)
//
// Errors are one line on stderr ("salted: error: ...") with exit status 1
// (2 for a usage error); nothing here throws.
#include <unistd.h>

#include "common.hpp"

namespace salted_cli {

const char* usage_text =
    "usage:\n"
    "  salted info   MODEL [--json]\n"
    "  salted run    MODEL --input X.npy [--salt S] [--salt-vector V.npy] --output Y.npy [--desalt]\n"
    "  salted head   MODEL --cut CUT --input X.npy [--salt S] [--salt-vector V.npy] --output Z.frame\n"
    "                [--frame-dtype f32|f16] [--unsafe-cut]\n"
    "  salted tail   MODEL --cut CUT --input Z.frame --output Y.npy [--unsafe-cut [--salt S] [--salt-vector V.npy]]\n"
    "  salted desalt --salt S --input Y.npy [--top K] [--output D.npy]\n"
    "  salted serve  MODEL --cut CUT --listen HOST:PORT [--max-body BYTES]\n"
    "  salted client MODEL --cut CUT --server URL --input IMAGE.png|X.npy [--input ...] [--salt S] [--server-view]\n"
    "  salted eval   MODEL --data DIR [--limit N] [--batch B] [--salts S.npy [--salt-vectors V.npy]] [--json]\n"
    "  salted bench  MODEL [--batch B] [--iters N] [--warmup W] [--micro-batch M] [--fixed-threads] [--layers]\n"
    "                [--json]\n"
    "common options: --no-verify (skip the hash and test-vector check at load), --batch-invariant (bit-identical\n"
    "  results whatever the batch size; slower on WideResNet at batch 1), --threads N,\n"
    "  --save-salt S.npy (write the salts used, for desalt)\n"
    "S is one integer for the whole batch or a .npy of per-row integers; when a salted model gets no\n"
    "salt, salts are drawn from the OS CSPRNG and printed. `run` and `tail` write the salted logits\n"
    "(what the server sees); `run --desalt` or `desalt` gives the de-salted ones.\n";

// ---------------------------------------------------------------- commands

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string item_shape(const Shape& s) {  // "[N, 3, 32, 32]"
    std::string out = "[N";
    for (int i = 1; i < s.rank(); ++i) out += ", " + std::to_string(s[i]);
    return out + "]";
}

const char* cut_salt_status(const graph::Model& m, const graph::CutPoint& c) {
    if (!m.salted()) return "safe";
    if (c.salt_mixed) return "safe (salt mixed in)";
    return c.tail_needs_salt ? "UNSAFE (before the salt enters)" : "UNSAFE (salt channels not mixed yet)";
}

Failure cmd_info(const Args& a) {
    if (Failure f = check_model_command_options(a, {"--json"}); f.status) return f;
    auto m = load_model(a);
    if (!m.ok()) return fail(m.error());
    const io::ModelFile& f = m->file();
    const io::SaltSpec& salt = m->salt();
    if (a.flag("--json")) {
        std::printf("{\"model\": %s, \"model_id\": \"%s\", \"parameters\": %" PRId64 ", \"mflops_per_item\": %.6f,"
                    " \"kernel_bytes\": %" PRId64 ",\n",
                    json_string(a.model).c_str(), f.model_id().c_str(), m->parameter_count(),
                    static_cast<double>(m->flops_per_item()) / 1e6, m->kernel_bytes());
        std::printf(" \"salt\": {\"kind\": \"%s\", \"classes\": %" PRId64 ", \"node\": %s},\n",
                    io::salt_kind_name(salt.kind), salt.classes, json_string(salt.node).c_str());
        if (const graph::SaltFold* fold = m->salt_fold()) {
            std::string convs;
            for (int c : fold->convs) convs += (convs.empty() ? "" : ", ") + json_string(m->node(c).name);
            std::printf(" \"salt_fold\": {\"concat\": %s, \"through\": %s, \"convs\": [%s]},\n",
                        json_string(m->node(fold->concat).name).c_str(),
                        fold->through >= 0 ? json_string(m->node(fold->through).name).c_str() : "null", convs.c_str());
        } else
            std::printf(" \"salt_fold\": null,\n");
        std::printf(" \"nodes\": [");
        for (int i = 0; i < m->node_count(); ++i) {
            const graph::NodeInfo& n = m->node(i);
            std::printf("%s\n  {\"index\": %d, \"name\": %s, \"op\": \"%s\", \"params\": %" PRId64 ", \"mflops\": %.6f}",
                        i ? "," : "", i, json_string(n.name).c_str(), n.op.c_str(), n.params,
                        static_cast<double>(n.flops) / 1e6);
        }
        std::printf("],\n \"cuts\": [");
        for (const graph::CutPoint& c : m->cuts()) {
            std::printf("%s\n  {\"id\": %d, \"name\": %s, \"position\": %d, \"shape\": [", c.id ? "," : "", c.id,
                        json_string(c.name).c_str(), c.position);
            for (int i = 1; i < c.shape.rank(); ++i) std::printf("%s%" PRId64, i > 1 ? ", " : "", c.shape[i]);
            std::printf("], \"bytes\": %" PRId64 ", \"head_mflops\": %.6f, \"tail_mflops\": %.6f, "
                        "\"head_kernel_bytes\": %" PRId64 ", \"tail_kernel_bytes\": %" PRId64 ", \"salt_mixed\": %s, "
                        "\"safe\": %s, \"tail_needs_salt\": %s}",
                        c.bytes, c.head_mflops, c.tail_mflops, m->kernel_bytes(0, c.position),
                        m->kernel_bytes(c.position, m->node_count()), c.salt_mixed ? "true" : "false",
                        c.safe() ? "true" : "false", c.tail_needs_salt ? "true" : "false");
        }
        std::printf("]}\n");
        return Failure();
    }
    std::printf("model: %s\n", a.model.c_str());
    for (const auto& kv : f.metadata()) std::printf("  %s: %s\n", kv.first.c_str(), kv.second.c_str());
    std::printf("  model id (weights sha256): %s\n", f.model_id().c_str());
    for (int v : m->topology().inputs)
        std::printf("  input  %s %s (%s)\n", m->value(v).name.c_str(), item_shape(m->value(v).shape).c_str(),
                    io::input_kind_name(f.inputs()[static_cast<std::size_t>(m->value(v).graph_input)].kind));
    for (int v : m->topology().outputs)
        std::printf("  output %s %s\n", m->value(v).name.c_str(), item_shape(m->value(v).shape).c_str());
    if (salt.kind == io::SaltKind::none) {
        std::printf("  salt: none (standard model)\n");
    } else {
        std::printf("  salt: %s, %" PRId64 " classes, layer %s, enters at node '%s' from input '%s'",
                    io::salt_kind_name(salt.kind), salt.classes,
                    salt.layer ? std::to_string(*salt.layer).c_str() : "unknown", salt.node.c_str(),
                    salt.input.c_str());
        if (salt.kind == io::SaltKind::cnn)
            std::printf(", %" PRId64 " maps of %" PRId64 "x%" PRId64, salt.maps, salt.size[0], salt.size[1]);
        std::printf("\n");
        if (const graph::SaltFold* fold = m->salt_fold()) {
            std::string convs;
            for (int c : fold->convs) convs += (convs.empty() ? "'" : ", '") + m->node(c).name + "'";
            std::printf("  salt folding: '%s' runs inside %s (a per-salt table each", m->node(fold->concat).name.c_str(),
                        convs.c_str());
            if (fold->through >= 0)
                std::printf("; '%s' runs on the activation channels only", m->node(fold->through).name.c_str());
            std::printf("; docs/SPLIT.md)\n");
        }
    }
    std::printf("  parameters: %" PRId64 ", %.3f MFLOPs per item\n", m->parameter_count(),
                static_cast<double>(m->flops_per_item()) / 1e6);
    std::printf("  prepared kernels: %.3f MB (packed and Winograd-transformed weights, salt tables)\n",
                static_cast<double>(m->kernel_bytes()) / 1e6);
    if (f.has_test_vector())
        std::printf("  test vector: batch %" PRId64 " from %s (%s)\n", f.test_vector().batch,
                    f.test_vector().producer.c_str(), a.flag("--no-verify") ? "not checked" : "verified at load");
    else
        std::printf("  test vector: none\n");
    std::printf("\nlayers:\n  %3s  %-28s %-17s %-20s %10s %10s\n", "#", "name", "op", "output", "params", "MFLOPs");
    for (int i = 0; i < m->node_count(); ++i) {
        const graph::NodeInfo& n = m->node(i);
        std::printf("  %3d  %-28s %-17s %-20s %10" PRId64 " %10.3f\n", i, n.name.c_str(), n.op.c_str(),
                    item_shape(m->value(n.output).shape).c_str(), n.params, static_cast<double>(n.flops) / 1e6);
    }
    std::printf("\ncuts (per batch item; --cut takes the id or the name; kernel MB: what `salted head` / `salted "
                "tail` keep prepared, Model::keep_only):\n  %3s  %-30s %-20s %9s %10s %10s %9s %9s  %s\n",
                "id", "name", "tensor", "bytes", "head MFLOP", "tail MFLOP", "head kMB", "tail kMB", "salt");
    for (const graph::CutPoint& c : m->cuts())
        std::printf("  %3d  %-30s %-20s %9" PRId64 " %10.3f %10.3f %9.3f %9.3f  %s\n", c.id, c.name.c_str(),
                    item_shape(c.shape).c_str(), c.bytes, c.head_mflops, c.tail_mflops,
                    static_cast<double>(m->kernel_bytes(0, c.position)) / 1e6,
                    static_cast<double>(m->kernel_bytes(c.position, m->node_count())) / 1e6, cut_salt_status(*m, c));
    return Failure();
}

Failure cmd_run(const Args& a) {
    if (Failure f = check_model_command_options(a, {"--input", "--output", "--salt", "--salt-vector", "--desalt",
                                                    "--save-salt"});
        f.status)
        return f;
    if (Failure f = require(a, "--input"); f.status) return f;
    if (Failure f = require(a, "--output"); f.status) return f;
    auto m = load_model(a);
    if (!m.ok()) return fail(m.error());
    if (Failure f = check_single_data_input(*m, a.model); f.status) return f;
    auto x = read_tensor(a.get("--input"));
    if (!x.ok()) return fail(x.error());
    auto s = salt_inputs(a, *m, x->shape()[0]);
    if (!s.ok()) return fail(s.error());
    if (a.flag("--desalt") && (!m->salted() || s->salts.empty()))
        return usage(m->salted() ? "--desalt needs the salts: pass --salt with --salt-vector"
                                 : "--desalt: the model is not salted");
    auto session = graph::Session::whole(*m);
    if (!session.ok()) return fail(session.error());
    auto y = session->run(graph_inputs(*m, *x, *s));
    if (!y.ok()) return fail(a.get("--input") + ": " + y.message());
    Tensor out;
    ConstTensorView result = *y;
    if (a.flag("--desalt")) {
        auto d = Tensor::empty(y->shape);
        if (!d.ok()) return fail(d.error());
        out = std::move(d).value();
        Status st = salt::desalt_logits(*y, s->salts.data(), out.view());
        if (!st.ok()) return fail(st.error());
        result = out.view();
    }
    if (Failure f = save_salts_if_asked(a, *s); f.status) return f;
    Status st = io::write_npy(a.get("--output"), result);
    return st.ok() ? Failure() : fail(st.error());
}

Failure cmd_head(const Args& a) {
    if (Failure f = check_model_command_options(a, {"--input", "--output", "--salt", "--salt-vector", "--cut",
                                                    "--unsafe-cut", "--frame-dtype", "--save-salt"});
        f.status)
        return f;
    for (const char* o : {"--cut", "--input", "--output"})
        if (Failure f = require(a, o); f.status) return f;
    io::FrameDtype dtype = io::FrameDtype::f32;
    if (a.has("--frame-dtype")) {
        if (a.get("--frame-dtype") == "f16") dtype = io::FrameDtype::f16;
        else if (a.get("--frame-dtype") != "f32")
            return usage("--frame-dtype: expected f32 or f16, found '" + a.get("--frame-dtype") + "'");
    }
    auto m = load_model(a);
    if (!m.ok()) return fail(m.error());
    if (Failure f = check_single_data_input(*m, a.model); f.status) return f;
    auto cut = cut_of(a, *m);
    if (!cut.ok()) return fail(cut.error());
    // This process runs the head only: free the tail's kernels.
    if (Status st = m->keep_only(0, (*cut)->position); !st.ok()) return fail(st.error());
    auto head = split::Head::create(*m, **cut, a.flag("--unsafe-cut"));
    if (!head.ok()) return fail(head.error());
    auto x = read_tensor(a.get("--input"));
    if (!x.ok()) return fail(x.error());
    auto s = salt_inputs(a, *m, x->shape()[0]);
    if (!s.ok()) return fail(s.error());
    auto z = head->run(graph_inputs(*m, *x, *s));
    if (!z.ok()) return fail(a.get("--input") + ": " + z.message());
    io::FrameInfo info = head->frame_info();
    info.dtype = dtype;
    auto bytes = io::encode_frame(*z, info);
    if (!bytes.ok()) return fail(bytes.error());
    if (Failure f = save_salts_if_asked(a, *s); f.status) return f;
    Status st = io::write_file_bytes(a.get("--output"), std::vector<unsigned char>(bytes->begin(), bytes->end()));
    return st.ok() ? Failure() : fail(st.error());
}

Failure cmd_tail(const Args& a) {
    if (Failure f = check_model_command_options(a, {"--input", "--output", "--cut", "--unsafe-cut", "--salt",
                                                    "--salt-vector"});
        f.status)
        return f;
    for (const char* o : {"--cut", "--input", "--output"})
        if (Failure f = require(a, o); f.status) return f;
    auto m = load_model(a);
    if (!m.ok()) return fail(m.error());
    auto cut = cut_of(a, *m);
    if (!cut.ok()) return fail(cut.error());
    if (Status st = m->keep_only((*cut)->position, m->node_count()); !st.ok()) return fail(st.error());
    auto tail = split::Tail::create(*m, **cut, a.flag("--unsafe-cut"));
    if (!tail.ok()) return fail(tail.error());
    if (!tail->needs_salt() && (a.has("--salt") || a.has("--salt-vector")))
        return usage("the tail never sees the salt at cut '" + (*cut)->name + "': drop --salt / --salt-vector");
    auto bytes = io::read_file_bytes(a.get("--input"));
    if (!bytes.ok()) return fail(bytes.error());
    auto frame = io::decode_frame(bytes->data(), bytes->size(), tail->frame_expectation());
    if (!frame.ok()) return fail(a.get("--input") + ": " + frame.message());
    Result<ConstTensorView> y = ConstTensorView();
    if (tail->needs_salt()) {
        if (!a.has("--salt") && !a.has("--salt-vector"))
            return usage("cut '" + (*cut)->name + "' comes before the salt enters: the tail needs --salt" +
                         (m->salt().kind == io::SaltKind::fc ? " or --salt-vector" : ""));
        auto s = salt_inputs(a, *m, frame->tensor.shape()[0]);
        if (!s.ok()) return fail(s.error());
        y = tail->run(frame->tensor.view(), s->tensor.view());
    } else {
        y = tail->run(frame->tensor.view());
    }
    if (!y.ok()) return fail(a.get("--input") + ": " + y.message());
    Status st = io::write_npy(a.get("--output"), *y);
    return st.ok() ? Failure() : fail(st.error());
}

Failure cmd_desalt(const Args& a) {
    if (Failure f = check_options(a, {"--input", "--salt", "--top", "--output"}); f.status) return f;
    if (!a.model.empty()) return usage("`salted desalt` takes no MODEL");
    if (Failure f = require(a, "--salt"); f.status) return f;
    if (Failure f = require(a, "--input"); f.status) return f;
    auto y = read_tensor(a.get("--input"));
    if (!y.ok()) return fail(y.error());
    if (y->shape().rank() != 2)
        return fail(a.get("--input") + ": expected logits of shape [N, C], found " + y->shape().str());
    const int64_t rows = y->shape()[0], classes = y->shape()[1];
    long long k = 1;
    if (a.has("--top") && !parse_int(a.get("--top"), 1, classes, k))
        return usage("--top: expected an integer in 1.." + std::to_string(classes) + ", found '" + a.get("--top") + "'");
    auto salts = read_salts(a.get("--salt"), rows, classes);
    if (!salts.ok()) return fail(salts.error());
    auto d = Tensor::empty(y->shape());
    if (!d.ok()) return fail(d.error());
    Status st = salt::desalt_logits(y->view(), salts->data(), d->view());
    if (!st.ok()) return fail(st.error());
    for (int64_t r = 0; r < rows; ++r) {
        auto top = salt::top_k(d->data() + r * classes, classes, k);
        if (!top.ok()) return fail(top.error());
        std::printf("%lld:", static_cast<long long>(r));
        for (int64_t c : *top) std::printf(" %lld", static_cast<long long>(c));
        std::printf("\n");
    }
    if (a.has("--output")) {
        st = io::write_npy(a.get("--output"), d->view());
        if (!st.ok()) return fail(st.error());
    }
    return Failure();
}

// Idle OpenMP workers should block, not spin (parallel.hpp explains why).
// libgomp reads OMP_WAIT_POLICY once, when the library loads, before main();
// so when the user has not chosen, set it and re-execute once.
void ensure_passive_wait_policy(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 0) != 0) return;
    execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

}  // namespace salted_cli

using namespace salted_cli;

int main(int argc, char** argv) {
    ensure_passive_wait_policy(argv);
    if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
                      std::strcmp(argv[1], "help") == 0)) {
        std::fputs(usage_text, stdout);
        return 0;
    }
    Args args;
    Failure f = parse_args(argc, argv, args);
    if (!f.status && args.has("--threads")) {
        long long t = 0;
        if (!parse_int(args.get("--threads"), 1, 1024, t))
            f = usage("--threads: expected an integer in 1..1024, found '" + args.get("--threads") + "'");
        else
            set_num_threads(static_cast<int>(t));
    }
    if (!f.status) {
        if (args.command == "info") f = cmd_info(args);
        else if (args.command == "run") f = cmd_run(args);
        else if (args.command == "head") f = cmd_head(args);
        else if (args.command == "tail") f = cmd_tail(args);
        else if (args.command == "desalt") f = cmd_desalt(args);
        else if (args.command == "serve") f = cmd_serve(args);
        else if (args.command == "client") f = cmd_client(args);
        else if (args.command == "eval") f = cmd_eval(args);
        else if (args.command == "bench") f = cmd_bench(args);
        else f = usage("unknown command '" + args.command + "'");
    }
    if (f.status) {
        std::string msg = f.message;
        for (char& c : msg)
            if (c == '\n') c = ' ';  // one line, whatever an error carried
        std::fflush(stdout);
        std::fprintf(stderr, "salted: error: %s\n", msg.c_str());
        return f.status;
    }
    return 0;
}
