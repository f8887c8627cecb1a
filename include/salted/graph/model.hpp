// Model: an immutable, validated network ready to run. Built from a model
// file (io::ModelFile): every node's op is instantiated through the op table
// (graph/op_table.hpp), shapes are inferred for a batch of one and checked
// against the declared outputs, and the cut points are enumerated. Loading
// can also recompute the hashes and replay the file's PyTorch test vector
// (graph/verify.hpp), so a file that loads is a file that computes what
// PyTorch computed.
//
// A Model holds no run state: Sessions (graph/session.hpp) own the buffers,
// so one Model can be shared by any number of threads.
//
// A device that runs only part of the model (a split head, a tail server)
// can free the other nodes' prepared kernels with keep_only(): Winograd and
// packed weights are several times the file's weights (WideResNet-16-4:
// 54 MB against 11 MB).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"
#include "salted/graph/cut_points.hpp"
#include "salted/graph/layer.hpp"
#include "salted/graph/op_table.hpp"
#include "salted/graph/salt_folding.hpp"
#include "salted/graph/topology.hpp"
#include "salted/io/model_file.hpp"
#include "salted/io/npy.hpp"

namespace salted {
namespace graph {

struct LoadOptions {
    // Recompute the weights and test-vector SHA-256 and require the data
    // section's padding to be zero (so that any changed byte is caught).
    bool verify_hash = true;
    // Run the embedded test vector and compare with the stored outputs
    // (tolerance 1e-4 * max(1, max|reference|)); a model without one loads.
    bool verify_test_vector = true;
    // Fold the CNN salt concat into the convs that read it (salt_folding.hpp).
    // Off, every node runs as written: for checking the folded path.
    bool fold_salt = true;
    // Make each item's output independent of the batch it runs in (and of
    // Session::set_micro_batch) bit for bit. Off (the default), a layer may
    // use a kernel that only pays at some batch sizes: F(2x2, 3x3) on 8x8
    // maps at batch 1 (kernels/winograd_2x2.hpp), F(4x4, 3x3) from batch 2
    // on. The two agree to float rounding (~1e-6 relative), not bit for
    // bit. On, those kernels are not prepared (WideResNet at batch 1 runs
    // ~15 % slower).
    bool batch_invariant = false;
};

// Convolutions that a Session may run fused with the salt concat before
// them (graph/salt_folding.hpp).
struct SaltFold {
    int concat = -1;             // node position of the cnn_salt_concat
    int through = -1;            // the batch_norm between the concat and the convs, or -1
    LayerPtr through_layer;      // that batch_norm over the activation channels only
    std::vector<int> convs;      // the conv2d nodes reading the concat (or `through`): all its readers, ascending
    std::vector<LayerPtr> layers;  // per conv, the folded conv: reads [activations, salt]
    int last() const { return convs.back(); }
    // The folded twin of node `node`, or null when it is not one of the convs.
    const Layer* conv_layer(int node) const {
        for (std::size_t i = 0; i < convs.size(); ++i)
            if (convs[i] == node) return layers[i].get();
        return nullptr;
    }
};

class Model {
public:
    Model() = default;
    Model(Model&&) noexcept = default;
    Model& operator=(Model&&) noexcept = default;
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    // Reads, validates and instantiates a model file. Errors start with the path.
    static Result<Model> load(const std::string& path, const LoadOptions& options = LoadOptions());
    // The same from bytes in memory.
    static Result<Model> parse(const void* data, std::size_t size, const LoadOptions& options = LoadOptions());
    // Instantiates an already parsed file (no hash check beyond what the
    // file was parsed with; the test vector is replayed if asked).
    static Result<Model> from_file(io::ModelFile file, const LoadOptions& options = LoadOptions());

