// The conv2d and dense layers of the paper's reference models, with the
// shapes they really run at (tools/weights_import/reference_models.py is the
// source of truth; the sizes below are derived from it and commented).
//
// Benchmarking real shapes rather than square GEMMs matters because the
// reference models are small: most layers have K or N well below what a
// BLAS is tuned for, and that is where packing and im2col overheads show.
#pragma once

#include <cstdint>
#include <vector>

namespace bench {

struct LayerShape {
    const char* model;  // e.g. "LeNet 3x32x32"
    const char* layer;  // e.g. "conv2 32->32 k5"
    bool dense = false; // dense: cin = in_features, cout = out_features
    int64_t cin = 0, cout = 0;
    int64_t h = 1, w = 1;  // input spatial size (conv only)
    int64_t kh = 1, kw = 1, sh = 1, sw = 1;
    int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    int64_t batch = 1;

    int64_t out_h() const { return dense ? 1 : (h + pad_top + pad_bottom - kh) / sh + 1; }
    int64_t out_w() const { return dense ? 1 : (w + pad_left + pad_right - kw) / sw + 1; }
    // The equivalent single GEMM, C[M x N] = A[M x K] * B[K x N]. A conv is
    // M = Cout, N = Ho * Wo * batch, K = Cin * kh * kw (groups are 1 in every
    // reference model). A dense layer is x[batch x in] * W^T: M = batch,
    // N = out, K = in, as a BLAS-backed nn.Linear calls it.
    int64_t gemm_m() const { return dense ? batch : cout; }
    int64_t gemm_n() const { return dense ? cout : out_h() * out_w() * batch; }
    int64_t gemm_k() const { return dense ? cin : cin * kh * kw; }
    int64_t flops() const { return 2 * gemm_m() * gemm_n() * gemm_k(); }
};

inline LayerShape conv(const char* model, const char* layer, int64_t cin, int64_t cout, int64_t h, int64_t w,
                       int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t pad_top, int64_t pad_left,
                       int64_t pad_bottom, int64_t pad_right, int64_t batch = 1) {
    LayerShape s;
    s.model = model;
    s.layer = layer;
    s.cin = cin;
    s.cout = cout;
    s.h = h;
    s.w = w;
    s.kh = kh;
    s.kw = kw;
    s.sh = sh;
    s.sw = sw;
    s.pad_top = pad_top;
    s.pad_left = pad_left;
    s.pad_bottom = pad_bottom;
    s.pad_right = pad_right;
    s.batch = batch;
    return s;
}

inline LayerShape dense(const char* model, const char* layer, int64_t in, int64_t out, int64_t batch = 1) {
    LayerShape s;
    s.model = model;
    s.layer = layer;
    s.dense = true;
    s.cin = in;
    s.cout = out;
    s.batch = batch;
    return s;
}

inline std::vector<LayerShape> reference_layer_shapes() {
    std::vector<LayerShape> v;
    // LeNet on CIFAR-10 3x32x32: conv1 32->28, conv2 28->24, pool 12, conv3
    // 12->8, pool 4, flatten 32*4*4 = 512.
    const char* l3 = "LeNet 3x32x32";
    v.push_back(conv(l3, "conv1 3->32 k5", 3, 32, 32, 32, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(conv(l3, "conv2 32->32 k5", 32, 32, 28, 28, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(conv(l3, "conv3 32->32 k5", 32, 32, 12, 12, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(dense(l3, "fc1 512->120", 512, 120));
    v.push_back(dense(l3, "fc2 120->84", 120, 84));
    v.push_back(dense(l3, "fc3 84->10", 84, 10));
    // Salted variants: the salt maps/vector widen the next layer's input.
    v.push_back(conv(l3, "salt0 conv1 4->32 k5", 4, 32, 32, 32, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(conv(l3, "salt1 conv2 37->32 k5", 37, 32, 28, 28, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(conv(l3, "salt3 conv3 37->32 k5", 37, 32, 12, 12, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(dense(l3, "salt5 fc1 640->120", 640, 120));  // (32 + 8 maps) * 4 * 4
    v.push_back(dense(l3, "salt7 fc2 130->84", 130, 84));    // 120 + 10-vector
    v.push_back(conv(l3, "conv1 3->32 k5", 3, 32, 32, 32, 5, 5, 1, 1, 0, 0, 0, 0, 64));
    v.push_back(conv(l3, "conv2 32->32 k5", 32, 32, 28, 28, 5, 5, 1, 1, 0, 0, 0, 0, 64));
    v.push_back(dense(l3, "fc1 512->120", 512, 120, 64));

    // LeNet on Fashion-MNIST 1x28x28: 28->24, 24->20, pool 10, 10->6, pool 3,
    // flatten 32*3*3 = 288.
    const char* l1 = "LeNet 1x28x28";
    v.push_back(conv(l1, "conv1 1->32 k5", 1, 32, 28, 28, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(conv(l1, "conv2 32->32 k5", 32, 32, 24, 24, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(conv(l1, "conv3 32->32 k5", 32, 32, 10, 10, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(dense(l1, "fc1 288->120", 288, 120));
    v.push_back(dense(l1, "fc2 120->84", 120, 84));
    v.push_back(dense(l1, "fc3 84->10", 84, 10));
    v.push_back(conv(l1, "salt1 conv2 37->32 k5", 37, 32, 24, 24, 5, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(conv(l1, "conv2 32->32 k5", 32, 32, 24, 24, 5, 5, 1, 1, 0, 0, 0, 0, 64));

    // WideResNet-16-4: channels 16, 64, 128, 256; two blocks per group.
    // Stride-1 convs pad 1 on every side; a stride-2 conv pads right and
    // bottom only (F.pad(0, 1, 0, 1)) then convolves unpadded.
    const char* wr = "WRN-16-4";
    v.push_back(conv(wr, "stem 3->16 3x3 32x32", 3, 16, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1));
    v.push_back(conv(wr, "g1 conv 16->64 3x3 32x32", 16, 64, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1));
    v.push_back(conv(wr, "g1 conv 64->64 3x3 32x32", 64, 64, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1));
    v.push_back(conv(wr, "g1 shortcut 16->64 1x1", 16, 64, 32, 32, 1, 1, 1, 1, 0, 0, 0, 0));
    v.push_back(conv(wr, "g2 conv 64->128 3x3 s2", 64, 128, 32, 32, 3, 3, 2, 2, 0, 0, 1, 1));
    v.push_back(conv(wr, "g2 conv 128->128 3x3 16x16", 128, 128, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1));
    v.push_back(conv(wr, "g2 shortcut 64->128 1x1 s2", 64, 128, 32, 32, 1, 1, 2, 2, 0, 0, 0, 0));
    v.push_back(conv(wr, "g3 conv 128->256 3x3 s2", 128, 256, 16, 16, 3, 3, 2, 2, 0, 0, 1, 1));
    v.push_back(conv(wr, "g3 conv 256->256 3x3 8x8", 256, 256, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1));
    v.push_back(conv(wr, "g3 shortcut 128->256 1x1 s2", 128, 256, 16, 16, 1, 1, 2, 2, 0, 0, 0, 0));
    v.push_back(conv(wr, "salted g3 conv 144->256 3x3 s2", 144, 256, 16, 16, 3, 3, 2, 2, 0, 0, 1, 1));
    v.push_back(conv(wr, "salted g3 shortcut 144->256 1x1 s2", 144, 256, 16, 16, 1, 1, 2, 2, 0, 0, 0, 0));
    v.push_back(dense(wr, "fc 256->10", 256, 10));
    v.push_back(conv(wr, "g2 conv 128->128 3x3 16x16", 128, 128, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 64));
    v.push_back(conv(wr, "g1 conv 64->64 3x3 32x32", 64, 64, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1, 64));
    v.push_back(conv(wr, "g3 conv 256->256 3x3 8x8", 256, 256, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 64));

    // WideResNet-28-3: channels 16, 48, 96, 192 (four blocks per group); only
    // the stride-1 3x3 convs, the Winograd candidates whose channel counts are
    // not multiples of the 32-wide GEMM panels. Stride-2 convs and 1x1
    // shortcuts are shaped like WRN-16-4's.
    const char* w3 = "WRN-28-3";
    v.push_back(conv(w3, "g1 conv 16->48 3x3 32x32", 16, 48, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1));
    v.push_back(conv(w3, "g1 conv 48->48 3x3 32x32", 48, 48, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1));
    v.push_back(conv(w3, "g2 conv 96->96 3x3 16x16", 96, 96, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1));
    v.push_back(conv(w3, "g3 conv 192->192 3x3 8x8", 192, 192, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1));

    // Sensor ConvNet, 1x27x200, no padding: 27x196, 27x96, 27x46, 13x21,
    // 6x9, 3x3; salt layers 2, 3, 4 add 4, 16, 8 maps before conv3..conv5.
    const char* sn = "Sensor ConvNet";
    v.push_back(conv(sn, "conv1 1->64 (1,5)", 1, 64, 27, 200, 1, 5, 1, 1, 0, 0, 0, 0));
    v.push_back(conv(sn, "conv2 64->64 (1,5)/(1,2)", 64, 64, 27, 196, 1, 5, 1, 2, 0, 0, 0, 0));
    v.push_back(conv(sn, "conv3 64->64 (1,5)/(1,2)", 64, 64, 27, 96, 1, 5, 1, 2, 0, 0, 0, 0));
    v.push_back(conv(sn, "conv4 64->64 (3,5)/(2,2)", 64, 64, 27, 46, 3, 5, 2, 2, 0, 0, 0, 0));
    v.push_back(conv(sn, "conv5 64->64 (3,5)/(2,2)", 64, 64, 13, 21, 3, 5, 2, 2, 0, 0, 0, 0));
    v.push_back(conv(sn, "conv6 64->100 (1,5)/(2,2)", 64, 100, 6, 9, 1, 5, 2, 2, 0, 0, 0, 0));
    v.push_back(dense(sn, "fc1 100->128", 100, 128));
    v.push_back(dense(sn, "fc2 128->13", 128, 13));
    v.push_back(conv(sn, "salt2 conv3 68->64 (1,5)/(1,2)", 68, 64, 27, 96, 1, 5, 1, 2, 0, 0, 0, 0));
    v.push_back(conv(sn, "salt3 conv4 80->64 (3,5)/(2,2)", 80, 64, 27, 46, 3, 5, 2, 2, 0, 0, 0, 0));
    v.push_back(conv(sn, "salt4 conv5 72->64 (3,5)/(2,2)", 72, 64, 13, 21, 3, 5, 2, 2, 0, 0, 0, 0));
    v.push_back(conv(sn, "conv2 64->64 (1,5)/(1,2)", 64, 64, 27, 196, 1, 5, 1, 2, 0, 0, 0, 0, 64));
    v.push_back(conv(sn, "conv4 64->64 (3,5)/(2,2)", 64, 64, 27, 46, 3, 5, 2, 2, 0, 0, 0, 0, 64));
    return v;
}

}  // namespace bench
