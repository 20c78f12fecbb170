// Convolution epilogues (DESIGN §5: "matmul/conv take fused epilogues"): the
// bias and a short chain of elementwise ops applied to a convolution's output
// while a tile of it is still in cache, instead of separate passes over memory.
//
// Every conv2d kernel path (GEMM, depthwise, direct) finishes its output with
// epilogue_block, with an empty op list when nothing is fused, so a fused step
// (graph/fuse_epilogue.cc) gives the same bits as the unfused ops: the bias is
// added to the finished sum, then each op exactly as its elementwise kernel
// computes it (Maximum / Minimum with NumPy's NaN and signed-zero rules).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/attrs.h"
#include "core/tensor.h"
#include "ops/conv_common.h"
#include "ops/isa_variants.h"
#include "ops/simd_span.h"

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

// ---- the epilogue over spans, in whole chunks of L lanes ---------------------------------------------
// (Plain loops of a constant or L-multiple trip count, which the compiler vectorises for the ISA
// variant it is inlined into; a span's tail goes through a local chunk with masked copies.)

struct EpiAdd { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return a + b; } };
struct EpiSub { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return a - b; } };
struct EpiMul { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return a * b; } };
struct EpiMax { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return epi_max(a, b); } };
struct EpiMin { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T b) const { return epi_min(a, b); } };
struct EpiRelu { template <typename T> MNN_ALWAYS_INLINE T operator()(T a, T) const { return a > T(0) ? a : T(0); } };
// epi_max(x, c) / epi_min(x, c) for an operand c that is neither NaN nor zero: then they equal
// c > x ? c : x / c < x ? c : x (a NaN x is kept, x == c has c's bits), one vmaxps / vminps.
struct EpiMaxC { template <typename T> MNN_ALWAYS_INLINE T operator()(T x, T c) const { return c > x ? c : x; } };
struct EpiMinC { template <typename T> MNN_ALWAYS_INLINE T operator()(T x, T c) const { return c < x ? c : x; } };
// epi_max(x, +0.0) (ReLU6's lower bound): x when it is greater or NaN, else +0.0.
struct EpiMaxPZ {
    template <typename T> MNN_ALWAYS_INLINE T operator()(T x, T) const { return (x > T(0) || x != x) ? x : T(0); }
};

template <typename T>
MNN_ALWAYS_INLINE bool epi_plain_operand(T c) {
    return c == c && c != T(0);
}

// d[0:n] = f(d, operand) for n a multiple of L (FULL: the operand at w[0:n], else the value c).
template <typename T, int L, bool FULL, bool SWAP, typename F>
MNN_ALWAYS_INLINE void epi_whole(T* __restrict d, int64_t n, const T* __restrict w, T c, F f) {
    for (int64_t i = 0; i < n; i += L)
        for (int l = 0; l < L; ++l) {
            const T b = FULL ? w[i + l] : c;
            d[i + l] = SWAP ? f(b, d[i + l]) : f(d[i + l], b);
        }
}

// d[0:len] = f(d, operand) (swap: the operand first).
template <typename T, int L, bool FULL, bool SWAP, typename F>
MNN_ALWAYS_INLINE void epi_span(T* d, int64_t len, const T* full, T c, F f) {
    const int64_t whole = len / L * L;
    epi_whole<T, L, FULL, SWAP>(d, whole, full, c, f);
    if (whole == len) return;
    alignas(64) T tv[L], tw[L];
    simd::load_chunk<T, L>(tv, d + whole, len - whole);
    if (FULL) simd::load_chunk<T, L>(tw, full + whole, len - whole);
    epi_whole<T, L, FULL, SWAP>(tv, L, tw, c, f);
    simd::copy<T, L>(d + whole, tv, len - whole);
}

// One op over a block of rows (row r: channel o0 + r, at d + r * ld, `len` values; a Full
// operand's row r at full + r * P).
template <typename T, int L, typename F>
MNN_ALWAYS_INLINE void epi_rows(T* d, int64_t ld, int64_t rows, int64_t len, EpilogueOp::Operand kind, bool swap,
                                const T* ptr, int64_t o0, const T* full, int64_t P, F f) {
    for (int64_t r = 0; r < rows; ++r) {
        T* row = d + r * ld;
        if (kind == EpilogueOp::Full) {
            if (swap) epi_span<T, L, true, true>(row, len, full + r * P, T(0), f);
            else epi_span<T, L, true, false>(row, len, full + r * P, T(0), f);
        } else {
            const T c = kind == EpilogueOp::Channel ? ptr[o0 + r] : kind == EpilogueOp::Scalar ? ptr[0] : T(0);
            // maximum / minimum with a value that is neither NaN nor zero: one instruction per vector
            // (max and min are symmetric here: their NaN and zero cases are excluded).
            if constexpr (std::is_same_v<F, EpiMax>) {
                if (epi_plain_operand(c)) {
                    epi_span<T, L, false, false>(row, len, nullptr, c, EpiMaxC());
                    continue;
                }
                if (c == T(0) && !std::signbit(c)) {
                    epi_span<T, L, false, false>(row, len, nullptr, c, EpiMaxPZ());
                    continue;
                }
            }
            if constexpr (std::is_same_v<F, EpiMin>)
                if (epi_plain_operand(c)) {
                    epi_span<T, L, false, false>(row, len, nullptr, c, EpiMinC());
                    continue;
                }
            if (swap) epi_span<T, L, false, true>(row, len, nullptr, c, f);
            else epi_span<T, L, false, false>(row, len, nullptr, c, f);
        }
    }
}

