// tiny_lenet: a small salted CNN built in code, run under every salt, to show
// what the salt does to the output a server sees and how the device undoes it.
//
//   input [N, 1, 12, 12]
//   conv1 1->6, 3x3, pad 1, ReLU    -> max pool 2x2       -> [N, 6, 6, 6]
//   CNN salt: 1 map of 6x6 from s, concatenated           -> [N, 7, 6, 6]   salted layer
//   conv2 7->(8 + 3C), 3x3, pad 1, ReLU -> flatten        -> [N, (8 + 3C) * 36]
//   dense1 -> C*C, ReLU -> dense2 -> C logits -> softmax  -> [N, C]
//
// Untrained: conv1, conv2's first 8 channels and the class scores
// z = A . features + a are pseudo-random from a fixed seed, a stand-in for a
// standard network. The layers that carry the salt are set by hand so that
// the network obeys the salted rule *exactly*: the score of class c comes out
// at index (c + s) mod C. Training (PAPER.md's recipe) teaches a network the
// same rule approximately. How the hand-set salt path works:
//   * the salt map is s everywhere (ConvTranspose weight 1, bias 0);
//   * conv2 turns it into units u[j][t] = ReLU(s - j + 1 - t), t = 0, 1, 2,
//     and u[j][0] - 2 u[j][1] + u[j][2] is 1 when s == j and 0 otherwise;
//   * dense1 unit (k, j) = ReLU(z[(k - j) mod C] + offset - M (1 - [s == j])),
//     which is z + offset when j == s and 0 otherwise (M exceeds any z + offset);
//   * dense2 sums over j and subtracts offset: logit[k] = z[(k - s) mod C].
// Its hidden units show s plainly, so this network illustrates the output
// rule only, not what a server could learn at a cut (that needs a trained
// model, and is measured rather than assumed).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "salted/core/tensor.hpp"
#include "salted/ops/conv2d.hpp"
#include "salted/ops/dense.hpp"
#include "salted/ops/pool.hpp"
#include "salted/ops/salt_layers.hpp"
#include "salted/ops/softmax.hpp"
#include "salted/salt/desalt.hpp"
#include "salted/salt/draw.hpp"

using namespace salted;

namespace {

constexpr int64_t kClasses = 10;  // C
constexpr int64_t kImage = 12;    // input is 1 x 12 x 12
constexpr int64_t kConv1 = 6;     // channels after conv1
constexpr int64_t kSide = 6;      // spatial size after pooling
constexpr int64_t kFeat = 8;      // pseudo-random feature channels of conv2
constexpr int64_t kUnits = 3 * kClasses;  // hand-set salt units of conv2
constexpr int64_t kConv2 = kFeat + kUnits;
constexpr int64_t kPixels = kSide * kSide;

// Deterministic uniform floats in [-scale, scale): the same weights on every
// machine (std::uniform_real_distribution is not portable across libraries).
class Lcg {
public:
    explicit Lcg(uint64_t seed) : state_(seed) {}
    float uniform(float scale) {
        state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
        const float unit = static_cast<float>(state_ >> 40) / 16777216.0f;  // [0, 1)
        return (2.0f * unit - 1.0f) * scale;
    }

private:
    uint64_t state_;
};

Result<Tensor> random_tensor(const Shape& shape, float scale, Lcg& rng) {
    SALTED_ASSIGN(Tensor t, Tensor::empty(shape));
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.uniform(scale);
    return t;
}

// Largest |output| of one conv / dense row over inputs in [0, in_max]:
// sum |w| * in_max + |b|, maximised over output channels.
float output_bound(const Tensor& w, const Tensor& b, int64_t rows, int64_t row_len, float in_max) {
    float bound = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
        float s = std::fabs(b[r]);
        for (int64_t i = 0; i < row_len; ++i) s += std::fabs(w[r * row_len + i]) * in_max;
        bound = std::fmax(bound, s);
    }
    return bound;
}

struct TinyLenet {
    ops::Conv2d conv1;
    ops::CnnSalt salt;
    ops::Conv2d conv2;
    ops::Dense dense1;
    ops::Dense dense2;

