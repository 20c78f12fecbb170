// Dense 3x3 convolutions with few input channels (a CNN's first layer: MobileNetV2's
// 3 -> 32, stride 2, bias + ReLU6), AVX-512 float: straight from the input, no planes, no GEMM.
// Reached from conv2d_gemm (conv_gemm.cc) for the layers conv2d_stem_suits accepts.
//
// The implicit GEMM pays for this layer twice: padded phase planes of the input, and a depth of
// only C * 9 = 27 per output, too short to amortise a register tile (and 32 output channels fill
// 3 tiles of 14 rows).  Here a block of 8 output channels x 2 vectors of 16 output columns (16
// accumulators) takes every tap of one output row: for each input channel and kernel row, the 3
// column-shifted input vectors (stride 1: masked loads; stride 2: two loads and an even / odd
// permute, as in conv_depthwise.cc) are loaded once and used by all 8 channels (weights broadcast
// from memory).  The epilogue runs in registers (conv_regepi.h) before each vector's store.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "ops/conv_epilogue.h"
#include "ops/conv_regepi.h"
#include "ops/isa_variants.h"

namespace mnn {
namespace convgeom {

#if defined(MNN_SPAN_MASKS)
namespace {

constexpr int kOB = 8;      // output channels per block
constexpr int kMaxC = 4;    // input channels served

struct StemJob {
    const DirectConv* d;
    const float* x;         // image n's input
    const EpiRt<float>* e;
    const RegPlan* plan;
    float* y;               // image n's output
    const float* zrow;      // W zeros (rows in the padding)
    int64_t n;
};

MNN_ALWAYS_INLINE uint32_t lanes(int64_t lo, int64_t hi, int bits) {
    lo = std::max<int64_t>(lo, 0);
    hi = std::min<int64_t>(hi, bits);
    if (hi <= lo) return 0u;
    return uint32_t(((uint64_t(1) << (hi - lo)) - 1u) << lo);
}

// Output row oh, channels [o0, o0 + kOB) (those past O computed with zero weights, not stored),
// chunks of 16 columns from ow0 (CH of them).
template <typename Prog, int S, int CH, int C>
MNN_ISA_AVX512 MNN_ALWAYS_INLINE void stem_block(const StemJob& jb, const float* wb, const __m512 (*ec)[4],
                                                 const float* const (*ef)[4], int64_t oh, int64_t o0, int64_t ow0) {
    const DirectConv& d = *jb.d;
    const int64_t H = d.H, W = d.W, OW = d.OW, P = d.OH * d.OW;
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __mmask16 lm[CH][4];
    int64_t lb[CH];
    for (int c = 0; c < CH; ++c) {
        const int64_t o = ow0 + 16 * c;
        if (S == 1) {
            lb[c] = o - d.pl;
            for (int j = 0; j < 3; ++j) lm[c][j] = __mmask16(lanes(-lb[c] - j, W - lb[c] - j, 16));
        } else {
            lb[c] = 2 * o - d.pl;
            const uint32_t m0 = lanes(-lb[c], W - lb[c], 32), m2 = lanes(-lb[c] - 2, W - lb[c] - 2, 32);
            lm[c][0] = __mmask16(m0);
            lm[c][1] = __mmask16(m0 >> 16);
            lm[c][2] = __mmask16(m2);
            lm[c][3] = __mmask16(m2 >> 16);
        }
    }
    __m512 acc[kOB][CH];
    for (int k = 0; k < kOB; ++k)
        for (int c = 0; c < CH; ++c) acc[k][c] = _mm512_setzero_ps();
    constexpr int taps = C * 9;
#pragma GCC unroll 4
    for (int ci = 0; ci < C; ++ci)
#pragma GCC unroll 3
        for (int i = 0; i < 3; ++i) {
            const int64_t ih = oh * S - d.pt + i;
            const float* row = ih >= 0 && ih < H ? jb.x + (ci * H + ih) * W : jb.zrow;
            const float* wt = wb + ci * 9 + i * 3;  // channel k's taps at wt + k * taps
            __m512 v[CH][3];  // both chunks' shifted vectors first: each weight is broadcast once
            for (int c = 0; c < CH; ++c) {
                const float* b0 = row + lb[c];
                if (S == 1) {
                    for (int j = 0; j < 3; ++j) v[c][j] = _mm512_maskz_loadu_ps(lm[c][j], b0 + j);
                } else {
                    const __m512 a0 = _mm512_maskz_loadu_ps(lm[c][0], b0);
                    const __m512 a1 = _mm512_maskz_loadu_ps(lm[c][1], b0 + 16);
                    const __m512 c0 = _mm512_maskz_loadu_ps(lm[c][2], b0 + 2);
                    const __m512 c1 = _mm512_maskz_loadu_ps(lm[c][3], b0 + 18);
                    v[c][0] = _mm512_permutex2var_ps(a0, even, a1);
                    v[c][1] = _mm512_permutex2var_ps(a0, odd, a1);
                    v[c][2] = _mm512_permutex2var_ps(c0, even, c1);
                }
            }
#pragma GCC unroll 8
            for (int k = 0; k < kOB; ++k)
                for (int j = 0; j < 3; ++j) {
                    const __m512 wv = _mm512_set1_ps(wt[k * taps + j]);
                    for (int c = 0; c < CH; ++c) acc[k][c] = _mm512_fmadd_ps(wv, v[c][j], acc[k][c]);
                }
        }
    for (int k = 0; k < kOB; ++k) {
        if (o0 + k >= d.O) break;
        float* yo = jb.y + (o0 + k) * P + oh * OW;
        for (int c = 0; c < CH; ++c) {
            const int64_t o = ow0 + 16 * c;
            if (o >= OW) break;
            const __mmask16 sm = __mmask16(lanes(0, OW - o, 16));
            const __m512 out = Prog::apply(acc[k][c], ec[k], ef[k], oh * OW + o, sm);
            if (sm == __mmask16(0xFFFF)) _mm512_storeu_ps(yo + o, out);
            else _mm512_mask_storeu_ps(yo + o, sm, out);
        }
    }
}

// Tasks t in [t0, t1): t = block * OH + oh (a block of kOB output channels, one output row).
template <typename Prog>
struct StemRows {
    template <int C>
    MNN_ISA_AVX512 static MNN_ALWAYS_INLINE void row(const StemJob& jb, const float* wb, const __m512 (*ec)[4],
                                                     const float* const (*ef)[4], int64_t oh, int64_t o0) {
        const int64_t OW = jb.d->OW, pairs = OW / 32 * 32;
        for (int64_t ow0 = 0; ow0 < pairs; ow0 += 32) stem_block<Prog, 2, 2, C>(jb, wb, ec, ef, oh, o0, ow0);
        if (pairs < OW) stem_block<Prog, 2, 2, C>(jb, wb, ec, ef, oh, o0, pairs);
    }

