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

enum class RegOp : uint8_t { AddC, AddFull, Relu, MaxC, MinC, MaxPZ };

// Step OP on v with constant c; AddFull adds the operand's lanes at f (lanes in m, the rest 0).
template <RegOp OP>
MNN_ISA_AVX512 MNN_ALWAYS_INLINE __m512 reg_step(__m512 v, __m512 c, const float* f, __mmask16 m) {
    if constexpr (OP == RegOp::AddC) return _mm512_add_ps(v, c);            // (x + c == c + x bit for bit)
    if constexpr (OP == RegOp::AddFull) return _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, f));
    if constexpr (OP == RegOp::Relu) return _mm512_max_ps(v, _mm512_setzero_ps());  // v > 0 ? v : 0
    if constexpr (OP == RegOp::MaxC) return _mm512_max_ps(c, v);            // c > v ? c : v (c not NaN, not 0)
    if constexpr (OP == RegOp::MinC) return _mm512_min_ps(c, v);            // c < v ? c : v (c not NaN, not 0)
    if constexpr (OP == RegOp::MaxPZ)                                       // (v > 0 || v != v) ? v : +0
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), v);
    return v;
}

// A chain of steps; step k's constant (bias, scalar or per-channel operand) is c[k], its Full
// operand's values for this vector at f[k] + off (lanes m).
template <RegOp... OPS>
struct RegProg {
    static constexpr int n = int(sizeof...(OPS));
    static constexpr bool full = ((OPS == RegOp::AddFull) || ...);
    MNN_ISA_AVX512 static MNN_ALWAYS_INLINE __m512 apply(__m512 v, const __m512* c, const float* const* f,
                                                         int64_t off, __mmask16 m) {
        int k = 0;
        ((v = reg_step<OPS>(v, c[k], OPS == RegOp::AddFull ? f[k] + off : nullptr, m), ++k), ...);
        (void)c;
        (void)f;
        (void)off;
        (void)m;
        return v;
    }
};

// The chains with a kernel instantiation, and where each step's constant comes from.
enum class RegChain : int {
    None, Bias, BiasRelu, Relu, BiasMaxMin0, MaxMin0, BiasMaxMin, MaxMin,
    BiasFull, Full, BiasFullRelu, FullRelu,  // a residual (ResNet's blocks, MobileNetV2's projections)
    Other
};

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
        const float c = scalar ? op.ptr[0] : 0.0f;
        RegOp r;
        if (op.kind == EpilogueOp::Relu) r = RegOp::Relu;
        else if (op.kind == EpilogueOp::Add && op.operand == EpilogueOp::Full) r = RegOp::AddFull;
        else if (op.kind == EpilogueOp::Max && scalar && epi_plain_operand(c)) r = RegOp::MaxC;
        else if (op.kind == EpilogueOp::Max && scalar && c == 0.0f && !std::signbit(c)) r = RegOp::MaxPZ;
        else if (op.kind == EpilogueOp::Min && scalar && epi_plain_operand(c)) r = RegOp::MinC;
        else return p;
        ops[n] = r;
        p.src[n++] = k;
    }
    const bool b = e.bias != nullptr;
    const int m = n - (b ? 1 : 0);  // steps after the bias
    const RegOp* o = ops + (b ? 1 : 0);
    auto pick = [&](RegChain with_bias, RegChain without) { p.chain = b ? with_bias : without; };
    if (m == 0) pick(RegChain::Bias, RegChain::None);
    else if (m == 1 && o[0] == RegOp::Relu) pick(RegChain::BiasRelu, RegChain::Relu);
    else if (m == 2 && o[0] == RegOp::MaxPZ && o[1] == RegOp::MinC) pick(RegChain::BiasMaxMin0, RegChain::MaxMin0);
    else if (m == 2 && o[0] == RegOp::MaxC && o[1] == RegOp::MinC) pick(RegChain::BiasMaxMin, RegChain::MaxMin);
    else if (m == 1 && o[0] == RegOp::AddFull) pick(RegChain::BiasFull, RegChain::Full);
    else if (m == 2 && o[0] == RegOp::AddFull && o[1] == RegOp::Relu) pick(RegChain::BiasFullRelu, RegChain::FullRelu);
    return p;
}

// Step constants of output channel o of image n as vectors, and the Full operands' planes of that
// channel from pixel p (f[k]; null for other steps).
MNN_ISA_AVX512 MNN_ALWAYS_INLINE void reg_epi_consts(const EpiRt<float>& e, const RegPlan& pl, int n_steps, int64_t n,
                                                     int64_t o, int64_t p, __m512* c, const float** f) {
    for (int k = 0; k < n_steps; ++k) {
        const int s = pl.src[k];
        f[k] = nullptr;
        if (s >= 0 && e.ops[s].operand == EpilogueOp::Full) {
            f[k] = e.ops[s].ptr + (n * e.O + o) * e.P + p;
            c[k] = _mm512_setzero_ps();
            continue;
        }
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
        case RegChain::BiasFull: return &K<RegProg<RegOp::AddC, RegOp::AddFull>>::run;
        case RegChain::Full: return &K<RegProg<RegOp::AddFull>>::run;
        case RegChain::BiasFullRelu: return &K<RegProg<RegOp::AddC, RegOp::AddFull, RegOp::Relu>>::run;
        case RegChain::FullRelu: return &K<RegProg<RegOp::AddFull, RegOp::Relu>>::run;
        default: return &K<RegProg<>>::run;
    }
}