    static Result<TinyLenet> build(uint64_t seed) {
        Lcg rng(seed);
        const int64_t C = kClasses;

        // conv1: pseudo-random.
        ops::Conv2dParams c1;
        c1.in_channels = 1;
        c1.out_channels = kConv1;
        c1.kernel_h = c1.kernel_w = 3;
        c1.pad_top = c1.pad_left = c1.pad_bottom = c1.pad_right = 1;
        c1.activation = ops::Activation::relu();
        SALTED_ASSIGN(Tensor w1, random_tensor({kConv1, 1, 3, 3}, 0.5f, rng));
        SALTED_ASSIGN(Tensor b1, random_tensor({kConv1}, 0.1f, rng));
        const float bound1 = output_bound(w1, b1, kConv1, 9, 1.0f);  // inputs are in [0, 1]

        // The salted layer: one map equal to s (ConvTranspose2d weight 1, no bias).
        ops::CnnSaltParams sp;
        sp.maps = 1;
        sp.height = sp.width = kSide;
        sp.num_classes = C;
        SALTED_ASSIGN(Tensor ws, Tensor::empty({1, 1, kSide, kSide}));
        for (int64_t i = 0; i < ws.numel(); ++i) ws[i] = 1.0f;

        // conv2: channels [0, kFeat) are pseudo-random over the 6 image
        // channels and ignore the salt, so the class scores do not depend on
        // s; channels kFeat + 3j + t are the salt units ReLU(s - j + 1 - t),
        // read from the centre tap of the salt channel.
        ops::Conv2dParams c2;
        c2.in_channels = kConv1 + 1;
        c2.out_channels = kConv2;
        c2.kernel_h = c2.kernel_w = 3;
        c2.pad_top = c2.pad_left = c2.pad_bottom = c2.pad_right = 1;
        c2.activation = ops::Activation::relu();
        SALTED_ASSIGN(Tensor w2, Tensor::zeros({kConv2, kConv1 + 1, 3, 3}));
        SALTED_ASSIGN(Tensor b2, Tensor::zeros({kConv2}));
        const int64_t w2_row = (kConv1 + 1) * 9;
        for (int64_t o = 0; o < kFeat; ++o) {
            for (int64_t i = 0; i < kConv1 * 9; ++i) w2[o * w2_row + i] = rng.uniform(0.2f);
            b2[o] = rng.uniform(0.1f);
        }
        const float bound2 = output_bound(w2, b2, kFeat, w2_row, bound1);
        for (int64_t j = 0; j < C; ++j)
            for (int64_t t = 0; t < 3; ++t) {
                const int64_t o = kFeat + 3 * j + t;
                w2[o * w2_row + kConv1 * 9 + 4] = 1.0f;  // salt channel, centre tap
                b2[o] = static_cast<float>(1 - j - t);
            }

        // The "standard" class scores z = A . features + a, and the margins
        // that make the routing exact: z + offset >= 1 and M > z + offset.
        const int64_t feat_len = kFeat * kPixels;
        SALTED_ASSIGN(Tensor A, random_tensor({C, feat_len}, 0.2f, rng));
        SALTED_ASSIGN(Tensor a, random_tensor({C}, 0.1f, rng));
        const float bound_z = output_bound(A, a, C, feat_len, bound2);
        const float offset = bound_z + 1.0f;
        const float M = 2.0f * bound_z + 2.0f;

        // dense1: unit (k, j) = ReLU(z[(k - j) mod C] + offset - M + M * [s == j]).
        const int64_t flat = kConv2 * kPixels;
        SALTED_ASSIGN(Tensor wd1, Tensor::zeros({C * C, flat}));
        SALTED_ASSIGN(Tensor bd1, Tensor::zeros({C * C}));
        for (int64_t k = 0; k < C; ++k)
            for (int64_t j = 0; j < C; ++j) {
                const int64_t r = k * C + j, c = ((k - j) % C + C) % C;
                float* row = wd1.data() + r * flat;
                for (int64_t i = 0; i < feat_len; ++i) row[i] = A[c * feat_len + i];
                const float indicator[3] = {1.0f, -2.0f, 1.0f};  // u0 - 2 u1 + u2 = [s == j]
                for (int64_t t = 0; t < 3; ++t) row[(kFeat + 3 * j + t) * kPixels] = M * indicator[t];
                bd1[r] = a[c] + offset - M;
            }

        // dense2: logit[k] = sum_j unit(k, j) - offset.
        SALTED_ASSIGN(Tensor wd2, Tensor::zeros({C, C * C}));
        SALTED_ASSIGN(Tensor bd2, Tensor::empty({C}));
        for (int64_t k = 0; k < C; ++k) {
            for (int64_t j = 0; j < C; ++j) wd2[k * C * C + k * C + j] = 1.0f;
            bd2[k] = -offset;
        }

        ops::DenseParams d1;
        d1.in_features = flat;
        d1.out_features = C * C;
        d1.activation = ops::Activation::relu();
        ops::DenseParams d2;
        d2.in_features = C * C;
        d2.out_features = C;

        SALTED_ASSIGN(ops::Conv2d conv1, ops::Conv2d::create(c1, w1.view(), b1.view()));
        SALTED_ASSIGN(ops::CnnSalt salt, ops::CnnSalt::create(sp, ws.view(), ConstTensorView{}));
        SALTED_ASSIGN(ops::Conv2d conv2, ops::Conv2d::create(c2, w2.view(), b2.view()));
        SALTED_ASSIGN(ops::Dense dense1, ops::Dense::create(d1, wd1.view(), bd1.view()));
        SALTED_ASSIGN(ops::Dense dense2, ops::Dense::create(d2, wd2.view(), bd2.view()));
        return TinyLenet{std::move(conv1), std::move(salt), std::move(conv2), std::move(dense1), std::move(dense2)};
    }

