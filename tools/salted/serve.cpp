// `salted serve`: the tail of a split model behind HTTP (cpp-httplib).
//
//   POST /v1/tail  body: a frame of the cut tensor (docs/FORMAT.md)
//                  200: a frame of the logits (f32; cut id = number of cuts,
//                       name "output:<value>", the model id)
//                  4xx: one line of plain text saying what was wrong
//   GET  /healthz  200 "ok model=<id> cut=<id>:<name>"
//
// The server never holds a salt: cuts before the salt enters (where the tail
// would need it) are refused at start-up. One line per request goes to
// stderr. SIGINT / SIGTERM stop it cleanly; SIGPIPE is ignored so a client
// hanging up mid-answer cannot kill it.
#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "common.hpp"

namespace salted_cli {

namespace {

// "HOST:PORT" -> host, port (0: any free port, printed at start-up).
bool parse_listen(const std::string& spec, std::string& host, int& port) {
    const std::size_t colon = spec.rfind(':');
    long long p = 0;
    if (colon == std::string::npos || colon == 0 || !parse_int(spec.substr(colon + 1), 0, 65535, p)) return false;
    host = spec.substr(0, colon);
    port = static_cast<int>(p);
    return true;
}

// The frame header of the answer: the graph output, after the last cut.
io::FrameInfo output_frame_info(const graph::Model& m) {
    io::FrameInfo info;
    std::memcpy(info.model_id.data(), m.model_id().data(), info.model_id.size());
    info.cut_id = static_cast<uint32_t>(m.cuts().size());
    std::string name = "output:" + m.value(m.topology().outputs[0]).name;
    bool printable = name.size() <= io::frame_max_name_bytes;
    for (char ch : name) printable = printable && ch >= 0x20 && ch <= 0x7E;
    if (printable) info.cut_name = name;
    return info;
}

// Errors the client caused: 400 for bytes that are not a valid frame,
// 409 for a valid frame meant for another model or cut, 422 for a frame
// whose tensor does not fit the tail.
int status_of(const Error& e, bool decoding) {
    if (!decoding) return 422;
    const std::string& msg = e.message;
    if (msg.find("model_id") != std::string::npos || msg.find("cut_id") != std::string::npos ||
        msg.find("cut_name") != std::string::npos)
        return 409;
    return 400;
}

}  // namespace

Failure cmd_serve(const Args& a) {
    if (Failure f = check_model_command_options(a, {"--cut", "--listen", "--max-body"}); f.status) return f;
    for (const char* o : {"--cut", "--listen"})
        if (Failure f = require(a, o); f.status) return f;
    std::string host;
    int port = 0;
    if (!parse_listen(a.get("--listen"), host, port))
        return usage("--listen: expected HOST:PORT (port 0..65535), found '" + a.get("--listen") + "'");
    long long max_body = 64ll << 20;
    if (a.has("--max-body") && !parse_int(a.get("--max-body"), 64, 1ll << 32, max_body))
        return usage("--max-body: expected a byte count in 64..2^32, found '" + a.get("--max-body") + "'");
    auto m = load_model(a);
    if (!m.ok()) return fail(m.error());
    auto cut = cut_of(a, *m);
    if (!cut.ok()) return fail(cut.error());
    if ((*cut)->tail_needs_salt)
        return fail("cut '" + (*cut)->name + "': the salt enters after this cut, so the server would need it; "
                    "a server never sees the salt: pick a later cut (`salted info` lists them)");
    // The server runs the tail only: free the head's kernels.
    if (Status st = m->keep_only((*cut)->position, m->node_count()); !st.ok()) return fail(st.error());
    auto tail = split::Tail::create(*m, **cut);
    if (!tail.ok()) return fail(tail.error());
    const io::FrameExpectation expect = tail->frame_expectation();
    const io::FrameInfo answer_info = output_frame_info(*m);
    const std::string model_id = m->file().model_id();
    const std::string cut_label = std::to_string((*cut)->id) + ":" + (*cut)->name;

    httplib::Server svr;
    svr.set_payload_max_length(static_cast<std::size_t>(max_body));
    std::mutex tail_mutex;  // a Tail (its Session) runs one request at a time

    svr.Get("/healthz", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content("ok model=" + model_id + " cut=" + cut_label + "\n", "text/plain");
    });
    svr.Post("/v1/tail", [&](const httplib::Request& req, httplib::Response& res) {
        auto reject = [&](int status, const std::string& msg) {
            res.status = status;
            res.set_content(msg + "\n", "text/plain");
        };
        auto frame = io::decode_frame(reinterpret_cast<const uint8_t*>(req.body.data()), req.body.size(), expect);
        if (!frame.ok()) return reject(status_of(frame.error(), true), frame.message());
        std::lock_guard<std::mutex> lock(tail_mutex);
        auto y = tail->run(frame->tensor.view());
        if (!y.ok()) return reject(status_of(y.error(), false), "tail: " + y.message());
        auto bytes = io::encode_frame(*y, answer_info);
        if (!bytes.ok()) return reject(500, "answer: " + bytes.message());
        res.set_content(std::string(bytes->begin(), bytes->end()), "application/octet-stream");
    });
    // Unknown paths, wrong methods, bodies over the limit: httplib sets the
    // status; say it in words too.
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        std::string why = res.status == 404   ? "no such endpoint (POST /v1/tail, GET /healthz)"
                          : res.status == 413 ? "body too large (see --max-body)"
                                              : "request refused";
        res.set_content(std::to_string(res.status) + " " + req.method + " " + req.path + ": " + why + "\n",
                        "text/plain");
    });
    svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        std::string note;
        if (res.status >= 400) {
            note = " " + res.body;
            while (!note.empty() && note.back() == '\n') note.pop_back();
        }
        std::fprintf(stderr, "serve: %s %s %s -> %d, %zu bytes in, %zu bytes out%s\n", req.remote_addr.c_str(),
                     req.method.c_str(), req.path.c_str(), res.status, req.body.size(), res.body.size(), note.c_str());
    });

    // Signals: blocked in every thread (httplib's workers inherit the mask)
    // and taken synchronously by one waiter, which may then call stop().
    std::signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    if (port == 0) {
        port = svr.bind_to_any_port(host.c_str());
        if (port < 0) return fail("--listen: cannot bind " + host + " to a free port");
    } else if (!svr.bind_to_port(host.c_str(), port)) {
        return fail("--listen: cannot bind " + a.get("--listen") + " (in use, or not a local address)");
    }
    std::fprintf(stderr, "serve: model %s cut %s listening on http://%s:%d\n", model_id.c_str(), cut_label.c_str(),
                 host.c_str(), port);
    std::printf("listening on http://%s:%d\n", host.c_str(), port);
    std::fflush(stdout);

    std::atomic<bool> signalled{false};
    std::thread waiter([&] {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        signalled = true;
        std::fprintf(stderr, "serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        svr.stop();
    });
    const bool clean = svr.listen_after_bind();
    // If listening ended on its own, wake the waiter so it can be joined.
    if (!signalled) kill(getpid(), SIGTERM);
    waiter.join();
    return clean ? Failure() : fail("serve: the listening socket failed");
}

}  // namespace salted_cli