// The chain on a block in place, one pass: rows r in [0, rows) are output channels o0 + r, `len`
// values each at d + r * ld (a GEMM tile just stored, still in L1).
struct RegRowsArgs {
    const EpiRt<float>* e;
    const RegPlan* plan;
    int64_t n, o0, p, rows, len, ld;  // image n, channels from o0, pixels from p
    float* d;
};

template <typename Prog>
struct RegRows {
    MNN_ISA_AVX512 static void run(const RegRowsArgs& a) {
        const int64_t whole = a.len / 16 * 16;
        const __mmask16 tail = __mmask16((1u << (a.len - whole)) - 1u);
        for (int64_t r = 0; r < a.rows; ++r) {
            constexpr int NS = Prog::n > 0 ? Prog::n : 1;
            __m512 c[NS];
            const float* f[NS];
            reg_epi_consts(*a.e, *a.plan, Prog::n, a.n, a.o0 + r, a.p, c, f);
            float* row = a.d + r * a.ld;
            const __mmask16 all = 0xFFFF;
            int64_t i = 0;
            for (; i + 64 <= whole; i += 64) {  // four vectors at a time (independent chains)
                __m512 v0 = _mm512_loadu_ps(row + i), v1 = _mm512_loadu_ps(row + i + 16);
                __m512 v2 = _mm512_loadu_ps(row + i + 32), v3 = _mm512_loadu_ps(row + i + 48);
                _mm512_storeu_ps(row + i, Prog::apply(v0, c, f, i, all));
                _mm512_storeu_ps(row + i + 16, Prog::apply(v1, c, f, i + 16, all));
                _mm512_storeu_ps(row + i + 32, Prog::apply(v2, c, f, i + 32, all));
                _mm512_storeu_ps(row + i + 48, Prog::apply(v3, c, f, i + 48, all));
            }
            for (; i < whole; i += 16)
                _mm512_storeu_ps(row + i, Prog::apply(_mm512_loadu_ps(row + i), c, f, i, all));
            if (tail)
                _mm512_mask_storeu_ps(row + whole, tail,
                                      Prog::apply(_mm512_maskz_loadu_ps(tail, row + whole), c, f, whole, tail));
        }
    }
};

// The chain on `npx` pixels of one channel block in the blocked layout ([16] lanes per pixel,
// channels o0..o0+15; conv_blocked.cc), one pass: each step's constant is a vector of per-lane
// values (the bias) or one scalar; a Full operand is blocked like the output (its values from `at`);
// lanes at and past `valid` come out 0, as the next kernel expects.
struct RegBlockArgs {
    const EpiRt<float>* e;
    const RegPlan* plan;
    int64_t o0, valid, npx;
    int64_t at;  // the pixels' first element in a blocked tensor of the output's shape
    float* d;
};

template <typename Prog>
struct RegBlock {
    MNN_ISA_AVX512 static void run(const RegBlockArgs& a) {
        constexpr int NS = Prog::n > 0 ? Prog::n : 1;
        const __mmask16 valid = __mmask16((1u << a.valid) - 1u), all = 0xFFFF;
        __m512 c[NS];
        const float* f[NS];
        for (int k = 0; k < Prog::n; ++k) {
            const int s = a.plan->src[k];
            f[k] = nullptr;
            c[k] = _mm512_setzero_ps();
            if (s < 0) c[k] = _mm512_maskz_loadu_ps(valid, a.e->bias + a.o0);
            else if (a.e->ops[s].operand == EpilogueOp::Full) f[k] = a.e->ops[s].ptr + a.at;
            else c[k] = _mm512_set1_ps(a.e->ops[s].ptr[0]);  // (no per-channel operands here)
        }
        float* d = a.d;
        int64_t q = 0;
        for (; q + 4 <= a.npx; q += 4) {  // four vectors at a time (independent chains)
            __m512 v[4];  // (constant trip counts: unrolled, v in registers)
            for (int j = 0; j < 4; ++j) v[j] = Prog::apply(_mm512_loadu_ps(d + (q + j) * 16), c, f, (q + j) * 16, all);
            for (int j = 0; j < 4; ++j) _mm512_storeu_ps(d + (q + j) * 16, _mm512_maskz_mov_ps(valid, v[j]));
        }
        for (; q < a.npx; ++q)
            _mm512_storeu_ps(d + q * 16,
                             _mm512_maskz_mov_ps(valid, Prog::apply(_mm512_loadu_ps(d + q * 16), c, f, q * 16, all)));
    }
};

}  // namespace convgeom
}  // namespace mnn
#endif