    // Logits [N, C] for images [N, 1, 12, 12] and one salt per image.
    Result<Tensor> logits(const Tensor& images, const std::vector<int64_t>& salts) const {
        const int64_t n = images.shape()[0];
        SALTED_ASSIGN(Shape s1, conv1.output_shape(images.shape()));
        SALTED_ASSIGN(Tensor x1, Tensor::empty(s1));
        std::vector<float> workspace(std::max<std::size_t>(1, conv1.workspace_floats(images.shape())));
        SALTED_TRY(conv1.run(images.view(), x1.view(), workspace.data()));

        const auto pool = ops::Pool2dParams::make(2, 2);
        SALTED_ASSIGN(Shape sp, ops::max_pool2d_output_shape(pool, s1));
        SALTED_ASSIGN(Tensor xp, Tensor::empty(sp));
        SALTED_TRY(ops::max_pool2d(pool, x1.view(), xp.view()));

        SALTED_ASSIGN(Shape ss, salt.concat_output_shape(sp));
        SALTED_ASSIGN(Tensor xs, Tensor::empty(ss));
        SALTED_TRY(salt.concat(xp.view(), salts, xs.view()));

        SALTED_ASSIGN(Shape s2, conv2.output_shape(ss));
        SALTED_ASSIGN(Tensor x2, Tensor::empty(s2));
        workspace.resize(std::max<std::size_t>(1, conv2.workspace_floats(ss)));
        SALTED_TRY(conv2.run(xs.view(), x2.view(), workspace.data()));

        // Flatten is free on contiguous NCHW: the same floats as [N, C*H*W].
        const ConstTensorView flat(x2.data(), Shape{n, s2.numel() / n});
        SALTED_ASSIGN(Shape sd1, dense1.output_shape(flat.shape));
        SALTED_ASSIGN(Tensor h, Tensor::empty(sd1));
        workspace.resize(std::max<std::size_t>(1, dense1.workspace_floats(flat.shape)));
        SALTED_TRY(dense1.run(flat, h.view(), workspace.data()));

        SALTED_ASSIGN(Shape sd2, dense2.output_shape(sd1));
        SALTED_ASSIGN(Tensor y, Tensor::empty(sd2));
        workspace.resize(std::max<std::size_t>(1, dense2.workspace_floats(sd1)));
        SALTED_TRY(dense2.run(h.view(), y.view(), workspace.data()));
        return y;
    }
};

// A 12x12 image in [0, 1]: a soft stroke whose angle depends on `variant`.
void draw_image(float* px, int variant) {
    const float angle = 0.4f + 0.7f * static_cast<float>(variant);
    const float dx = std::cos(angle), dy = std::sin(angle);
    for (int64_t y = 0; y < kImage; ++y)
        for (int64_t x = 0; x < kImage; ++x) {
            const float cx = static_cast<float>(x) - 5.5f, cy = static_cast<float>(y) - 5.5f;
            const float dist = std::fabs(cx * dy - cy * dx);  // distance to the stroke's line
            px[y * kImage + x] = std::exp(-dist * dist / 2.0f);
        }
}

