// Convolution epilogues (conv_epilogue.h) applied to a finished AVX-512 float vector in registers,
// for the direct kernels that write their output vector by vector (conv_depthwise.cc).
//
// The common chains - the bias, ReLU, ReLU6 / clip as maximum then minimum with scalars - become a
// compile-time list of steps (RegProg), so a kernel instantiated for one is straight-line code on
// the accumulator with the step constants held in registers; reg_epi_select() maps a layer's
// epilogue to one of them.  Each step computes exactly what the elementwise kernels and
// epilogue_block do (NaN and signed-zero rules included), so fused and unfused plans agree bit for
// bit.  A chain outside the list is left to the caller (epilogue_block after the kernel).
#pragma once
#include <cmath>
#include <cstdint>

#include "ops/conv_epilogue.h"
#include "ops/isa_variants.h"
#include "ops/simd_span.h"

#if defined(MNN_SPAN_MASKS)
namespace mnn {
namespace convgeom {

enum class RegOp : uint8_t { AddC, Relu, MaxC, MinC, MaxPZ };

template <RegOp OP>
MNN_ISA_AVX512 MNN_ALWAYS_INLINE __m512 reg_step(__m512 v, __m512 c) {
    if constexpr (OP == RegOp::AddC) return _mm512_add_ps(v, c);            // (x + c == c + x bit for bit)
    if constexpr (OP == RegOp::Relu) return _mm512_max_ps(v, _mm512_setzero_ps());  // v > 0 ? v : 0
    if constexpr (OP == RegOp::MaxC) return _mm512_max_ps(c, v);            // c > v ? c : v (c not NaN, not 0)
    if constexpr (OP == RegOp::MinC) return _mm512_min_ps(c, v);            // c < v ? c : v (c not NaN, not 0)
    if constexpr (OP == RegOp::MaxPZ)                                       // (v > 0 || v != v) ? v : +0
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), v);
    return v;
}

// A chain of steps; step k's constant (bias, scalar or per-channel operand) is c[k].
template <RegOp... OPS>
struct RegProg {
    static constexpr int n = int(sizeof...(OPS));
    MNN_ISA_AVX512 static MNN_ALWAYS_INLINE __m512 apply(__m512 v, const __m512* c) {
        int k = 0;
        ((v = reg_step<OPS>(v, c[k++])), ...);
        (void)c;
        return v;
    }
};

// The chains with a kernel instantiation, and where each step's constant comes from.
enum class RegChain : int { None, Bias, BiasRelu, Relu, BiasMaxMin0, MaxMin0, BiasMaxMin, MaxMin, Other };

struct RegPlan {
    RegChain chain = RegChain::Other;
    int src[3] = {-1, -1, -1};  // per step: -1 the bias, else the EpiRt op
};

// The chain of `e` (RegChain::Other when it has no register form).
inline RegPlan reg_epi_select(const EpiRt<float>& e) {
    RegPlan p;
    RegOp ops[3];
    int n = 0;
    if (e.bias) {
        ops[n] = RegOp::AddC;
        p.src[n++] = -1;
    }
    for (int k = 0; k < e.n_ops; ++k) {
        if (n == 3) return p;
        const EpiRt<float>::Op& op = e.ops[k];
        const bool scalar = op.operand == EpilogueOp::Scalar;
        RegOp r;
        if (op.kind == EpilogueOp::Relu) r = RegOp::Relu;
        else if (op.kind == EpilogueOp::Max && scalar && epi_plain_operand(op.ptr[0])) r = RegOp::MaxC;
        else if (op.kind == EpilogueOp::Max && scalar && op.ptr[0] == 0.0f && !std::signbit(op.ptr[0])) r = RegOp::MaxPZ;
        else if (op.kind == EpilogueOp::Min && scalar && epi_plain_operand(op.ptr[0])) r = RegOp::MinC;
        else return p;
        ops[n] = r;
        p.src[n++] = k;
    }
    const bool b = e.bias != nullptr;
    const int m = n - (b ? 1 : 0);  // steps after the bias
    const RegOp* o = ops + (b ? 1 : 0);
    if (m == 0) p.chain = b ? RegChain::Bias : RegChain::None;
    else if (m == 1 && o[0] == RegOp::Relu) p.chain = b ? RegChain::BiasRelu : RegChain::Relu;
    else if (m == 2 && o[0] == RegOp::MaxPZ && o[1] == RegOp::MinC) p.chain = b ? RegChain::BiasMaxMin0 : RegChain::MaxMin0;
    else if (m == 2 && o[0] == RegOp::MaxC && o[1] == RegOp::MinC) p.chain = b ? RegChain::BiasMaxMin : RegChain::MaxMin;
    return p;
}

// Step constants of output channel o as vectors.
MNN_ISA_AVX512 MNN_ALWAYS_INLINE void reg_epi_consts(const EpiRt<float>& e, const RegPlan& p, int n_steps, int64_t o,
                                                     __m512* c) {
    for (int k = 0; k < n_steps; ++k) {
        const int s = p.src[k];
        c[k] = _mm512_set1_ps(s < 0 ? e.bias[o] : e.ops[s].operand == EpilogueOp::Channel ? e.ops[s].ptr[o]
                                                                                           : e.ops[s].ptr[0]);
    }
}

// &K<RegProg<...>>::run for the program of `chain` (RegChain::Other: the empty program); K's run
// is an AVX-512 function (not a lambda: a lambda would be compiled for the baseline ISA).
template <template <typename> class K>
auto reg_epi_pick(RegChain chain) -> decltype(&K<RegProg<>>::run) {
    switch (chain) {
        case RegChain::Bias: return &K<RegProg<RegOp::AddC>>::run;
        case RegChain::BiasRelu: return &K<RegProg<RegOp::AddC, RegOp::Relu>>::run;
        case RegChain::Relu: return &K<RegProg<RegOp::Relu>>::run;
        case RegChain::BiasMaxMin0: return &K<RegProg<RegOp::AddC, RegOp::MaxPZ, RegOp::MinC>>::run;
        case RegChain::MaxMin0: return &K<RegProg<RegOp::MaxPZ, RegOp::MinC>>::run;
        case RegChain::BiasMaxMin: return &K<RegProg<RegOp::AddC, RegOp::MaxC, RegOp::MinC>>::run;
        case RegChain::MaxMin: return &K<RegProg<RegOp::MaxC, RegOp::MinC>>::run;
        default: return &K<RegProg<>>::run;
    }
}

}  // namespace convgeom
}  // namespace mnn
#endif
