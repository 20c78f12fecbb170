// Convolution epilogues (DESIGN §5: "matmul/conv take fused epilogues"): the
// bias and a short chain of elementwise ops applied to a convolution's output
// while a tile of it is still in cache, instead of separate passes over memory.
//
// Every conv2d kernel path (GEMM, depthwise, direct) writes its output through
// epilogue_apply, with an empty op list when nothing is fused, so a fused step
// (graph/fuse_epilogue.cc) gives the same bits as the unfused ops: the bias is
// added to the finished sum, then each op exactly as its elementwise kernel
// computes it (Maximum / Minimum with NumPy's NaN and signed-zero rules).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/attrs.h"
#include "core/tensor.h"
#include "ops/conv_common.h"
#include "ops/isa_variants.h"

namespace mnn {

// One elementwise op of an epilogue: v = op(v) or v = op(v, operand) (operand first when `swap`).
struct EpilogueOp {
    enum Kind : uint8_t { Relu, Add, Sub, Mul, Max, Min };
    enum Operand : uint8_t { None, Scalar, Channel, Full };  // one value, one per output channel, one per element
    Kind kind = Relu;
    Operand operand = None;
    bool swap = false;  // the operand is the op's first input (matters for Sub, and NaN payloads)
    int input = -1;     // the operand's index among the fused step's inputs
};

constexpr int kMaxEpilogueOps = 8;

struct ConvEpilogue {
    int conv_inputs = 2;  // the fused step's first inputs are conv2d's own (x, weight[, bias])
    std::vector<EpilogueOp> ops;
};

const char* epilogue_op_name(EpilogueOp::Kind k);

// conv2d of ins[0 : epi.conv_inputs] followed by `epi`'s ops (operands among `ins`), into
// `out` (allocated by the caller with conv2d's output info).  float32 / float64 only.
void conv2d_fused(const Attrs& attrs, const std::vector<Tensor>& ins, const ConvEpilogue& epi, Tensor& out);

// ---- what the kernels see ----------------------------------------------------------------------

// The epilogue with its operands resolved to pointers: output channel o of image n at
// pixel p reads a Full operand at full[(n * O + o) * P + p].
template <typename T>
struct EpiRt {
    struct Op {
        EpilogueOp::Kind kind;
        EpilogueOp::Operand operand;
        bool swap;
        const T* ptr;
    };
    const T* bias = nullptr;
    Op ops[kMaxEpilogueOps];
    int n_ops = 0;
    int64_t O = 0, P = 0;
};

template <typename T>
MNN_ALWAYS_INLINE T epi_max(T x, T y) {  // elementwise.cc's Maximum
    return (x != x || x > y) ? x : (y != y ? y : (x == y ? (std::signbit(x) ? y : x) : y));
}
template <typename T>
MNN_ALWAYS_INLINE T epi_min(T x, T y) {  // elementwise.cc's Minimum
    return (x != x || x < y) ? x : (y != y ? y : (x == y ? (std::signbit(x) ? x : y) : y));
}

template <typename T, typename F>
MNN_ALWAYS_INLINE void epi_binary(T* d, int64_t len, const T* full, T c, bool swap, F f) {
    if (full) {
        if (swap) for (int64_t i = 0; i < len; ++i) d[i] = f(full[i], d[i]);
        else for (int64_t i = 0; i < len; ++i) d[i] = f(d[i], full[i]);
    } else {
        if (swap) for (int64_t i = 0; i < len; ++i) d[i] = f(c, d[i]);
        else for (int64_t i = 0; i < len; ++i) d[i] = f(d[i], c);
    }
}

struct EpiAdd { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return a + b; } };
struct EpiSub { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return a - b; } };
struct EpiMul { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return a * b; } };
struct EpiMax { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return epi_max(a, b); } };
struct EpiMin { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return epi_min(a, b); } };

// dst[0:len] = epilogue(src[0:len]) for output channel o of image n, pixels [p, p + len).
// src may equal dst (in place).  Inline: each ISA variant of a kernel compiles its own copy.
template <typename T>
MNN_ALWAYS_INLINE void epilogue_apply(const EpiRt<T>& e, int64_t n, int64_t o, int64_t p, const T* src, T* dst,
                                      int64_t len) {
    if (e.bias) {
        const T b = e.bias[o];
        for (int64_t i = 0; i < len; ++i) dst[i] = src[i] + b;
    } else if (src != dst) {
        for (int64_t i = 0; i < len; ++i) dst[i] = src[i];
    }
    for (int k = 0; k < e.n_ops; ++k) {
        const typename EpiRt<T>::Op& op = e.ops[k];
        const T* full = nullptr;
        T c = T(0);
        if (op.operand == EpilogueOp::Full) full = op.ptr + (n * e.O + o) * e.P + p;
        else if (op.operand == EpilogueOp::Channel) c = op.ptr[o];
        else if (op.operand == EpilogueOp::Scalar) c = op.ptr[0];
        switch (op.kind) {
            case EpilogueOp::Relu:
                for (int64_t i = 0; i < len; ++i) dst[i] = dst[i] > T(0) ? dst[i] : T(0);
                break;
            case EpilogueOp::Add: epi_binary(dst, len, full, c, op.swap, EpiAdd()); break;
            case EpilogueOp::Sub: epi_binary(dst, len, full, c, op.swap, EpiSub()); break;
            case EpilogueOp::Mul: epi_binary(dst, len, full, c, op.swap, EpiMul()); break;
            case EpilogueOp::Max: epi_binary(dst, len, full, c, op.swap, EpiMax()); break;
            case EpilogueOp::Min: epi_binary(dst, len, full, c, op.swap, EpiMin()); break;
        }
    }
}

// ---- the conv2d kernel paths, each writing its output through the epilogue ------------------------
namespace convgeom {

// Implicit GEMM (conv_gemm.cc): weights packed once per weight tensor (cached), B panels
// gathered from zero-padded phase planes (conv_planes.h), output tiles through the epilogue.
template <typename T> void conv2d_gemm(const DirectConv& d, const T* x, const Tensor& w, const EpiRt<T>& epi, T* y);
// Depthwise (C / G == 1, conv_depthwise.cc): per channel a vectorised 1-d correlation of its
// padded phase planes.
template <typename T> void conv2d_depthwise(const DirectConv& d, const T* x, const T* w, const EpiRt<T>& epi, T* y);
// Small stride-1 layers (conv_direct.cc).
template <typename T> void conv2d_direct(const DirectConv& d, const T* x, const T* w, const EpiRt<T>& epi, T* y);

// Drops the cached packed weights (tests; a weight's entry also goes when the tensor does).
void clear_packed_weights();
int64_t packed_weights_bytes();

}  // namespace convgeom
}  // namespace mnn
