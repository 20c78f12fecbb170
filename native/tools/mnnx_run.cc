// mnnx-run: run an .mnnx model without Python.
//
//   mnnx-run model.mnnx x.npy                 inputs in declared order, outputs printed
//   mnnx-run model.mnnx --random --shape input0=8x1x8x8 --bench 100 --threads 2
//   mnnx-run model.mnnx x.npy --save out/ --argmax
//
// Options:
//   --info               print the model's inputs, outputs and metadata, then exit
//   --random [--seed S]  random inputs (uniform in [-1, 1); ints in [0, 10)) for inputs not given
//   --shape NAME=AxBxC   size of an input's dynamic dims for --random (default 1)
//   --save DIR           write each output to DIR/<name>.npy
//   --argmax             print the argmax of each row of every output (class predictions)
//   --full               print every output value (default: the first 16)
//   --steps N            run N times feeding the same inputs (a training step updates its state)
//   --bench N            run N timed iterations after --warmup W (default 5); print ms statistics
//   --threads T          worker threads (default: hardware threads)
//   --profile [K]        time every step of the --bench runs (or of one run without --bench) and
//                        print the time per op type and the K slowest steps (default 20)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "mnn/runtime.h"
#include "npy.h"

using mnn::runtime::Array;
using mnn::runtime::Error;
using mnn::runtime::Model;

