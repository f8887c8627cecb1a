// Writes seed inputs for the fuzz targets into <dir>/<target>/: small valid
// frames (f32 and f16, every rank, with and without a cut name) and .npy
// files (each dtype, versions 1 and 2). Seeds are generated rather than
// committed, so they follow the formats when the formats change. Targets
// without a generator here can commit seeds under fuzz/corpus/<target>/.
#include <cstdint>
#include <cstdio>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "salted/io/frame.hpp"
#include "salted/io/npy.hpp"

using namespace salted;

static bool write(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return false;
    const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    return std::fclose(f) == 0 && ok;
}

static std::vector<uint8_t> npy_bytes(const std::string& descr, const std::string& shape, std::size_t payload,
                                      int version) {
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    const std::size_t prefix = version == 1 ? 10 : 12;
    header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(version), 0};
    for (std::size_t i = 0; i < prefix - 8; ++i) out.push_back(uint8_t(header.size() >> (8 * i)));
    out.insert(out.end(), header.begin(), header.end());
    for (std::size_t i = 0; i < payload; ++i) out.push_back(uint8_t(i * 37 + 1));
    return out;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_seeds <dir>\n");
        return 2;
    }
    const std::string dir = argv[1];
    ::mkdir(dir.c_str(), 0755);
    ::mkdir((dir + "/fuzz_frame").c_str(), 0755);
    ::mkdir((dir + "/fuzz_npy").c_str(), 0755);
    int written = 0, failed = 0;

    const Shape shapes[] = {{3}, {1, 4}, {2, 2, 2}, {1, 2, 3, 2}, {1, 1, 2, 1, 3}, {1, 2, 1, 1, 2, 1}};
    int k = 0;
    for (const Shape& shape : shapes) {
        std::vector<float> v(std::size_t(shape.numel()));
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.75f - 2.0f;
        for (io::FrameDtype dt : {io::FrameDtype::f32, io::FrameDtype::f16}) {
            io::FrameInfo info;
            for (std::size_t i = 0; i < info.model_id.size(); ++i) info.model_id[i] = uint8_t(i * 13 + k);
            info.cut_id = uint32_t(k);
            info.cut_name = k % 2 ? "conv2.out" : "";
            info.dtype = dt;
            auto bytes = io::encode_frame(ConstTensorView(v.data(), shape), info);
            if (!bytes.ok()) { ++failed; continue; }
            const bool ok = write(dir + "/fuzz_frame/seed" + std::to_string(k++), *bytes);
            ok ? ++written : ++failed;
        }
    }

    struct Npy { const char* descr; const char* shape; std::size_t payload; int version; };
    const Npy npys[] = {
        {"<f4", "(2, 3)", 24, 1}, {"<f4", "(5,)", 20, 2}, {"<f4", "()", 4, 1}, {"<f8", "(3,)", 24, 1},
        {"<i4", "(1, 2)", 8, 1}, {"<i8", "(2,)", 16, 3}, {"<f4", "(1, 1, 2, 2)", 16, 1},
    };
    k = 0;
    for (const Npy& n : npys) {
        const bool ok = write(dir + "/fuzz_npy/seed" + std::to_string(k++), npy_bytes(n.descr, n.shape, n.payload, n.version));
        ok ? ++written : ++failed;
    }
    std::printf("make_seeds: wrote %d seeds under %s\n", written, dir.c_str());
    return failed ? 1 : 0;
}
