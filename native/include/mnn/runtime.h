// mnnpy's standalone runtime: load an .mnnx model, give it inputs, run, read outputs.
// C++17, no dependencies beyond the standard library; link the `mnn_core` library.
//
//   auto model = mnn::runtime::Model::load("digits.mnnx");
//   mnn::runtime::Array x = mnn::runtime::Array::zeros("float32", {1, 1, 8, 8});
//   std::vector<mnn::runtime::Array> y = model->run({x});
//
// Errors (a malformed file, inputs of the wrong dtype or shape) throw mnn::runtime::Error.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mnn::runtime {

struct Error : std::runtime_error { using std::runtime_error::runtime_error; };

// A dense C-contiguous array on the host.  `dtype` is one of bool, int8, uint8,
// int32, int64, float16, bfloat16, float32, float64.
struct Array {
    std::string dtype;
    std::vector<int64_t> shape;
    std::shared_ptr<void> owner;  // keeps `data` alive
    void* data = nullptr;

    int64_t size() const;    // number of elements
    size_t nbytes() const;   // size() * the dtype's byte size
    static Array zeros(const std::string& dtype, std::vector<int64_t> shape);  // owns fresh memory
};

// A declared input or output; dims of -1 are dynamic.
struct ValueInfo {
    std::string name, dtype;
    std::vector<int64_t> shape;
};

class Model {
public:
    static std::unique_ptr<Model> load(const std::string& path);
    ~Model();

    const std::vector<ValueInfo>& inputs() const;
    const std::vector<ValueInfo>& outputs() const;
    const std::string& producer() const;
    const std::vector<std::pair<std::string, std::string>>& metadata() const;
    // Whether run() updates state stored in the model (an exported training step).
    bool has_state() const;

    // Runs the graph on inputs in declared order; shapes may differ from the
    // declared ones in dynamic dims.  Outputs own their memory.
    std::vector<Array> run(const std::vector<Array>& inputs);

private:
    Model();
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

void set_threads(int n);  // worker threads of the one pool (default: hardware threads)
int threads();
// The SIMD kernel level in use: "generic", "avx2", "avx512" (x86-64) or "neon" (AArch64);
// chosen from the CPU at start-up, capped by MNN_CPU_LEVEL.
const char* cpu_level();

// The executor's per-op profiler (off unless MNN_PROFILE=1 is set): time per planned step,
// summed per op type and per step over the runs made while it is on.
void set_profiling(bool on);
void profile_reset();
std::string profile_report(int top = 20);  // per op type and the `top` slowest steps, ms per run

}  // namespace mnn::runtime