namespace {

void usage() {
    std::fprintf(stderr,
                 "usage: mnnx-run MODEL.mnnx [INPUT.npy ...] [--info] [--random] [--seed S] [--shape NAME=AxB]\n"
                 "                [--save DIR] [--argmax] [--full] [--steps N] [--bench N] [--warmup W] [--threads T]\n"
                 "                [--profile [K]]\n");
}

std::string shape_str(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + (s[i] < 0 ? std::string("?") : std::to_string(s[i]));
    return out + "]";
}

double value_at(const Array& a, int64_t i) {
    const char* p = static_cast<const char*>(a.data);
    if (a.dtype == "float32") return reinterpret_cast<const float*>(p)[i];
    if (a.dtype == "float64") return reinterpret_cast<const double*>(p)[i];
    if (a.dtype == "int64") return double(reinterpret_cast<const int64_t*>(p)[i]);
    if (a.dtype == "int32") return reinterpret_cast<const int32_t*>(p)[i];
    if (a.dtype == "int8") return reinterpret_cast<const int8_t*>(p)[i];
    if (a.dtype == "uint8" || a.dtype == "bool") return reinterpret_cast<const uint8_t*>(p)[i];
    return 0.0;  // half types: printed as their shape only
}

void fill_random(Array& a, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    std::uniform_int_distribution<int> k(0, 9);
    int64_t n = a.size();
    char* p = static_cast<char*>(a.data);
    for (int64_t i = 0; i < n; ++i) {
        if (a.dtype == "float32") reinterpret_cast<float*>(p)[i] = float(u(rng));
        else if (a.dtype == "float64") reinterpret_cast<double*>(p)[i] = u(rng);
        else if (a.dtype == "int64") reinterpret_cast<int64_t*>(p)[i] = k(rng);
        else if (a.dtype == "int32") reinterpret_cast<int32_t*>(p)[i] = k(rng);
        else if (a.dtype == "bool") reinterpret_cast<uint8_t*>(p)[i] = uint8_t(k(rng) & 1);
        else if (a.dtype == "int8" || a.dtype == "uint8") p[i] = char(k(rng));
    }
}

std::vector<int64_t> parse_dims(const std::string& s) {
    std::vector<int64_t> d;
    size_t pos = 0;
    while (pos <= s.size()) {
        size_t x = s.find('x', pos);
        std::string tok = s.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
        if (tok.empty() || tok.size() > 12 || tok.find_first_not_of("0123456789") != std::string::npos)
            throw Error("--shape: bad dims '" + s + "' (expected e.g. 8x3x224x224)");
        d.push_back(std::stoll(tok));
        if (x == std::string::npos) break;
        pos = x + 1;
    }
    return d;
}

void print_output(const mnn::runtime::ValueInfo& info, const Array& a, bool full, bool argmax) {
    std::printf("%s: %s%s\n", info.name.c_str(), a.dtype.c_str(), shape_str(a.shape).c_str());
    if (a.dtype == "float16" || a.dtype == "bfloat16") return;
    int64_t n = a.size(), shown = full ? n : std::min<int64_t>(n, 16);
    std::printf("  [");
    for (int64_t i = 0; i < shown; ++i) std::printf("%s%.6g", i ? ", " : "", value_at(a, i));
    std::printf("%s]\n", shown < n ? ", ..." : "");
    if (argmax && !a.shape.empty() && a.shape.back() > 0) {
        int64_t cols = a.shape.back(), rows = n / cols;
        std::printf("  argmax:");
        for (int64_t r = 0; r < rows; ++r) {
            int64_t best = 0;
            for (int64_t c = 1; c < cols; ++c)
                if (value_at(a, r * cols + c) > value_at(a, r * cols + best)) best = c;
            std::printf(" %lld", static_cast<long long>(best));
        }
        std::printf("\n");
    }
}

int run(int argc, char** argv) {
    if (argc < 2) { usage(); return 2; }
    std::string model_path;
    std::vector<std::string> npy_paths;
    std::map<std::string, std::vector<int64_t>> shapes;
    std::string save_dir;
    bool info = false, random = false, full = false, argmax = false;
    long long seed = 0, bench = 0, warmup = 5, steps = 1, threads = 0, profile_top = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](const char* opt) -> std::string {
            if (i + 1 >= argc) throw Error(std::string(opt) + " needs a value");
            return argv[++i];
        };
        auto number = [&](const char* opt) -> long long {
            std::string v = value(opt);
            if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos)
                throw Error(std::string(opt) + ": expected a non-negative integer, got '" + v + "'");
            return std::stoll(v);
        };
        if (a == "--info") info = true;
        else if (a == "--random") random = true;
        else if (a == "--full") full = true;
        else if (a == "--argmax") argmax = true;
        else if (a == "--seed") seed = number("--seed");
        else if (a == "--bench") bench = number("--bench");
        else if (a == "--warmup") warmup = number("--warmup");
        else if (a == "--steps") steps = number("--steps");
        else if (a == "--threads") threads = number("--threads");
        else if (a == "--profile") {
            profile_top = 20;
            if (i + 1 < argc && argv[i + 1][0] != '\0' && std::strspn(argv[i + 1], "0123456789") == std::strlen(argv[i + 1]))
                profile_top = number("--profile");
        }
        else if (a == "--save") save_dir = value("--save");
        else if (a == "--shape") {
            std::string v = value("--shape");
            size_t eq = v.find('=');
            if (eq == std::string::npos) throw Error("--shape: expected NAME=AxB, got '" + v + "'");
            shapes[v.substr(0, eq)] = parse_dims(v.substr(eq + 1));
        } else if (a == "-h" || a == "--help") { usage(); return 0; }
        else if (a.size() > 1 && a[0] == '-') throw Error("unknown option '" + a + "'");
        else if (model_path.empty()) model_path = a;
        else npy_paths.push_back(a);
    }
    if (model_path.empty()) { usage(); return 2; }
    if (threads > 0) mnn::runtime::set_threads(int(threads));
    auto model = Model::load(model_path);
    const auto& ins = model->inputs();
    if (info) {
        std::printf("producer: %s\nkernels: %s\n", model->producer().c_str(), mnn::runtime::cpu_level());
        for (auto& [k, v] : model->metadata()) std::printf("  %s: %s\n", k.c_str(), v.c_str());
        for (auto& v : ins) std::printf("input  %s: %s%s\n", v.name.c_str(), v.dtype.c_str(), shape_str(v.shape).c_str());
        for (auto& v : model->outputs()) std::printf("output %s: %s%s\n", v.name.c_str(), v.dtype.c_str(), shape_str(v.shape).c_str());
        if (model->has_state()) std::printf("(a training step: each run updates the model's state)\n");
        return 0;
    }
    if (npy_paths.size() > ins.size())
        throw Error("the model takes " + std::to_string(ins.size()) + " inputs, " + std::to_string(npy_paths.size()) + " given");
    if (npy_paths.size() < ins.size() && !random)
        throw Error("the model takes " + std::to_string(ins.size()) + " inputs, " + std::to_string(npy_paths.size()) +
                    " given (use --random for the rest)");
    std::vector<Array> inputs;
    std::mt19937_64 rng{static_cast<uint64_t>(seed)};
    for (size_t k = 0; k < ins.size(); ++k) {
        if (k < npy_paths.size()) { inputs.push_back(mnnx_tools::read_npy(npy_paths[k])); continue; }
        std::vector<int64_t> shape = ins[k].shape;
        auto given = shapes.find(ins[k].name);
        if (given != shapes.end()) {
            if (given->second.size() != shape.size())
                throw Error("--shape " + ins[k].name + ": rank " + std::to_string(given->second.size()) + ", the input has " +
                            std::to_string(shape.size()));
            shape = given->second;
        }
        for (auto& d : shape) if (d < 0) d = 1;
        Array a = Array::zeros(ins[k].dtype, shape);
        fill_random(a, rng);
        inputs.push_back(std::move(a));
    }
    std::vector<Array> outs;
    for (long long s = 0; s < std::max(steps, 1LL); ++s) outs = model->run(inputs);
    const auto& out_info = model->outputs();
    for (size_t k = 0; k < outs.size(); ++k) {
        print_output(out_info[k], outs[k], full, argmax);
        if (!save_dir.empty()) mnnx_tools::write_npy(save_dir + "/" + out_info[k].name + ".npy", outs[k]);
    }
    if (profile_top > 0 && bench == 0) {  // one profiled run after the ones above
        mnn::runtime::set_profiling(true);
        mnn::runtime::profile_reset();
        model->run(inputs);
        mnn::runtime::set_profiling(false);
        std::printf("%s", mnn::runtime::profile_report(int(profile_top)).c_str());
    }
    if (bench > 0) {
        for (long long i = 0; i < warmup; ++i) model->run(inputs);
        if (profile_top > 0) {
            mnn::runtime::set_profiling(true);
            mnn::runtime::profile_reset();
        }
        std::vector<double> ms;
        for (long long i = 0; i < bench; ++i) {
            auto t0 = std::chrono::steady_clock::now();
            model->run(inputs);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        double mean = 0;
        for (double x : ms) mean += x / double(ms.size());
        std::printf("bench: %lld runs, %d threads, %s kernels: mean %.3f ms, median %.3f ms, min %.3f ms\n", bench,
                    mnn::runtime::threads(), mnn::runtime::cpu_level(), mean, ms[ms.size() / 2], ms.front());
        if (profile_top > 0) {
            mnn::runtime::set_profiling(false);
            std::printf("%s", mnn::runtime::profile_report(int(profile_top)).c_str());
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mnnx-run: error: %s\n", e.what());
        return 1;
    }
}