int run() {
    const int64_t C = kClasses;
    auto net = TinyLenet::build(20240307);
    if (!net.ok()) {
        std::fprintf(stderr, "tiny_lenet: building the network failed: %s\n", net.message().c_str());
        return 1;
    }

    // Part 1: one image under every salt, as a batch of C copies with salts 0..C-1.
    auto images = Tensor::empty({C, 1, kImage, kImage});
    if (!images.ok()) return 1;
    for (int64_t n = 0; n < C; ++n) draw_image(images->data() + n * kImage * kImage, 0);
    std::vector<int64_t> salts(static_cast<std::size_t>(C));
    for (int64_t s = 0; s < C; ++s) salts[static_cast<std::size_t>(s)] = s;

    auto logits = net->logits(*images, salts);
    if (!logits.ok()) {
        std::fprintf(stderr, "tiny_lenet: inference failed: %s\n", logits.message().c_str());
        return 1;
    }
    auto probs = Tensor::empty(logits->shape());
    auto rolled = Tensor::empty(logits->shape());
    if (!probs.ok() || !rolled.ok()) return 1;
    Status st = ops::softmax(logits->view(), probs->view());
    if (st.ok()) st = salt::desalt_logits(probs->view(), salts.data(), rolled->view());
    if (!st.ok()) {
        std::fprintf(stderr, "tiny_lenet: %s\n", st.message().c_str());
        return 1;
    }

    std::printf("tiny_lenet: a salted CNN with %lld classes (weights from a fixed seed, salt path set by hand)\n\n",
                static_cast<long long>(C));
    std::printf("one image, every salt s:\n");
    std::printf("   s | server sees arg-max (p)  | device de-salts: (argmax - s) mod C\n");
    int64_t first_label = -1;
    int disagreements = 0;
    for (int64_t s = 0; s < C; ++s) {
        const float* row = probs->data() + s * C;
        const int64_t top = salt::argmax(row, C);
        auto label = salt::desalted_label(top, s, C);
        if (!label.ok()) return 1;
        if (first_label < 0) first_label = *label;
        if (*label != first_label) ++disagreements;
        std::printf("  %2lld | %2lld (%.3f)               | label %lld\n", static_cast<long long>(s),
                    static_cast<long long>(top), row[top], static_cast<long long>(*label));
    }
    // De-salting rolls the whole probability vector back, so it is the same
    // for every salt, not just its arg-max.
    float spread = 0.0f;
    for (int64_t s = 1; s < C; ++s)
        for (int64_t c = 0; c < C; ++c)
            spread = std::fmax(spread, std::fabs((*rolled)[s * C + c] - (*rolled)[c]));
    std::printf("the server's arg-max walks through every index; the de-salted label stays %lld\n",
                static_cast<long long>(first_label));
    std::printf("de-salted probabilities agree across salts to within %.2g\n\n", spread);

    // Part 2: a batch of different images, each with a fresh secret salt
    // from the operating system's CSPRNG, as a device would send them.
    const int64_t batch = 4;
    auto more = Tensor::empty({batch, 1, kImage, kImage});
    if (!more.ok()) return 1;
    for (int64_t n = 0; n < batch; ++n) draw_image(more->data() + n * kImage * kImage, static_cast<int>(n));
    std::vector<int64_t> secret(static_cast<std::size_t>(batch));
    st = salt::draw_salts(C, secret.data(), secret.size());
    if (!st.ok()) {
        std::fprintf(stderr, "tiny_lenet: %s\n", st.message().c_str());
        return 1;
    }
    auto batch_logits = net->logits(*more, secret);
    if (!batch_logits.ok()) {
        std::fprintf(stderr, "tiny_lenet: inference failed: %s\n", batch_logits.message().c_str());
        return 1;
    }
    std::vector<int64_t> labels(static_cast<std::size_t>(batch));
    st = salt::desalted_labels(batch_logits->view(), secret.data(), labels.data());
    if (!st.ok()) {
        std::fprintf(stderr, "tiny_lenet: %s\n", st.message().c_str());
        return 1;
    }
    // The same images with salt 0 give the labels to expect, whatever was drawn.
    const std::vector<int64_t> zero(static_cast<std::size_t>(batch), 0);
    auto plain_logits = net->logits(*more, zero);
    if (!plain_logits.ok()) return 1;
    std::printf("%lld images, salts drawn from the OS CSPRNG (secret, different every run):\n",
                static_cast<long long>(batch));
    for (int64_t n = 0; n < batch; ++n) {
        const std::size_t i = static_cast<std::size_t>(n);
        const int64_t top = salt::argmax(batch_logits->data() + n * C, C);
        const int64_t expected = salt::argmax(plain_logits->data() + n * C, C);
        if (labels[i] != expected) ++disagreements;
        std::printf("  image %lld: salt %lld, server sees %lld, device reads label %lld (with salt 0: %lld)\n",
                    static_cast<long long>(n), static_cast<long long>(secret[i]), static_cast<long long>(top),
                    static_cast<long long>(labels[i]), static_cast<long long>(expected));
    }

    if (disagreements != 0 || spread > 1e-3f) {
        std::fprintf(stderr, "tiny_lenet: FAILED: de-salting did not give one answer for every salt\n");
        return 1;
    }
    return 0;
}

}  // namespace

int main() { return run(); }