    MNN_ISA_AVX512 static void run(const StemJob& jb, const float* wpad, int64_t t0, int64_t t1) {
        const DirectConv& d = *jb.d;
        const int64_t taps = d.C * 9;
        int64_t cur = -1;
        __m512 ec[kOB][4];
        const float* ef[kOB][4];
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t blk = t / d.OH, oh = t % d.OH, o0 = blk * kOB;
            if (blk != cur) {
                cur = blk;
                for (int k = 0; k < kOB; ++k)
                    if (o0 + k < d.O) reg_epi_consts(*jb.e, *jb.plan, Prog::n, jb.n, o0 + k, 0, ec[k], ef[k]);
            }
            const float* wb = wpad + o0 * taps;
            switch (d.C) {
                case 1: row<1>(jb, wb, ec, ef, oh, o0); break;
                case 2: row<2>(jb, wb, ec, ef, oh, o0); break;
                case 3: row<3>(jb, wb, ec, ef, oh, o0); break;
                default: row<4>(jb, wb, ec, ef, oh, o0); break;
            }
        }
    }
};

}  // namespace

bool conv2d_stem_suits(const DirectConv& d) {
    return d.G == 1 && d.C <= kMaxC && d.kh == 3 && d.kw == 3 && d.dh == 1 && d.dw == 1 && d.sh == d.sw &&
           d.sh == 2 && d.O >= kOB && d.OW >= 16;  // (stride 1 goes to conv_direct.cc)
}

bool conv2d_stem(const DirectConv& d, const float* x, const float* w, const EpiRt<float>& e, float* y) {
    if (active_level() != CpuLevel::Avx512 || !conv2d_stem_suits(d)) return false;
    const RegPlan plan = reg_epi_select(e);
    RegPlan none;
    none.chain = RegChain::None;
    const bool after = plan.chain == RegChain::Other;  // no register form: the plain sums, then epilogue_block
    const auto run = reg_epi_pick<StemRows>(after ? RegChain::None : plan.chain);
    // Weights padded to whole blocks of kOB channels (zeros past O).
    const int64_t taps = d.C * 9, blocks = (d.O + kOB - 1) / kOB;
    std::vector<float> wpad(size_t(blocks * kOB * taps), 0.0f);
    std::memcpy(wpad.data(), w, size_t(d.O * taps) * sizeof(float));
    std::vector<float> zrow(size_t(d.W), 0.0f);
    const int64_t P = d.OH * d.OW;
    for (int64_t n = 0; n < d.N; ++n) {
        const StemJob jb{&d, x + n * d.C * d.H * d.W, &e, after ? &none : &plan, y + n * d.O * P, zrow.data(), n};
        const int64_t tasks = blocks * d.OH;
        const int64_t per_task = kOB * d.OW * taps;  // FMAs per lane
        parallel_for(tasks, std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, per_task)),
                     [&](int64_t a, int64_t b) { run(jb, wpad.data(), a, b); });
        if (after)
            parallel_for(d.O, 1, [&](int64_t a, int64_t b) {
                epilogue_block<float, 4>(e, n, a, b - a, 0, y + (n * d.O + a) * P, P, P);
            });
    }
    return true;
}
#else
bool conv2d_stem(const DirectConv&, const float*, const float*, const EpiRt<float>&, float*) { return false; }
#endif

}  // namespace convgeom
}  // namespace mnn
