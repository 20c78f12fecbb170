// The narrow interface between the executor and a device (DESIGN §5-6; anchors lesson 10):
// buffers, copies, supports-op, run.  The executor runs a planned graph's steps on the
// device backend where it supports them and on the CPU otherwise, inserting copies where a
// value crosses; everything else (shape rules, plans, passes) stays device-independent, so
// GPU backends plug in here without touching the compiler.
//
// The CPU backend is the host itself (storage with device == nullptr).  The null backend is
// a test device: its buffers are host memory tagged as its own, its kernels are the CPU's,
// and it counts launches and the bytes copied in and out, which proves the executor goes
// through the interface (tests/test_backend.py).
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/attrs.h"
#include "core/registry.h"
#include "core/tensor.h"

namespace mnn {

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;
    // Whether this device runs `op` on inputs of these infos (else the executor uses the CPU).
    virtual bool supports(OpType op, const std::vector<TensorInfo>& inputs) const = 0;
    // A buffer of `bytes` in this device's memory (Storage::device is set to this backend).
    virtual std::shared_ptr<Storage> allocate(size_t bytes) = 0;
    // Copies a host tensor into a device tensor of the same info, and back.
    virtual void upload(const Tensor& host, Tensor& dev) = 0;
    virtual void download(const Tensor& dev, Tensor& host) = 0;
    // Runs one op: inputs are on this device; it allocates the outputs.
    virtual void run(OpType op, const Attrs& attrs, const std::vector<Tensor>& ins, std::vector<Tensor>& outs,
                     const std::vector<TensorInfo>& infos) = 0;
};

// What a device did (the null backend counts; real devices may too).
struct BackendStats {
    int64_t launches = 0, bytes_uploaded = 0, bytes_downloaded = 0;
};

// A test device (see the top): runs the ops listed (by name; empty = every unary and binary
// op and matmul) with the CPU's kernels on host memory tagged as its own.
std::shared_ptr<Backend> make_null_backend(std::vector<std::string> ops);
BackendStats backend_stats(const Backend& b);  // zeros for a backend that does not count

// A tensor of `info` in `b`'s memory.
Tensor device_tensor(Backend& b, const TensorInfo& info);

}  // namespace mnn