// The epilogue, in place, on a block of output values: rows r in [0, rows) are channels
// o0 + r of image n, `len` values each at d + r * ld, pixels [p, p + len) of their plane.
// Op by op over the block (the op chosen once per block, each pass a tight vector loop on
// data in L1).  Inline: each ISA variant of a kernel compiles its own copy.
template <typename T, int L>
MNN_ALWAYS_INLINE void epilogue_block(const EpiRt<T>& e, int64_t n, int64_t o0, int64_t rows, int64_t p, T* d,
                                      int64_t ld, int64_t len) {
    if (e.bias) epi_rows<T, L>(d, ld, rows, len, EpilogueOp::Channel, false, e.bias, o0, nullptr, 0, EpiAdd());
    for (int k = 0; k < e.n_ops; ++k) {
        const typename EpiRt<T>::Op& op = e.ops[k];
        const T* full = op.operand == EpilogueOp::Full ? op.ptr + (n * e.O + o0) * e.P + p : nullptr;
        switch (op.kind) {
            case EpilogueOp::Relu:
                epi_rows<T, L>(d, ld, rows, len, EpilogueOp::None, false, op.ptr, o0, nullptr, e.P, EpiRelu());
                break;
            case EpilogueOp::Add: epi_rows<T, L>(d, ld, rows, len, op.operand, op.swap, op.ptr, o0, full, e.P, EpiAdd()); break;
            case EpilogueOp::Sub: epi_rows<T, L>(d, ld, rows, len, op.operand, op.swap, op.ptr, o0, full, e.P, EpiSub()); break;
            case EpilogueOp::Mul: epi_rows<T, L>(d, ld, rows, len, op.operand, op.swap, op.ptr, o0, full, e.P, EpiMul()); break;
            case EpilogueOp::Max: epi_rows<T, L>(d, ld, rows, len, op.operand, op.swap, op.ptr, o0, full, e.P, EpiMax()); break;
            case EpilogueOp::Min: epi_rows<T, L>(d, ld, rows, len, op.operand, op.swap, op.ptr, o0, full, e.P, EpiMin()); break;
        }
    }
}

// The epilogue, in place, on a block laid out the other way: rows are output positions,
// columns c in [0, ncols) are channels o0 + c, at d + r * ld (ncols a multiple of L; the padding
// columns are computed too).  Operands per channel are read as vectors; no Full operand.
template <typename T, int L>
MNN_ALWAYS_INLINE void epilogue_block_t(const EpiRt<T>& e, int64_t o0, int64_t rows, T* d, int64_t ld,
                                        int64_t ncols, const T* pad_values) {
    // pad_values: ncols values to stand in for channels past the layer's last (any finite values)
    auto channel_values = [&](const T* src, T* dst) {
        for (int64_t c = 0; c < ncols; ++c) dst[c] = o0 + c < e.O ? src[o0 + c] : pad_values[c];
    };
    T cv[1024];
    auto pass = [&](auto f, bool per_channel, T c, bool swap) {
        for (int64_t r = 0; r < rows; ++r) {
            T* row = d + r * ld;
            if (per_channel) {
                if (swap) epi_whole<T, L, true, true>(row, ncols, cv, T(0), f);
                else epi_whole<T, L, true, false>(row, ncols, cv, T(0), f);
            } else {
                if (swap) epi_whole<T, L, false, true>(row, ncols, nullptr, c, f);
                else epi_whole<T, L, false, false>(row, ncols, nullptr, c, f);
            }
        }
    };
    if (e.bias) {
        channel_values(e.bias, cv);
        pass(EpiAdd(), true, T(0), false);
    }
    for (int k = 0; k < e.n_ops; ++k) {
        const typename EpiRt<T>::Op& op = e.ops[k];
        const bool chan = op.operand == EpilogueOp::Channel;
        if (chan) channel_values(op.ptr, cv);
        const T c = op.operand == EpilogueOp::Scalar ? op.ptr[0] : T(0);
        switch (op.kind) {
            case EpilogueOp::Relu: pass(EpiRelu(), false, T(0), false); break;
            case EpilogueOp::Add: pass(EpiAdd(), chan, c, op.swap); break;
            case EpilogueOp::Sub: pass(EpiSub(), chan, c, op.swap); break;
            case EpilogueOp::Mul: pass(EpiMul(), chan, c, op.swap); break;
            case EpilogueOp::Max:
                if (!chan && epi_plain_operand(c)) pass(EpiMaxC(), false, c, false);
                else if (!chan && c == T(0) && !std::signbit(c)) pass(EpiMaxPZ(), false, c, false);
                else pass(EpiMax(), chan, c, op.swap);
                break;
            case EpilogueOp::Min:
                if (!chan && epi_plain_operand(c)) pass(EpiMinC(), false, c, false);
                else pass(EpiMin(), chan, c, op.swap);
                break;
        }
    }
}

template <typename T>
inline bool epi_has_full(const EpiRt<T>& e) {
    for (int k = 0; k < e.n_ops; ++k)
        if (e.ops[k].operand == EpilogueOp::Full) return true;
    return false;
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

// Dense 3x3 stride-2 layers with at most 4 input channels (a CNN's first layer), AVX-512 float
// (conv_stem.cc): false when the layer or the active ISA is not served.
bool conv2d_stem(const DirectConv& d, const float* x, const float* w, const EpiRt<float>& epi, float* y);

// Drops the cached packed weights (tests; a weight's entry also goes when the tensor does).
void clear_packed_weights();
int64_t packed_weights_bytes();

}  // namespace convgeom
}  // namespace mnn