    const io::ModelFile& file() const { return file_; }
    const Topology& topology() const { return topo_; }
    int node_count() const { return topo_.node_count(); }
    const NodeInfo& node(int i) const { return topo_.nodes[static_cast<std::size_t>(i)]; }
    const Layer& layer(int i) const { return *layers_[static_cast<std::size_t>(i)]; }
    const ValueInfo& value(int v) const { return topo_.values[static_cast<std::size_t>(v)]; }
    // The value's shape for a batch of `batch`.
    Shape value_shape(int v, int64_t batch) const {
        Shape s = value(v).shape;
        s[0] = batch;
        return s;
    }
    const io::SaltSpec& salt() const { return file_.salt(); }
    bool salted() const { return file_.salt().kind != io::SaltKind::none; }
    const io::Sha256::Digest& model_id() const { return file_.weights_sha256(); }
    int64_t parameter_count() const {
        int64_t n = 0;
        for (const NodeInfo& node : topo_.nodes) n += node.params;
        return n;
    }
    // Bytes of the layers' prepared kernels (packed and Winograd-transformed
    // weights, salt-fold tables), held beside the file's own weights.
    int64_t kernel_bytes() const { return kernel_bytes(0, node_count()); }
    // The part of them keep_only(from, to) would keep: the range's layers,
    // and the salt fold's when the range holds all of it.
    int64_t kernel_bytes(int from, int to) const {
        int64_t n = 0;
        for (int i = std::max(from, 0); i < std::min(to, node_count()); ++i)
            n += layers_[static_cast<std::size_t>(i)]->kernel_bytes();
        if (fold_.convs.empty() || fold_.concat < from || fold_.last() >= to) return n;
        for (const LayerPtr& l : fold_.layers) n += l->kernel_bytes();
        if (fold_.through_layer) n += fold_.through_layer->kernel_bytes();
        return n;
    }
    // FLOPs of the whole model for one batch item.
    int64_t flops_per_item() const {
        int64_t n = 0;
        for (const NodeInfo& node : topo_.nodes) n += node.flops;
        return n;
    }

    // Frees the prepared layers of every node outside [from, to): a device
    // running only a split's head keeps keep_only(0, cut.position), a tail
    // server keep_only(cut.position, node_count()). Shapes, FLOPs and cut
    // points stay; a Session over a range reaching a released node fails at
    // creation, and running the whole model (the test vector, run_unplanned)
    // fails naming the node. Narrowing again is allowed, widening is not
    // (the kernels are gone: load the model again). Sessions created before
    // a keep_only() that released anything fail at their next run (their
    // plans point at the old layers): create them after it.
    Status keep_only(int from, int to);
    // Changes whenever keep_only() releases layers; Sessions compare it.
    int layers_version() const { return layers_version_; }
    // The nodes whose layers are prepared: [kept_from(), kept_to()).
    int kept_from() const { return kept_from_; }
    int kept_to() const { return kept_to_; }

    // The salt fold, or null when the model has none (standard, FC salt, or
    // a CNN salt read by other than convs) or loading turned it off.
    const SaltFold* salt_fold() const { return fold_.convs.empty() ? nullptr : &fold_; }

    const std::vector<CutPoint>& cuts() const { return cuts_; }
    // A cut by id ("3") or by name ("after:conv2.Conv").
    Result<const CutPoint*> find_cut(const std::string& id_or_name) const {
        for (const CutPoint& c : cuts_)
            if (c.name == id_or_name) return &c;
        if (!id_or_name.empty() && id_or_name.size() < 10 &&
            id_or_name.find_first_not_of("0123456789") == std::string::npos) {
            const long id = std::strtol(id_or_name.c_str(), nullptr, 10);
            if (id >= 0 && id < static_cast<long>(cuts_.size())) return &cuts_[static_cast<std::size_t>(id)];
        }
        std::string known;
        for (const CutPoint& c : cuts_) {
            if (known.size() > 300) {
                known += ", ...";
                break;
            }
            known += (known.empty() ? "" : ", ") + std::to_string(c.id) + "=" + c.name;
        }
        return make_error(Errc::invalid_argument, "cut: expected a cut id 0..%d or name (%s), found '%.80s'",
                          static_cast<int>(cuts_.size()) - 1, known.c_str(), id_or_name.c_str());
    }

private:
    Status build(bool batch_invariant);
    Status build_salt_fold(bool batch_invariant);

