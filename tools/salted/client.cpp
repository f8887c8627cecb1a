// `salted client`: the device side of split inference against `salted serve`.
//
// Draws one salt per input from the OS CSPRNG (or takes --salt), runs the
// head up to the cut, POSTs the frame to SERVER/v1/tail, de-salts the
// logits that come back and prints one line per input:
//
//   PATH: label L                      (the de-salted answer)
//   PATH: label L, server view V       (with --server-view: the arg-max of
//                                       the salted logits, all the server
//                                       could conclude without the salt)
//
// Inputs: PNG images (one batch item each, checked against the model's
// input shape, pixels / 255) or .npy float32 batches; several --input are
// stacked into one batch and one request.
#include <httplib.h>

#include <algorithm>

#include "common.hpp"
#include "salted/io/image.hpp"

namespace salted_cli {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The batch: every input's rows in order, and which input each row came from.
struct Batch {
    Tensor x;
    std::vector<std::string> row_source;
};

Result<Batch> read_batch(const std::vector<std::string>& paths, const Shape& input) {
    Batch b;
    std::vector<float> flat;  // every row, in order
    for (const std::string& p : paths) {
        Tensor t;
        if (ends_with(p, ".npy")) {
            SALTED_ASSIGN(t, read_tensor(p));
            Shape want = input;
            want[0] = t.shape()[0];
            if (t.shape() != want)
                return make_error(Errc::shape_mismatch, "%s: expected a batch of shape %s, found %s", p.c_str(),
                                  want.str().c_str(), t.shape().str().c_str());
        } else {
            SALTED_ASSIGN(io::Image img, io::read_image(p));
            SALTED_ASSIGN(t, io::image_to_input(img, input, p));
        }
        for (int64_t r = 0; r < t.shape()[0]; ++r) b.row_source.push_back(p);
        flat.insert(flat.end(), t.data(), t.data() + t.numel());
    }
    Shape all = input;
    all[0] = static_cast<int64_t>(b.row_source.size());
    SALTED_ASSIGN(b.x, Tensor::empty(all));
    if (static_cast<std::size_t>(b.x.numel()) != flat.size())
        return make_error(Errc::shape_mismatch, "client: inputs: expected %lld values, found %zu",
                          static_cast<long long>(b.x.numel()), flat.size());
    std::copy(flat.begin(), flat.end(), b.x.data());
    return b;
}

}  // namespace

Failure cmd_client(const Args& a) {
    if (Failure f = check_model_command_options(a, {"--cut", "--server", "--input", "--salt", "--server-view",
                                                    "--save-salt"});
        f.status)
        return f;
    for (const char* o : {"--cut", "--server", "--input"})
        if (Failure f = require(a, o); f.status) return f;
    const std::string url = a.get("--server");
    if (url.rfind("http://", 0) != 0)
        return usage("--server: expected http://HOST:PORT, found '" + url + "'");
    auto m = load_model(a);
    if (!m.ok()) return fail(m.error());
    if (Failure f = check_single_data_input(*m, a.model); f.status) return f;
    auto cut = cut_of(a, *m);
    if (!cut.ok()) return fail(cut.error());
    if ((*cut)->tail_needs_salt)
        return fail("cut '" + (*cut)->name + "': the salt enters after this cut, so the server would need it; "
                    "pick a later cut (`salted info` lists them)");
    // The client runs the head only: free the tail's kernels.
    if (Status st = m->keep_only(0, (*cut)->position); !st.ok()) return fail(st.error());
    auto head = split::Head::create(*m, **cut);
    if (!head.ok()) return fail(head.error());
    int data_input = -1;
    for (int v : m->topology().inputs)
        if (!m->value(v).is_salt) data_input = v;
    auto batch = read_batch(a.inputs, m->value(data_input).shape);
    if (!batch.ok()) return fail(batch.error());
    const int64_t rows = batch->x.shape()[0];

    // Salts: drawn here, never sent; the server gets only the cut tensor.
    SaltInputs s;
    if (m->salted()) {
        auto salts = a.has("--salt") ? read_salts(a.get("--salt"), rows, m->salt().classes)
                                     : split::draw_salts(*m, rows);
        if (!salts.ok()) return fail(salts.error());
        s.salts = std::move(salts).value();
        auto t = split::salt_tensor(*m, s.salts);
        if (!t.ok()) return fail(t.error());
        s.tensor = std::move(t).value();
    } else if (a.has("--salt")) {
        return usage("--salt: the model is not salted");
    }
    auto z = head->run(graph_inputs(*m, batch->x, s));
    if (!z.ok()) return fail(z.error());
    auto frame = io::encode_frame(*z, head->frame_info());
    if (!frame.ok()) return fail(frame.error());

    httplib::Client http(url);
    http.set_connection_timeout(5);
    http.set_read_timeout(60);
    auto res = http.Post("/v1/tail", reinterpret_cast<const char*>(frame->data()), frame->size(),
                         "application/octet-stream");
    if (!res) return fail(url + "/v1/tail: no answer (" + httplib::to_string(res.error()) + ")");
    if (res->status != 200) {
        std::string body = res->body;
        while (!body.empty() && body.back() == '\n') body.pop_back();
        return fail(url + "/v1/tail: HTTP " + std::to_string(res->status) + ": " + body);
    }
    io::FrameExpectation expect;
    expect.model_id = head->frame_info().model_id;
    auto answer = io::decode_frame(reinterpret_cast<const uint8_t*>(res->body.data()), res->body.size(), expect);
    if (!answer.ok()) return fail(url + ": answer: " + answer.message());
    const Tensor& y = answer->tensor;
    if (y.shape().rank() != 2 || y.shape()[0] != rows)
        return fail(url + ": answer: expected logits of shape [" + std::to_string(rows) + ", C], found " +
                    y.shape().str());
    const int64_t classes = y.shape()[1];
    std::vector<int64_t> labels(static_cast<std::size_t>(rows));
    if (m->salted()) {
        if (classes != m->salt().classes)
            return fail(url + ": answer: expected " + std::to_string(m->salt().classes) + " classes, found " +
                        std::to_string(classes));
        Status st = salt::desalted_labels(y.view(), s.salts.data(), labels.data());
        if (!st.ok()) return fail(st.error());
    } else {
        for (int64_t r = 0; r < rows; ++r) labels[static_cast<std::size_t>(r)] = salt::argmax(y.data() + r * classes, classes);
    }
    if (Failure f = save_salts_if_asked(a, s); f.status) return f;
    for (int64_t r = 0; r < rows; ++r) {
        std::printf("%s: label %lld", batch->row_source[static_cast<std::size_t>(r)].c_str(),
                    static_cast<long long>(labels[static_cast<std::size_t>(r)]));
        if (a.flag("--server-view"))
            std::printf(", server view %lld", static_cast<long long>(salt::argmax(y.data() + r * classes, classes)));
        std::printf("\n");
    }
    return Failure();
}

}  // namespace salted_cli
