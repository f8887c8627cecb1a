// Reads the PyTorch parity cases written by tests/parity/generate.py and
// compares tensors with the project's tolerance:
//   max|ours - torch| <= 1e-4 * max(1, max|torch|)
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <dirent.h>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "salted/core/tensor.hpp"
#include "salted/io/npy.hpp"

namespace parity {

inline std::string root() { return SALTED_PARITY_DIR; }

// One case directory: params.txt + named .npy arrays.
struct Case {
    std::string dir;
    std::string name;
    std::map<std::string, std::vector<double>> params;

    bool has(const std::string& key) const { return params.count(key) != 0; }
    int64_t i(const std::string& key, int idx = 0) const {
        auto it = params.find(key);
        REQUIRE_MESSAGE(it != params.end(), name << ": missing param " << key);
        REQUIRE(idx < static_cast<int>(it->second.size()));
        return static_cast<int64_t>(it->second[idx]);
    }
    double f(const std::string& key, int idx = 0) const {
        auto it = params.find(key);
        REQUIRE_MESSAGE(it != params.end(), name << ": missing param " << key);
        REQUIRE(idx < static_cast<int>(it->second.size()));
        return it->second[idx];
    }
    bool has_array(const std::string& a) const {
        std::ifstream f(dir + "/" + a + ".npy");
        return f.good();
    }
    salted::Tensor array(const std::string& a) const {
        auto npy = salted::io::read_npy(dir + "/" + a + ".npy");
        REQUIRE_MESSAGE(npy.ok(), npy.message());
        auto t = npy->to_tensor();
        REQUIRE_MESSAGE(t.ok(), t.message());
        return std::move(t).value();
    }
};

// All cases of a family, sorted by name. Fails (never silently passes) when
// the generator has not run.
inline std::vector<Case> load_family(const std::string& family) {
    std::vector<Case> cases;
    const std::string fdir = root() + "/" + family;
    DIR* d = opendir(fdir.c_str());
    REQUIRE_MESSAGE(d != nullptr, "parity cases missing: " << fdir << " (run tests/parity/generate.py)");
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        Case c;
        c.dir = fdir + "/" + n;
        c.name = family + "/" + n;
        std::ifstream pf(c.dir + "/params.txt");
        REQUIRE_MESSAGE(pf.good(), c.name << ": params.txt missing");
        std::string line;
        while (std::getline(pf, line)) {
            std::istringstream ls(line);
            std::string key;
            if (!(ls >> key)) continue;
            std::vector<double> vals;
            double v;
            while (ls >> v) vals.push_back(v);
            c.params[key] = vals;
        }
        cases.push_back(std::move(c));
    }
    REQUIRE_MESSAGE(!cases.empty(), "no parity cases in " << fdir);
    return cases;
}

// Max absolute difference, or +inf if shapes differ.
inline double max_abs_diff(salted::ConstTensorView a, salted::ConstTensorView b) {
    if (a.shape != b.shape) return INFINITY;
    double m = 0;
    for (int64_t k = 0; k < a.numel(); ++k) {
        double d = std::fabs(double(a[k]) - double(b[k]));
        if (!(d <= m)) m = d;  // NaN propagates
    }
    return m;
}

inline double max_abs(salted::ConstTensorView a) {
    double m = 0;
    for (int64_t k = 0; k < a.numel(); ++k) m = std::max(m, std::fabs(double(a[k])));
    return m;
}

// The project's parity criterion against a PyTorch reference.
inline void check_close(const std::string& what, salted::ConstTensorView ours, salted::ConstTensorView torch_ref,
                        double rel = 1e-4) {
    INFO(what);
    REQUIRE_MESSAGE(ours.shape == torch_ref.shape,
                    "shape: ours " << ours.shape.str() << " vs torch " << torch_ref.shape.str());
    const double diff = max_abs_diff(ours, torch_ref);
    const double tol = rel * std::max(1.0, max_abs(torch_ref));
    CHECK_MESSAGE(diff <= tol, what << ": max|diff| " << diff << " > tol " << tol);
}

}  // namespace parity