    io::ModelFile file_;
    Topology topo_;
    std::vector<LayerPtr> layers_;
    std::vector<CutPoint> cuts_;
    SaltFold fold_;
    int kept_from_ = 0, kept_to_ = 0;  // build() keeps every node
    int layers_version_ = 0;
};

namespace detail {

// What stays of a node keep_only() released: its shapes and FLOPs, no
// kernels. Running it is an error that names the node and the kept range.
class ReleasedLayer final : public Layer {
public:
    ReleasedLayer(const NodeInfo& node, std::vector<Shape> input_shapes, Shape output, int from, int to)
        : name_(node.name), op_(node.op), inputs_(std::move(input_shapes)), output_(std::move(output)),
          flops_per_item_(node.flops), from_(from), to_(to) {}

    Result<Shape> output_shape(const std::vector<Shape>& inputs) const override {
        bool same = inputs.size() == inputs_.size() && !inputs.empty();
        for (std::size_t i = 0; same && i < inputs.size(); ++i) {
            Shape want = inputs_[i];
            if (inputs[i].rank() == want.rank() && want.rank() > 0) want[0] = inputs[i][0];
            same = inputs[i] == want;
        }
        if (!same) return released();
        Shape out = output_;
        out[0] = inputs[0][0];
        return out;
    }
    int64_t flops(const std::vector<Shape>& inputs) const override {
        return inputs.empty() || inputs[0].rank() < 1 ? 0 : flops_per_item_ * inputs[0][0];
    }
    Status run(const ConstTensorView*, std::size_t, TensorView, float*) const override { return released(); }

private:
    Status released() const {
        return make_error(Errc::invalid_argument,
                          "node '%.80s' (%s): its kernels were released (Model::keep_only(%d, %d) keeps nodes %d..%d); "
                          "load the model again to run it", name_.c_str(), op_.c_str(), from_, to_, from_, to_ - 1);
    }
    std::string name_, op_;
    std::vector<Shape> inputs_;
    Shape output_;
    int64_t flops_per_item_;
    int from_, to_;
};

}  // namespace detail

inline Status Model::keep_only(int from, int to) {
    if (from < 0 || to > node_count() || from > to)
        return make_error(Errc::out_of_range, "keep_only: range: expected 0 <= from <= to <= %d, found [%d, %d)",
                          node_count(), from, to);
    if (from < kept_from() || to > kept_to())
        return make_error(Errc::invalid_argument,
                          "keep_only: [%d, %d) reaches nodes already released (kept: [%d, %d)); load the model again",
                          from, to, kept_from(), kept_to());
    if (from == kept_from() && to == kept_to()) return Status();  // nothing to release
    ++layers_version_;
    for (int i = 0; i < node_count(); ++i) {
        if ((i >= from && i < to) || (i < kept_from() || i >= kept_to())) continue;  // kept, or already released
        const NodeInfo& n = node(i);
        std::vector<Shape> in;
        for (int v : n.inputs) in.push_back(value(v).shape);
        layers_[static_cast<std::size_t>(i)] =
            LayerPtr(new detail::ReleasedLayer(n, std::move(in), value(n.output).shape, from, to));
    }
    // The fold runs only in a Session holding the concat and all its convs.
    if (!fold_.convs.empty() && !(fold_.concat >= from && fold_.last() < to)) fold_ = SaltFold();
    kept_from_ = from;
    kept_to_ = to;
    return Status();
}

// Replays the file's test vector; defined in graph/verify.hpp, which this
// header includes at its end.
inline Status verify_test_vector(const Model& model);

namespace detail {

// The writer zero-fills the gaps between tensors (64-byte alignment). No hash
// covers them, so requiring zeros is what makes every changed byte of the
// data section detectable.
inline Status check_data_padding(const io::ModelFile& f, const unsigned char* bytes, std::size_t size) {
    uint64_t data_offset = 0;
    for (int i = 7; i >= 0; --i) data_offset = (data_offset << 8) | bytes[24 + i];
    std::vector<std::pair<uint64_t, uint64_t>> used;
    for (const io::TensorEntry& t : f.tensors()) used.emplace_back(t.begin, t.end);
    for (const io::TensorEntry& t : f.test_vector().inputs) used.emplace_back(t.begin, t.end);
    for (const io::TensorEntry& t : f.test_vector().outputs) used.emplace_back(t.begin, t.end);
    std::sort(used.begin(), used.end());
    uint64_t at = 0;
    const uint64_t len = size - data_offset;
    auto check_gap = [&](uint64_t from, uint64_t to) -> Status {
        for (uint64_t i = from; i < to && i < len; ++i)
            if (bytes[data_offset + i] != 0)
                return make_error(Errc::verify_failed,
                                  "model: data section padding: byte %llu: expected 0, found 0x%02x",
                                  static_cast<unsigned long long>(data_offset + i), bytes[data_offset + i]);
        return Status();
    };
    for (const auto& r : used) {
        if (r.first > at) SALTED_TRY(check_gap(at, r.first));
        at = std::max(at, r.second);
    }
    return check_gap(at, len);
}

}  // namespace detail

inline Result<Model> Model::parse(const void* data, std::size_t size, const LoadOptions& options) {
    io::LoadOptions lo;
    lo.verify = options.verify_hash;
    SALTED_ASSIGN(io::ModelFile file, io::ModelFile::parse(data, size, lo));
    if (options.verify_hash)
        SALTED_TRY(detail::check_data_padding(file, static_cast<const unsigned char*>(data), size));
    return from_file(std::move(file), options);
}

inline Result<Model> Model::load(const std::string& path, const LoadOptions& options) {
    auto bytes = io::read_file_bytes(path);
    if (!bytes.ok()) return bytes.error();
    auto m = parse(bytes->data(), bytes->size(), options);
    if (!m.ok()) return make_error(m.code(), "%s: %s", path.c_str(), m.message().c_str());
    return m;
}

inline Result<Model> Model::from_file(io::ModelFile file, const LoadOptions& options) {
    Model m;
    m.file_ = std::move(file);
    SALTED_TRY(m.build(options.batch_invariant));
    if (options.fold_salt) SALTED_TRY(m.build_salt_fold(options.batch_invariant));
    if (options.verify_test_vector && m.file_.has_test_vector()) SALTED_TRY(verify_test_vector(m));
    return m;
}

inline Status Model::build(bool batch_invariant) {
    const io::ModelFile& f = file_;
    std::map<std::string, int> index;  // value name -> value index
    for (std::size_t i = 0; i < f.inputs().size(); ++i) {
        const io::ValueSpec& spec = f.inputs()[i];
        ValueInfo v;
        v.name = spec.name;
        v.graph_input = static_cast<int>(i);
        v.is_salt = spec.kind != io::InputKind::data;
        auto shape = spec.shape(1);
        if (!shape.ok())
            return make_error(Errc::invalid_argument, "model: inputs.'%.80s'.shape: %s", spec.name.c_str(),
                              shape.message().c_str());
        v.shape = shape.value();
        index[v.name] = static_cast<int>(topo_.values.size());
        topo_.inputs.push_back(static_cast<int>(topo_.values.size()));
        if (v.is_salt) topo_.salt_value = static_cast<int>(topo_.values.size());
        topo_.values.push_back(std::move(v));
    }
    BuildContext ctx;
    ctx.file = &f;
    ctx.batch_invariant = batch_invariant;
    for (std::size_t i = 0; i < f.nodes().size(); ++i) {
        const io::Node& n = f.nodes()[i];
        NodeInfo info;
        info.name = n.name;
        info.op = n.op;
        std::vector<Shape> in_shapes;
        for (const std::string& in : n.inputs) {
            auto it = index.find(in);
            if (it == index.end())  // the reader checks this; a Model never trusts it blindly
                return make_error(Errc::invalid_argument, "model: node '%.80s': input '%.80s' is not defined",
                                  n.name.c_str(), in.c_str());
            info.inputs.push_back(it->second);
            in_shapes.push_back(topo_.values[static_cast<std::size_t>(it->second)].shape);
            std::vector<int>& cons = topo_.values[static_cast<std::size_t>(it->second)].consumers;
            if (cons.empty() || cons.back() != static_cast<int>(i)) cons.push_back(static_cast<int>(i));
        }
        ctx.input_shapes = &in_shapes;
        SALTED_ASSIGN(LayerPtr layer, build_layer(n, ctx));
        // The salt only enters through the salt node, in its second slot:
        // anything else would carry it past the cut planner's model of it.
        for (std::size_t k = 0; k < info.inputs.size(); ++k) {
            if (info.inputs[k] != topo_.salt_value) continue;
            const bool salt_node = (n.op == "cnn_salt_concat" || n.op == "fc_salt_concat") && k == 1;
            if (!salt_node)
                return make_error(Errc::invalid_argument,
                                  "model: node '%.80s' (%s): input %zu: the salt input '%.80s' may only be the second "
                                  "input of cnn_salt_concat / fc_salt_concat", n.name.c_str(), n.op.c_str(), k,
                                  topo_.values[static_cast<std::size_t>(topo_.salt_value)].name.c_str());
            if (topo_.salt_node >= 0)
                return make_error(Errc::invalid_argument,
                                  "model: node '%.80s': the salt input is read by a second node (first: '%.80s')",
                                  n.name.c_str(), topo_.nodes[static_cast<std::size_t>(topo_.salt_node)].name.c_str());
            topo_.salt_node = static_cast<int>(i);
        }
        if ((n.op == "cnn_salt_concat" || n.op == "fc_salt_concat") &&
            (topo_.salt_value < 0 || info.inputs[1] != topo_.salt_value))
            return make_error(Errc::invalid_argument,
                              "model: node '%.80s' (%s): input 1: expected the graph's salt input, found '%.80s'",
                              n.name.c_str(), n.op.c_str(), n.inputs.size() > 1 ? n.inputs[1].c_str() : "");
        auto out_shape = layer->output_shape(in_shapes);
        if (!out_shape.ok()) return detail::in_node(n, out_shape.error());
        if (out_shape->rank() < 1 || (*out_shape)[0] != 1)
            return make_error(Errc::invalid_argument, "model: node '%.80s' (%s): output shape %s does not keep the batch "
                              "first", n.name.c_str(), n.op.c_str(), out_shape->str().c_str());
        info.flops = layer->flops(in_shapes);
        for (const auto& w : n.weights) {
            auto t = f.tensor(w.second);
            if (t.ok()) info.params += t->numel();
        }
        ValueInfo out;
        out.name = n.outputs[0];
        out.producer = static_cast<int>(i);
        out.shape = out_shape.value();
        if (index.count(out.name))
            return make_error(Errc::invalid_argument, "model: node '%.80s': output '%.80s' is already defined",
                              n.name.c_str(), out.name.c_str());
        info.output = static_cast<int>(topo_.values.size());
        index[out.name] = info.output;
        topo_.values.push_back(std::move(out));
        topo_.nodes.push_back(std::move(info));
        layers_.push_back(std::move(layer));
    }
    if (salted() && topo_.salt_node < 0)
        return make_error(Errc::invalid_argument, "model: salt.node: no node reads the salt input");
    if (salted() && f.nodes()[static_cast<std::size_t>(topo_.salt_node)].name != f.salt().node)
        return make_error(Errc::invalid_argument, "model: salt.node: expected '%.80s' (the node reading the salt), "
                          "found '%.80s'", f.nodes()[static_cast<std::size_t>(topo_.salt_node)].name.c_str(),
                          f.salt().node.c_str());
    if (f.salt().kind == io::SaltKind::cnn) {
        // The spec repeats the node's maps and size for readers of the header
        // alone (salted info, the planner); they must agree.
        const graph::ValueInfo& concat =
            topo_.values[static_cast<std::size_t>(topo_.nodes[static_cast<std::size_t>(topo_.salt_node)].output)];
        const graph::ValueInfo& act =
            topo_.values[static_cast<std::size_t>(topo_.nodes[static_cast<std::size_t>(topo_.salt_node)].inputs[0])];
        const int64_t maps = concat.shape[1] - act.shape[1];
        if (f.salt().maps != maps || f.salt().size[0] != concat.shape[2] || f.salt().size[1] != concat.shape[3])
            return make_error(Errc::invalid_argument,
                              "model: salt: expected %lld maps of %lldx%lld (node '%.80s'), found %lld maps of "
                              "%lldx%lld",
                              static_cast<long long>(maps), static_cast<long long>(concat.shape[2]),
                              static_cast<long long>(concat.shape[3]), f.salt().node.c_str(),
                              static_cast<long long>(f.salt().maps), static_cast<long long>(f.salt().size[0]),
                              static_cast<long long>(f.salt().size[1]));
    }
    if (f.salt().kind == io::SaltKind::fc) {
        const graph::ValueInfo& salt_in = topo_.values[static_cast<std::size_t>(topo_.salt_value)];
        if (salt_in.shape.rank() != 2 || salt_in.shape[1] != f.salt().classes)
            return make_error(Errc::invalid_argument, "model: salt input: expected [N, %lld] (classes), found %s",
                              static_cast<long long>(f.salt().classes), salt_in.shape.str().c_str());
    }
    for (std::size_t i = 0; i < f.outputs().size(); ++i) {
        const io::ValueSpec& spec = f.outputs()[i];
        auto it = index.find(spec.name);
        if (it == index.end() || topo_.values[static_cast<std::size_t>(it->second)].producer < 0)
            return make_error(Errc::invalid_argument, "model: outputs.'%.80s': not computed by any node",
                              spec.name.c_str());
        ValueInfo& v = topo_.values[static_cast<std::size_t>(it->second)];
        if (v.graph_output >= 0)
            return make_error(Errc::invalid_argument, "model: outputs.'%.80s': listed twice", spec.name.c_str());
        auto want = spec.shape(1);
        if (!want.ok() || want.value() != v.shape)
            return make_error(Errc::shape_mismatch, "model: outputs.'%.80s'.shape: expected %s (declared), "
                              "found %s (inferred)", spec.name.c_str(), want.ok() ? want->str().c_str() : "invalid",
                              v.shape.str().c_str());
        v.graph_output = static_cast<int>(i);
        topo_.outputs.push_back(it->second);
    }
    if (topo_.outputs.empty()) return make_error(Errc::invalid_argument, "model: outputs: expected at least one");
    cuts_ = find_cut_points(topo_);
    kept_to_ = node_count();
    return Status();
}

inline Status Model::build_salt_fold(bool batch_invariant) {
    if (topo_.salt_node < 0 || file_.salt().kind != io::SaltKind::cnn) return Status();
    const NodeInfo& concat = node(topo_.salt_node);
    const ValueInfo* feeds = &value(concat.output);
    if (feeds->consumers.size() != 1 || feeds->graph_output >= 0) return Status();
    BuildContext ctx;
    ctx.file = &file_;
    ctx.batch_invariant = batch_invariant;
    const auto& nodes = file_.nodes();
    const io::Node& concat_node = nodes[static_cast<std::size_t>(topo_.salt_node)];
    const Shape& act_shape = value(concat.inputs[0]).shape;
    SaltFold fold;
    fold.concat = topo_.salt_node;
    SaltMapsAffine affine;
    if (node(feeds->consumers[0]).op == "batch_norm") {  // WideResNet: concat -> BN-ReLU -> convs
        fold.through = feeds->consumers[0];
        SALTED_ASSIGN(auto split, split_batch_norm(concat_node, nodes[static_cast<std::size_t>(fold.through)], ctx,
                                                   act_shape));
        if (!split.first) return Status();
        fold.through_layer = std::move(split.first);
        affine = std::move(split.second);
        feeds = &value(node(fold.through).output);
        if (feeds->consumers.empty() || feeds->graph_output >= 0) return Status();
    }
    for (int conv : feeds->consumers) {
        if (node(conv).inputs.size() != 1) return Status();
        SALTED_ASSIGN(LayerPtr layer, fold_salt_into_conv(concat_node, nodes[static_cast<std::size_t>(conv)], ctx,
                                                          act_shape, fold.through >= 0 ? &affine : nullptr));
        if (!layer) return Status();
        fold.convs.push_back(conv);
        fold.layers.push_back(std::move(layer));
    }
    fold_ = std::move(fold);
    return Status();
}

}  // namespace graph
}  // namespace salted

#include "salted/graph/verify.hpp"
